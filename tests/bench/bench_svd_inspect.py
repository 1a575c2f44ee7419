"""Benchmark of ``asrmerge svd-inspect``: a whole-model inspection of 4 whisper-base task vectors.

    python -m tests.bench.bench_svd_inspect            # writes tests/bench/results/svd-inspect.md and the sample picture

Offline and deterministic. Work files go to ``.cache/bench-svd-inspect/`` (gitignored):

1. ``asrmerge convert packaged:base --dtype fp32`` gives the base W_0 (PyPI-packaged Whisper base).
2. Four task vectors tau_t with a realistic structure on every 2-D tensor of policy class ``svd`` (96 matrices):
   tau_t = a_l S + (1 - a_l) B_t, with power-law spectra sigma_i ~ i^-alpha (fine-tuning deltas are
   low-rank-ish and heavy-headed; alpha from 0.7 for decoder FFNs to 1.1 for decoder self-attention, so the
   layer types differ), S shared by all tasks, B_t on the task's own random subspace, except that tasks 0
   and 1 (two related domains) also share half of B; the shared weight a_l falls with depth from 0.8 to
   0.2 (fine-tunes on different domains diverge towards the output); ||tau_t||_F = 0.5% of ||W_0||_F, the
   size of a short low-learning-rate fine-tune. Other tensors get Gaussian noise of the same relative size.
   They are stored as asrmerge task vectors (fp32, ``asrmerge.kind=taskvec``, the base's fingerprint).
3. The task-arithmetic merge M = sum_t tau_t, stored as an update.
4. Each run is one ``python -m asrmerge svd-inspect`` process, started by a small wrapper that reports its
   wall time and its own ``ru_maxrss`` (:func:`tests.peers.run.measure`). This is a benchmark, never a timed unit test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "bench" / "results"
TASKS = 4
REL_NORM = 5e-3
ALPHA = {"encoder.self_attn": 1.0, "encoder.fc": 0.8, "decoder.self_attn": 1.1, "decoder.encoder_attn": 0.9,
         "decoder.fc": 0.7}


def power_law(m: int, n: int, g: torch.Generator, alpha: float = 0.9) -> torch.Tensor:
    """A random m x n matrix with singular values i^-alpha (unit Frobenius norm) on random orthonormal bases."""
    r = min(m, n)
    u, _ = torch.linalg.qr(torch.randn(m, r, generator=g))
    v, _ = torch.linalg.qr(torch.randn(n, r, generator=g))
    s = torch.arange(1, r + 1, dtype=torch.float32) ** -alpha
    x = (u * (s / s.norm())) @ v.T
    return x


def depth_share(name: str, layers: int) -> float:
    """The shared part's weight: 0.8 in the first layer, falling linearly to 0.2 in the last."""
    from asrmerge.diagnostics.layers import layer

    d = layer(name) or 0
    return 0.8 - 0.6 * d / max(1, layers - 1)


def make_task_vectors(base_dir: Path, work: Path) -> list[Path]:
    from asrmerge.diagnostics.layers import select
    from asrmerge.io.checkpoint import open_checkpoint

    paths = [work / f"tv{t}.safetensors" for t in range(TASKS)]
    if all(p.is_file() for p in paths):
        return paths
    base = load_file(base_dir / "model.safetensors")
    with open_checkpoint(str(base_dir)) as c:
        fp, svd_names = c.fingerprint(), set(select(c.infos.values()))
        layers = 1 + max(int(n.split(".")[3]) for n in svd_names)
    meta = {"asrmerge.kind": "taskvec", "asrmerge.base_fingerprint": fp, "asrmerge.command": "bench_svd_inspect"}
    from asrmerge.diagnostics.layers import group

    def seeded(key: str) -> torch.Generator:
        return torch.Generator().manual_seed(zlib.crc32(key.encode()))

    shared, related = {}, {}
    for name in sorted(svd_names):
        alpha = ALPHA[group(name)]
        shared[name] = power_law(*base[name].shape, seeded(f"shared:{name}"), alpha)
        related[name] = power_law(*base[name].shape, seeded(f"related:{name}"), alpha)
    for t, path in enumerate(paths):
        out = {}
        for name, w in base.items():
            g = seeded(f"{t}:{name}")
            size = REL_NORM * float(w.float().norm())
            if name in svd_names:
                a = depth_share(name, layers)
                own = power_law(*w.shape, g, ALPHA[group(name)])
                if t in (0, 1):
                    own = 0.5 ** 0.5 * (own + related[name])
                x = a * shared[name] + (1 - a) * own
                out[name] = (x * (size / float(x.norm()))).contiguous()
            else:
                x = torch.randn(w.shape, generator=g)
                out[name] = x * (size / max(float(x.norm()), 1e-30))
        save_file(out, path, metadata=meta)
    return paths


