"""CPU and CUDA agree (docs/algorithms.md section 7, item 14). Run on a GPU machine: bin/test -m cuda."""

from __future__ import annotations

import pytest
import torch

from asrmerge.merge.api import merge
from asrmerge.merge.registry import REGISTRY, names
from tests.test_merge_engine import make

pytestmark = pytest.mark.cuda

SUBSPACE = {n for n in names() if REGISTRY[n].space == "subspace"}


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    assert torch.cuda.is_available(), "the cuda tests need a CUDA GPU; CI deselects them with -m 'not cuda'"


@pytest.mark.parametrize("algo", names())
def test_cpu_and_cuda_agree(algo: str) -> None:
    base, fts = make(T=4, seed=1)
    cpu = merge(algo, fts, base=base, device="cpu")
    gpu = merge(algo, fts, base=base, device="cuda")
    tol = 1e-4 if algo in SUBSPACE else 1e-6
    for n in cpu:
        assert gpu[n].device.type == "cpu"  # outputs come back to the host for writing
        scale = max(1.0, float(cpu[n].abs().max()))
        assert float((cpu[n] - gpu[n]).abs().max()) <= tol * scale, (algo, n)


def test_dare_masks_are_identical_on_every_device() -> None:
    base, fts = make(T=3, seed=2)
    for seed in (0, 1):
        cpu = merge("dare-ta", fts, base=base, device="cpu", params={"drop_rate": 0.6, "seed": seed})
        gpu = merge("dare-ta", fts, base=base, device="cuda", params={"drop_rate": 0.6, "seed": seed})
        for n in cpu:
            assert torch.equal((cpu[n] == base[n]), (gpu[n] == base[n]))  # same entries dropped everywhere
            assert torch.allclose(cpu[n], gpu[n], atol=1e-6)


def test_streamed_statistics_on_cuda_match_cpu() -> None:
    base, fts = make(T=3, seed=3)
    for algo, params in (("ties", {"density": 0.3, "scope": "model"}), ("pcb", {"ratio": 0.2})):
        cpu = merge(algo, fts, base=base, params=params, device="cpu", budget=600)
        gpu = merge(algo, fts, base=base, params=params, device="cuda", budget=600)
        for n in cpu:
            assert torch.allclose(cpu[n], gpu[n], atol=1e-6), (algo, n)


def test_newton_schulz_and_polar_on_cuda() -> None:
    from asrmerge.linalg.svd import newton_schulz, polar

    a = torch.randn(96, 40, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    for f in (newton_schulz, polar):
        assert torch.allclose(f(a), f(a.cuda()).cpu(), atol=1e-4)


def test_batched_cuda_merge_matches_per_matrix_cpu() -> None:
    from tests.test_merge_engine import batch_inputs

    base, fts = batch_inputs(T=3)
    for algo in ("tsvm", "boosted-tsvm", "iso-c"):
        cpu = merge(algo, fts, base=base, device="cpu", batch=1)
        gpu = merge(algo, fts, base=base, device="cuda", batch=0)  # 64 per call on CUDA
        for n in cpu:
            assert torch.allclose(cpu[n], gpu[n], atol=1e-4, rtol=1e-4), (algo, n)
