"""Measure the large-v3 inputs' task vectors with ``asrmerge svd-inspect`` and compare them with the study's.

    python -m tests.bench.large_v3_spectra [--layers decoder.0,decoder.31,encoder.0] [--tasks 8] [--report]

Runs ``asrmerge svd-inspect --base base.safetensors ft0 ... ft{T-1} --include 'model.LAYER.*' --summary --json``
on the cached inputs (tests/bench/large_v3.py) with T = 8 fine-tunes, as many as the study merged, so that p = 1/8
(e_keep) and the overlaps' k = r/8 are the study's. Writes tests/bench/results/large-v3-spectra.md and .json:
each statistic's median per layer type, the ranks as fractions of r = min(m, n) (512 in the study's
whisper-base, 1280 here), next to the medians of tests/bench/results/large-v3-spectra-source.json (the
decoder-only study of 2026-11-26).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.bench import large_v3

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "tests" / "bench" / "results" / "large-v3-spectra-source.json"
OUT = ROOT / "tests" / "bench" / "results" / "large-v3-spectra.md"
# (label, where in a group's summary, divide by r)
STATS = [("erank / r", ("input", "erank"), True), ("srank", ("input", "srank"), False),
         ("rank90 / r", ("input", "rank90"), True), ("rank99 / r", ("input", "rank99"), True),
         ("e_keep (p = 1/8)", ("input", "e_keep"), False), ("nrank / r", ("input", "nrank"), True),
         ("cos (pairs)", ("pairs", "cos"), False), ("ov_u (k = r/8)", ("pairs", "ov_u"), False),
         ("ov_v (k = r/8)", ("pairs", "ov_v"), False)]


def median(group: dict, where: tuple[str, str]) -> float | None:
    part = group.get(where[0]) or {}
    v = part.get(where[1])
    return None if v is None else v["median"]


NOTE = ("How the inputs are made: tests/bench/large_v3.py. One known difference from real task vectors: all tasks "
        "of one matrix share the r-dimensional frames U_0, V_0 (each task rotates within them), so for the tall "
        "fc1/fc2 matrices the tasks' column (row) spaces coincide in the long dimension, where real fine-tunes' "
        "differ; a sum of task vectors then has a smaller tail there (this generator at whisper-base size: smallest "
        "singular value of a two-task fc1 sum about 2e-3 of the largest, against 1.6e-2 for two real whisper-base "
        "fine-tunes, the study's 10-step smoke runs; on square matrices both are 1e-5 to 1e-4), so Iso-C's "
        "numerical rank can drop a few directions of a sum.")


def render(ours: dict, layers: str, tasks: int, seconds: float, date: str) -> str:
    """The comparison table (markdown) of one svd-inspect summary against the study's."""
    study_groups = {g["group"]: g for g in json.loads(STUDY.read_text())["groups"]}
    ours_groups = {g["group"]: g for g in ours["groups"]}
    names = sorted((g for g in ours_groups if g != "all"), key=lambda g: (g not in study_groups, g))
    includes = [f"model.{x.split('.')[0]}.layers.{x.split('.')[1]}.*" for x in layers.split(",")]
    header = "| statistic | " + " | ".join(
        f"{g}: study (r = 512) | {g}: large-v3 (r = 1280)" if g in study_groups else f"{g}: large-v3 (r = 1280)"
        for g in names) + " |"
    lines = [header, "|---|" + "---|" * (header.count("|") - 2)]
    for label, where, per_r in STATS:
        cells = []
        for g in names:
            for src, r_ in ((study_groups.get(g), 512), (ours_groups[g], 1280)):
                if src is None:
                    continue
                v = median(src, where)
                cells.append("—" if v is None else f"{v / r_ if per_r else v:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join([
        "# The large-v3 inputs' task vectors, measured", "",
        f"`asrmerge svd-inspect --base base.safetensors ft0 ... ft{tasks - 1} "
        + " ".join(f"--include '{x}'" for x in includes) + " --summary --json` on the inputs of "
        f"tests/bench/large_v3.py ({tasks} fine-tunes, as the study merged; {ours['tensors']} tensors; "
        f"{seconds:.0f} s on {os.cpu_count()} cores, {date}), against the study's real whisper-base fine-tunes "
        "(tests/bench/results/large-v3-spectra-source.json, decoder tensors only). Medians per layer type; ranks as "
        "fractions of r = min(m, n). The encoder's groups have no study counterpart.", "",
        *lines, "", NOTE, ""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="decoder.0,decoder.31,encoder.0")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=None, help="default: $ASRMERGE_BENCH_CACHE/large-v3")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report", action="store_true", help="write OUT again from OUT with .json, running nothing")
    a = ap.parse_args(argv)
    if a.report:
        saved = json.loads(a.out.with_suffix(".json").read_text())
        text = render(saved, saved["layers"], saved["tasks"], saved["seconds"], saved["date"])
        a.out.write_text(text)
        print(text)
        return
    base, fts = large_v3.ensure(a.tasks, a.dir)
    includes = [x for layer in a.layers.split(",") for x in
                ("--include", f"model.{layer.split('.')[0]}.layers.{layer.split('.')[1]}.*")]
    cmd = [sys.executable, "-m", "asrmerge", "svd-inspect", "--base", str(base), *map(str, fts[:a.tasks]),
           *includes, "--summary", "--json", "-q", "--device", "cpu"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise SystemExit(f"svd-inspect failed: {r.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    ours = json.loads(r.stdout)
    saved = {"cmd": "svd-inspect --summary --json", "layers": a.layers, "tasks": a.tasks, "seconds": seconds,
             "date": time.strftime("%Y-%m-%d"), "tensors": ours["tensors"], "groups": ours["groups"]}
    text = render(saved, a.layers, a.tasks, seconds, saved["date"])
    a.out.write_text(text)
    a.out.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
