"""The GPU check, in one short run: CUDA tests, then boosted-tsvm and tsvm on 10 large-v3-shaped task vectors.

    python -m tests.bench.gpu [--tasks 10] [--shape large-v3] [--cpu-layers 2] [--out DIR]

Installs nothing (run it where asrmerge's environment already exists). Steps, with a table at the end:
1. ``pytest -m cuda`` (CPU against CUDA for every algorithm, DARE masks, batched statistics);
2. inputs: a random Whisper base of the shape and T fine-tunes stored in fp16 (a large-v3 model is 3.1 GB
   in fp16; 10 fine-tunes need about 35 GB of disk), made on the GPU to save time;
3. ``asrmerge merge --device cuda`` end to end (read, merge, write) for boosted-tsvm and tsvm, timed, with
   peak GPU memory from the CUDA allocator statistics the merge process prints at the end;
4. the GPU:CPU speed-up on the same work restricted to a few layers (``--cpu-layers``), since a whole
   large-v3 merge on the CPU would take far longer than a GPU lease.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]


def make_inputs(shape: str, T: int, root: Path) -> tuple[Path, list[Path]]:
    from tests.bench.inputs import base_model, task_vector

    base = base_model(shape, root)  # fp32 random base
    from safetensors import safe_open

    fts = []
    with safe_open(str(base), "pt") as f:
        names = list(f.keys())
        for t in range(T):
            out = root / f"{shape}-ft{t}.safetensors"
            fts.append(out)
            if out.is_file():
                continue
            g = torch.Generator().manual_seed(t)
            sd = {n: (f.get_tensor(n) + task_vector(tuple(f.get_slice(n).get_shape()), g)).half() for n in names}
            save_file(sd, str(out), metadata={"format": "pt"})
    return base, fts


def timed(cmd: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASRMERGE_CUDA_STATS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return wall, r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--shape", default="large-v3")
    ap.add_argument("--cpu-layers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")))
    ap.add_argument("--skip-tests", action="store_true")
    a = ap.parse_args()
    rows = []
    if not a.skip_tests:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                            str(ROOT / "tests" / "test_cuda.py")], capture_output=True, text=True, cwd=ROOT)
        print(r.stdout[-3000:], r.stderr[-2000:])
        rows.append(("pytest -m cuda", f"{time.perf_counter() - t0:.1f} s", r.stdout.strip().splitlines()[-1]))
    work = Path(os.environ.get("ASRMERGE_BENCH_DIR", "/tmp/asrmerge-gpu"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base, fts = make_inputs(a.shape, a.tasks, work)
    rows.append((f"inputs: {a.shape}, T={a.tasks}", f"{time.perf_counter() - t0:.1f} s", "fp16 fine-tunes"))
    gpu_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    for algo in ("boosted-tsvm", "tsvm"):
        out = work / f"merged-{algo}.safetensors"
        wall, err = timed([sys.executable, "-m", "asrmerge", "merge", "--algo", algo, "--base", str(base),
                           *map(str, fts), "-o", str(out), "--device", "cuda", "-q"])
        peak = next((line.split("=", 1)[1] for line in err.splitlines() if line.startswith("cuda_peak_bytes=")), "?")
        rows.append((f"{algo} on {gpu_name}, end to end", f"{wall:.1f} s", f"peak GPU memory {peak} bytes"))
        out.unlink(missing_ok=True)
    # GPU:CPU on the same few layers (the CPU would need far longer for the whole model)
    from tests.bench.inputs import SHAPES

    policy = ";".join(f"model.*.layers.{i}.*=mean" for i in range(a.cpu_layers, SHAPES[a.shape]["layers"]))
    for device in ("cuda", "cpu"):
        wall, _ = timed([sys.executable, "-m", "asrmerge", "merge", "--algo", "boosted-tsvm", "--base", str(base),
                         *map(str, fts), "-o", str(work / "part.safetensors"), "--device", device, "-q",
                         "--policy", policy])
        rows.append((f"boosted-tsvm, svd on layers < {a.cpu_layers} only, {device}", f"{wall:.1f} s", ""))
    text = "| step | time | note |\n|---|---|---|\n" + "\n".join(f"| {s} | {t} | {n} |" for s, t, n in rows)
    print(text)
    (a.out / "gpu-bench.md").write_text(text + "\n")
    (a.out / "gpu-bench.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