def make_merge(paths: list[Path], work: Path) -> Path:
    dest = work / "ta.safetensors"
    if dest.is_file():
        return dest
    tvs = [load_file(p) for p in paths]
    with open(paths[0], "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    save_file({k: sum(tv[k] for tv in tvs) for k in tvs[0]}, dest, metadata={**meta, "asrmerge.command": "ta"})
    return dest


def timed(args: list[str], stdout: Path | None = None, threads: int = 0) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one ``python ARGS`` process; ``threads`` > 0 caps OpenMP/MKL threads.

    Measured like the merge benchmark (:func:`tests.peers.run.measure`): the command's own ``ru_maxrss``,
    not the high-water mark of this process, which holds the task vectors while it makes them.
    """
    from tests.peers.run import measure

    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    m = measure([sys.executable, *args], env=env)
    if m.returncode != 0:
        sys.exit(f"bench: python {' '.join(args)} failed: {m.stderr.strip().splitlines()[-1:]}")
    if stdout is not None:
        stdout.write_text(m.stdout)
    return m.wall_s, m.peak_rss_mb


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"{cpu}, {os.cpu_count()} cores (torch uses {torch.get_num_threads()} threads), {mem / 1024:.0f} GiB RAM, "
            f"GPU: {gpu}; Python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench-svd-inspect")
    ap.add_argument("--all", action="store_true", help="also time --all (adds the 51865 x 512 embedding)")
    ap.add_argument("--threads", default="0,1", help="comma-separated OpenMP/MKL thread caps to time (0: torch's "
                    "default); every run with the first, the two main runs with the others")
    opts = ap.parse_args()
    work = opts.work
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = work / "base"
    if not (base / "model.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "asrmerge", "convert", "packaged:base", "--dtype", "fp32",
                        "-o", f"{base}/", "-q"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    tvs = [str(p) for p in make_task_vectors(base, work)]
    merged = str(make_merge([Path(p) for p in tvs], work))
    sample = RESULTS / "svd-inspect-sample.png"
    cmd = ["-m", "asrmerge", "svd-inspect", *tvs, "-q"]
    runs = [
        ("baseline: a process that imports torch and asrmerge.diagnostics", ["-c", "import asrmerge.diagnostics.inspection"], None),
        ("4 task vectors, singular values only (`--no-pairs`)", [*cmd, "--no-pairs"], "values"),
        ("4 task vectors, default (tasks and pair records: full SVDs)", cmd, "default"),
        ("4 task vectors + `--merged` TA + `--plot`", [*cmd, "--merged", merged, "--plot", str(sample)], "merged"),
        ("the same with `--summary --json` instead of records", [*cmd, "--merged", merged, "--summary", "--json"],
         "summary"),
    ]
    if opts.all:
        runs.append(("4 task vectors, `--all --no-pairs` (adds the 3 embedding tables)", [*cmd, "--all", "--no-pairs"],
                     "all"))
    rows = []
    load_before = os.getloadavg()
    settings = [int(x) for x in opts.threads.split(",")]
    plan = [(settings[0], run) for run in runs]
    plan += [(th, run) for th in settings[1:] for run in runs if run[2] in ("values", "default")]
    for threads, (label, args, key) in plan:
        out = work / f"{key}-{threads}.jsonl" if key else None
        wall, rss = timed(args, out, threads)
        n = sum(1 for _ in open(out)) if out else 0
        name = f"{threads or torch.get_num_threads()} thread{'s' if threads != 1 else ''}"
        rows.append((label, name, wall, rss, n))
        print(f"{label}, {name}: {wall:.1f} s, peak RSS {rss:.0f} MiB, {n} lines", file=sys.stderr)
    load_after = os.getloadavg()
    summary = json.loads((work / f"summary-{settings[0]}.jsonl").read_text())
    (RESULTS / "svd-inspect-summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    everything = summary["groups"][-1]
    tv_bytes = sum(Path(p).stat().st_size for p in tvs)
    lines = [
        "# svd-inspect benchmark: whole-model inspection of 4 whisper-base task vectors",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Load average (1, 5, 15 min) before the runs: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in load_after)}. The machine is shared: a load above the core count means "
        "other jobs competed for the CPUs and the times are inflated accordingly.",
        f"- Command: `python -m tests.bench.bench_svd_inspect{' --all' if opts.all else ''} --threads {opts.threads}` "
        "(work files in "
        "`.cache/bench-svd-inspect/`)",
        f"- Inputs: 4 synthetic task vectors of Whisper base (fp32, {tv_bytes / 2**20:.0f} MiB in all; their "
        "structure is in the module docstring); 96 matrices of policy class svd (72 of 512 x 512, 24 of "
        "2048 x 512 or 512 x 2048); the merge is task arithmetic, M = sum of the 4, stored as an update.",
        "",
        "| run | threads | wall time (s) | peak RSS (MiB) | JSONL lines |",
        "|---|---|---:|---:|---:|",
        *[f"| {label} | {th} | {wall:.1f} | {rss:.0f} | {n or '-'} |" for label, th, wall, rss, n in rows],
        "",
        "Each run is one process; wall time includes Python and torch start-up (the baseline row). Peak RSS is "
        "that process's own maximum resident set (`ru_maxrss` reported by a small launcher "
        "that starts it, so that no parent's memory is counted). Inputs are read tensor by "
        "tensor with `preadv` (no mmap), so what the inspection adds to the baseline is one tensor's inputs, "
        "their SVDs, and the spectra kept for the picture, not the 4 files. Threads: torch's default (one per "
        "core), or capped with `OMP_NUM_THREADS`/`MKL_NUM_THREADS`; on a machine whose cores other jobs keep "
        "busy, MKL's threaded SVD waits for descheduled threads, and one thread is much faster.",
        "",
        "## The sample picture (`svd-inspect-sample.png`)",
        "",
        f"Whole model, {summary['tensors']} tensors, 4 task vectors plus their task-arithmetic sum. Over all "
        f"tensors: mean erank of the inputs {everything['input']['erank']['mean']:.1f} and of the merge "
        f"{everything['merged']['erank']['mean']:.1f} (r = 512); mean kappa_s = "
        f"{everything['collapse']['kappa_s']['mean']:.3f}, kappa_e = {everything['collapse']['kappa_e']['mean']:.3f}; "
        f"{everything['collapse']['collapsed']} of {everything['tensors']} tensors flagged as rank collapse "
        f"(kappa_s < 1); mean sti_rel of all 4 tasks {everything['tasks']['sti_rel']['mean']:.3f}, mean pair "
        f"cosine {everything['pairs']['cos']['mean']:.3f}.",
        "",
        "By construction, the first layers are dominated by the component all tasks share: their sum is "
        "spectrally less diverse than its most diverse input (kappa_s < 1, flagged as collapse), while in the "
        "last layers the task-specific parts add up in different directions (kappa_s > 1), and the merge's "
        "effective rank rises above the inputs'. The heat maps pick out the related pair (tv0, tv1): higher "
        "cosine and lower pair sti_rel. sti_rel is far above 1 because the tasks share a subspace in rotated "
        "bases, which the entrywise L1 norm of STI penalises (see `man asrmerge-svd-inspect`, `--sti-norm`).",
        "",
        "Mean kappa_s by layer type and depth (from the `--merged` records):",
        "",
        *depth_table(work / f"merged-{settings[0]}.jsonl"),
        "",
        "Full summary: `svd-inspect-summary.json`.",
        "",
    ]
    (RESULTS / "svd-inspect.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'svd-inspect.md'} and {sample}", file=sys.stderr)


def depth_table(records: Path) -> list[str]:
    """A Markdown table of the mean kappa_s per layer type (rows) and layer (columns)."""
    from collections import defaultdict

    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in records.read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "collapse" and r["kappa_s"] is not None and r["layer"] is not None:
            values[r["group"]][r["layer"]].append(r["kappa_s"])
    layers = sorted({d for g in values.values() for d in g})
    out = ["| layer type | " + " | ".join(str(d) for d in layers) + " |", "|---|" + "---:|" * len(layers)]
    for g, by in values.items():
        out.append(f"| {g} | " + " | ".join(f"{sum(by[d]) / len(by[d]):.3f}" if by.get(d) else "-" for d in layers)
                   + " |")
    return out


if __name__ == "__main__":
    main()
