"""LoRA inputs merged in core space against the same merge in full space, on large-v3-shaped matrices.

    python -m tests.bench.bench_core                      # T = 10 rank-16 adapters, the five core algorithms
    python -m tests.bench.bench_core --tasks 4 --rank 8 --algos tsvm,iso-c --no-report

Ten synthetic rank-16 LoRA adapters (B_t ~ 0.05 N(0, 1), A_t ~ N(0, 1/n), alpha/r = 2 folded in, weights 1) on
three whisper-large-v3 matrices (encoder layer 0: self_attn.q_proj 1280 x 1280, fc1 5120 x 1280, fc2
1280 x 5120); no files. Each input is an in-memory checkpoint that gives both its dense task vectors and its
factors, so the real planner and engine merge the same inputs twice: in core space (the default) and with
``MergeSpec.core_space=False`` (full space: the registered matrix rule on the dense tau_t). One thread, one
worker, fp32, the algorithms' default parameters (p = 1/T). Reported per algorithm: the merge's wall time
in each space (engine only: inputs are already in memory), and the largest relative difference (max norm,
per matrix) of tau* between the spaces, and of each against the core-space merge in fp64 (which agrees
with full space in fp64 to rounding, docs/algorithms.md section 6.5). W_0 = 0, so W* = tau*. Results go to
tests/bench/results/core-space.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from asrmerge.io.checkpoint import Checkpoint, MemoryBackend
from asrmerge.io.lora import LoraFactors
from asrmerge.merge import engine
from asrmerge.merge.plan import MergeSpec, make_plan

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "bench" / "results" / "core-space.md"
MATRICES = {"model.encoder.layers.0.self_attn.q_proj.weight": (1280, 1280),
            "model.encoder.layers.0.fc1.weight": (5120, 1280),
            "model.encoder.layers.0.fc2.weight": (1280, 5120)}
ALGOS = ("tsvm", "tsvm-ns", "boosted-tsvm", "iso-c", "iso-cts")
SCALE = 2.0  # alpha / r


class FactoredBackend(MemoryBackend):
    """An in-memory LoRA task vector: dense tau_t for the full space, its factors for the core space."""

    def __init__(self, factors: dict[str, LoraFactors], label: str) -> None:
        dense = {n: f.delta().to(torch.float32) for n, f in factors.items()}  # as io/lora.py: fp64, then the read casts
        super().__init__(dense, label, {"asrmerge.kind": "taskvec"})
        self._factors = factors

    def factors(self, name: str) -> LoraFactors | None:
        return self._factors.get(name)


def inputs(T: int, r: int, seed: int = 0) -> list[dict[str, LoraFactors]]:
    g = torch.Generator().manual_seed(seed)
    return [{n: LoraFactors(torch.randn(m, r, generator=g) * 0.05, torch.randn(r, k, generator=g) / k**0.5, SCALE)
             for n, (m, k) in MATRICES.items()} for _ in range(T)]


class Sink:
    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.tensors[name] = tensor


def run(algo: str, tasks: list[dict[str, LoraFactors]], *, core: bool,
        dtype: torch.dtype) -> tuple[float, dict[str, torch.Tensor], int]:
    """(seconds, tau* per matrix in fp64, matrices merged in core space) of one engine run.

    W_0 = 0 in the compute dtype, so that the output W* = tau* (lambda = 1) carries no rounding of W_0 + tau*.
    """
    base = {n: torch.zeros(m, k, dtype=dtype) for n, (m, k) in MATRICES.items()}
    base_ck = Checkpoint(MemoryBackend(base, "<base>"))
    sources = [Checkpoint(FactoredBackend(t, f"<lora {i}>")) for i, t in enumerate(tasks)]
    spec = MergeSpec(algo=algo, inputs=[s.label for s in sources], base="<base>", device="cpu", compute_dtype=dtype,
                     budget=8 << 30, check_outputs=False,
                     workers=1, batch=1, core_space=core)
    plan = make_plan(spec, opened=(base_ck, sources))
    sink = Sink()
    try:
        t0 = time.perf_counter()
        engine.execute(plan, sinks=[sink])
        seconds = time.perf_counter() - t0
    finally:
        plan.close()
    taus = {n: sink.tensors[n].double() for n in MATRICES}
    return seconds, taus, len(plan.merged_in_core)


def rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[n] - b[n]).abs().max()) / float(b[n].abs().max()) for n in MATRICES)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--no-report", action="store_true", help="print only; do not write tests/bench/results/core-space.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tasks = inputs(args.tasks, args.rank)
    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for algo in args.algos.split(","):
        t_core, core32, n_core = run(algo, tasks, core=True, dtype=torch.float32)
        assert n_core == len(MATRICES), f"{algo}: {n_core} matrices in core space"
        t_full, full32, n_full = run(algo, tasks, core=False, dtype=torch.float32)
        assert n_full == 0
        _, core64, _ = run(algo, tasks, core=True, dtype=torch.float64)
        row = {"algo": algo, "full_s": t_full, "core_s": t_core, "speedup": t_full / t_core,
               "core_vs_full": rel(core32, full32), "full_vs_fp64": rel(full32, core64),
               "core_vs_fp64": rel(core32, core64)}
        rows.append(row)
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if not args.no_report:
        report(rows, args.tasks, args.rank, (load, os.getloadavg()[0]))


def report(rows: list[dict[str, Any]], T: int, r: int, load: tuple[float, float]) -> None:
    shapes = ", ".join(f"{n.removeprefix('model.encoder.layers.0.')} {m} x {k}" for n, (m, k) in MATRICES.items())
    lines = [
        "# LoRA inputs: core space against full space",
        "",
        f"`python -m tests.bench.bench_core` (tests/bench/bench_core.py), {datetime.date.today().isoformat()}, on "
        f"{platform.machine()} with {torch.get_num_threads()} torch thread (the machine: 2 CPU cores, shared with "
        f"other jobs, run under `nice -n 19`), torch {torch.__version__}. T = {T} synthetic rank-{r} LoRA adapters "
        f"(R = {T * r}) on three large-v3 matrices ({shapes}); the real planner and engine, one worker, fp32, "
        "default parameters (p = 1/T). Time: the engine's merge of the three matrices (inputs in memory). "
        "Differences: max |a - b| / max |b| of tau*, the largest over the three matrices; fp64 is the core-space "
        "merge computed in fp64.",
        "",
        f"Load average {load[0]:.1f} at the start and {load[1]:.1f} at the end, on 2 cores: the machine was shared, so "
        "the times are upper bounds that vary between runs (up to about 2x); the two spaces of one row ran back "
        "to back. The differences do not depend on the load.",
        "",
        "| algorithm | full space (s) | core space (s) | speedup | core vs full (fp32) | full fp32 vs fp64 | "
        "core fp32 vs fp64 |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in rows:
        lines.append(f"| `{w['algo']}` | {w['full_s']:.2f} | {w['core_s']:.3f} | {w['speedup']:.0f}x | "
                     f"{w['core_vs_full']:.1e} | {w['full_vs_fp64']:.1e} | {w['core_vs_fp64']:.1e} |")
    lines.append("")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
