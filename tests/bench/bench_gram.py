"""The top-k triplets by the fp64 Gram route against the fp32 thin SVD, on large-v3 task vectors.

    python -m tests.bench.bench_gram                 # large-v3 task vectors from the bench cache, T = 5 and 10
    python -m tests.bench.bench_gram --no-report     # print only

Matrices: the task vector of fine-tune 0 in the large-v3 bench cache (``python -m tests.bench.large_v3``,
whose task vectors have the study's spectra) for encoder layer 0's fc1 (5120 x 1280) and fc2 (1280 x 5120),
decoder layer 0's self_attn.q_proj (1280 x 1280) and the token embedding (51866 x 1280; class mean under
the default policy, class svd with --policy); where the cache is absent, a matrix of that shape with singular values
i^-0.7. Plus a whisper-base-shaped 2048 x 512 matrix with singular values i^-0.7. One thread, as each merge
worker runs. Per matrix and k = floor(r / T): the fastest of two runs of the fp32 thin SVD that the merge
ran before (:func:`asrmerge.linalg.svd.svd`: ``torch.linalg.svd``, a wide matrix through its transpose,
which is 2x faster than FusionBench's direct call on 1280 x 5120) and of
:func:`asrmerge.linalg.gram.top_svd`, and each one's rank-k truncation against the fp64 SVD's (relative
Frobenius). Results go to
tests/bench/results/gram-route.md (docs/algorithms.md section 3, top-k triplets).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import torch

from asrmerge.linalg.gram import top_svd, uses_gram
from asrmerge.linalg.svd import svd

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "bench" / "results" / "gram-route.md"
LARGE = {"model.encoder.layers.0.fc1.weight": (5120, 1280), "model.encoder.layers.0.fc2.weight": (1280, 5120),
         "model.decoder.layers.0.self_attn.q_proj.weight": (1280, 1280),
         "model.decoder.embed_tokens.weight": (51866, 1280)}


def synthetic(m: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = min(m, n)
    u, _ = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    return ((u * torch.arange(1, r + 1, dtype=torch.float64) ** -0.7) @ v.mT).float()


def matrices() -> list[tuple[str, str, torch.Tensor]]:
    """(label, source, fp32 matrix)."""
    from tests.bench.large_v3 import default_dir

    root = default_dir()
    out = []
    if (root / "ft0.safetensors").exists() and (root / "base.safetensors").exists():
        from safetensors import safe_open

        with safe_open(str(root / "base.safetensors"), "pt") as b, safe_open(str(root / "ft0.safetensors"), "pt") as f:
            for name in LARGE:
                tau = f.get_tensor(name).float() - b.get_tensor(name).float()
                out.append((name.removeprefix("model."), "large-v3 cache, ft0 - base", tau))
    else:
        out += [(name.removeprefix("model."), "synthetic i^-0.7", synthetic(*shape)) for name, shape in LARGE.items()]
    out.append(("whisper-base fc1 shape", "synthetic i^-0.7", synthetic(2048, 512, seed=1)))
    return out


def best(fn, repeats: int = 2) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def truncation_error(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor, exact: torch.Tensor, k: int) -> float:
    approx = (u[:, :k].double() * s[:k].double()) @ v[:, :k].double().mT
    return float(torch.linalg.vector_norm(approx - exact) / torch.linalg.vector_norm(exact))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="5,10")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for label, source, a in matrices():
        m, n = a.shape
        eu, es, evh = torch.linalg.svd(a.double(), full_matrices=False)
        fu, fs, fvh = svd(a)
        t_svd = best(lambda a=a: svd(a))
        for T in (int(x) for x in args.tasks.split(",")):
            k = max(1, min(m, n) // T)
            exact = (eu[:, :k] * es[:k]) @ evh[:k]
            routed = uses_gram(m, n, k, "cpu", "float32")
            u, s, v, _ = top_svd(a, k)
            t_top = best(lambda a=a, k=k: top_svd(a, k)) if routed else t_svd
            row = (label, source, f"{m} x {n}", T, k, routed and u.shape[1] < min(m, n), t_svd, t_top,
                   truncation_error(fu, fs, fvh.mT, exact, k), truncation_error(u, s, v, exact, k))
            rows.append(row)
            print(" | ".join(str(x) if not isinstance(x, float) else f"{x:.3g}" for x in row), flush=True)
    if args.no_report:
        return
    lines = ["# Top-k triplets: the fp64 Gram route against the fp32 thin SVD", "",
             f"`python -m tests.bench.bench_gram`, {datetime.date.today()}, {platform.machine()}, "
             f"{torch.__version__}, one thread. Times are the fastest of two runs; errors are the rank-k "
             "truncation's relative Frobenius distance from the fp64 SVD's. Route: whether `top_svd` took the "
             "Gram route (else it is the thin SVD). docs/algorithms.md section 3 (top-k triplets).", "",
             "| matrix | source | shape | T | k | route | thin SVD (s) | top_svd (s) | speed-up | thin SVD error | top_svd error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, source, shape, T, k, routed, t_svd, t_top, e_svd, e_top in rows:
        lines.append(f"| {label} | {source} | {shape} | {T} | {k} | {'yes' if routed else 'no'} | {t_svd:.3f} | "
                     f"{t_top:.3f} | {t_svd / t_top:.2f}x | {e_svd:.1e} | {e_top:.1e} |")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
