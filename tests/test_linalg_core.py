"""Core-space kernels: bases, cores and the lift, and the subspace merges computed on cores (docs/algorithms.md section 6.5).

The reference is always the registered full-space algorithm run through the merge engine (merge_one) on the
dense task vectors tau_t = B_t A_t; the core-space result is lifted and compared to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrmerge.linalg import core
from asrmerge.linalg.svd import newton_schulz
from asrmerge.merge.boosted_tsvm import boost
from asrmerge.merge.iso_cts import sizes
from tests.merge_cases import assert_close, merge_one

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
SHAPES = [(48, 40, 3, 4), (40, 72, 5, 3), (64, 64, 2, 4), (96, 32, 4, 2)]  # m, n, T, r: R = T r < min(m, n)
WEIGHTS = [1.0, 0.5, 2.0, 1.5, 0.75]


def factors(m: int, n: int, T: int, r: int, seed: int, dtype: torch.dtype) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Random LoRA factors B_t (m x r, scale folded in) and A_t (r x n), as peft's init and training shape them."""
    g = torch.Generator().manual_seed(seed)
    bs = [torch.randn(m, r, generator=g, dtype=torch.float64).to(dtype) * 0.05 for _ in range(T)]
    as_ = [torch.randn(r, n, generator=g, dtype=torch.float64).to(dtype) / n**0.5 for _ in range(T)]
    return bs, as_


def setup(m: int, n: int, T: int, r: int, dtype: torch.dtype, seed: int = 0):
    bs, as_ = factors(m, n, T, r, seed, dtype)
    w = WEIGHTS[:T]
    taus = [b @ a for b, a in zip(bs, as_, strict=True)]
    wb = [wt * b for wt, b in zip(w, bs, strict=True)]  # x_t = w_t tau_t: the weight folds into B
    qb, qa = core.bases(wb, as_)
    return taus, w, qb, qa, core.cores(wb, as_, qb, qa)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cores_lift_back_to_the_task_vectors_and_keep_their_spectra(dtype: torch.dtype) -> None:
    bs, as_ = factors(50, 30, 3, 4, 1, dtype)
    bs[2] = bs[0] * 2.0  # a rank-deficient stack: Q_B stays orthonormal and spans it
    bs.append(torch.zeros(50, 0, dtype=dtype))  # an adapter that leaves the matrix alone: rank 0
    as_.append(torch.zeros(0, 30, dtype=dtype))
    qb, qa = core.bases(bs, as_)
    eye = torch.eye(qb.shape[1], dtype=dtype)
    assert_close(qb.mT @ qb, eye, dtype, tol=TOL[dtype] / 10)
    assert_close(qa.mT @ qa, torch.eye(qa.shape[1], dtype=dtype), dtype, tol=TOL[dtype] / 10)
    assert qb.shape == (50, 12) and qa.shape == (30, 12)
    cs = core.cores(bs, as_, qb, qa)
    for b, a, c in zip(bs, as_, cs, strict=True):
        tau = b @ a
        assert c.shape == (12, 12)
        assert_close(core.lift(c, qb, qa), tau, dtype, scale=1.0, tol=TOL[dtype])
        full = torch.linalg.svdvals(tau.double())
        small = torch.linalg.svdvals(c.double())
        assert_close(small, full[:12], dtype, scale=float(full[0]) + 1e-30, tol=TOL[dtype])
        assert float(full[12:].abs().max()) <= 1e-5 * max(float(full[0]), 1e-30)


@pytest.mark.parametrize("shape", [(12, 5), (5, 12), (7, 7)])
def test_newton_schulz_commutes_with_the_isometric_lift(shape: tuple[int, int]) -> None:
    """NS_K(Q X) = Q NS_K(X) for Q with orthonormal columns, whatever X's orientation (tall inputs are iterated
    transposed): the Frobenius normalisation and X^T X are unchanged by Q."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(40, shape[0], generator=g, dtype=torch.float64))
    for coeffs in ("muon", "schedule", "cubic"):
        assert_close(newton_schulz(q @ x, 5, coeffs), q @ newton_schulz(x, 5, coeffs), tol=1e-12)


def cases() -> list[tuple[str, dict, object]]:
    """(algorithm, parameters, core-space rule(cores, shape, T)) for every algorithm and setting that is core-exact."""
    def tsv(orth: str, p: float | None = None, beta: float | None = None, scope: str = "kept"):
        def rule(cs, shape, T):
            k = core.truncation(shape, p if p is not None else 1 / T)
            lift = (lambda s, full: boost(s, full, beta, "sigma", scope)) if beta is not None else None
            return core.tsv(cs, shape, k, orth=orth, boost=lift)
        return rule

    def cts(orth: str, frac: float):
        def rule(cs, shape, T):
            k, s = sizes(min(shape), T, frac)
            return core.iso_cts(cs, shape, k, s, orth=orth)
        return rule

    return [
        ("tsvm", {}, tsv("svd")),
        ("tsvm", {"rank_frac": 0.5}, tsv("svd", 0.5)),
        ("tsvm", {"orth": "eigh"}, tsv("eigh")),
        ("tsvm-ns", {}, tsv("ns")),
        ("boosted-tsvm", {}, tsv("ns", beta=0.3)),
        ("boosted-tsvm", {"beta": 0.5, "orth": "svd", "boost_scope": "full"}, tsv("svd", beta=0.5, scope="full")),
        ("iso-c", {}, lambda cs, shape, T: core.iso_c(sum(cs[1:], cs[0]), shape)),
        ("iso-cts", {}, cts("svd", 0.8)),
        ("iso-cts", {"orth": "ns"}, cts("ns", 0.8)),
        ("iso-cts", {"common_frac": 0.1}, cts("svd", 0.1)),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("case", cases(), ids=lambda c: f"{c[0]}{c[1] or ''}")
def test_core_space_merge_equals_the_full_space_merge(case, dims, dtype: torch.dtype) -> None:
    algo, params, rule = case
    m, n, T, r = dims
    taus, w, qb, qa, cs = setup(m, n, T, r, dtype, seed=m + n + T)
    assert core.worthwhile((m, n), qb.shape[1])
    full = merge_one(algo, taus, params=params, weights=w, dtype=dtype)
    assert float(full.abs().max()) > 0
    assert_close(core.lift(rule(cs, (m, n), T), qb, qa), full, dtype, tol=TOL[dtype], what=f"{algo} {params}")


def test_iso_cts_newton_schulz_on_a_rank_deficient_concatenation_agrees_in_fp64() -> None:
    """common_frac 0.1 keeps more columns than the core has dimensions (K > R): NS amplifies the null directions'
    rounding noise differently in the two spaces (about 1e-4 in fp32), the mathematics is the same (fp64)."""
    m, n, T, r = 48, 40, 3, 4
    taus, w, qb, qa, cs = setup(m, n, T, r, torch.float64, seed=7)
    k, s = sizes(min(m, n), T, 0.1)
    full = merge_one("iso-cts", taus, params={"orth": "ns", "common_frac": 0.1}, weights=w)
    assert_close(core.lift(core.iso_cts(cs, (m, n), k, s, orth="ns"), qb, qa), full, tol=1e-10)


@pytest.mark.parametrize("algo", ["iso-c", "iso-cts", "tsvm", "tsvm-ns", "boosted-tsvm"])
def test_rank_mode_full_leaves_the_core_space(algo: str) -> None:
    """With rank_mode=full the full-space result spreads beyond span(Q_B) x span(Q_A) (iso-c and iso-cts: over all
    min(m, n) directions; tsvm: through each task's null triplets): no core can give it, so the engine must keep
    the full path there."""
    taus, w, qb, qa, _ = setup(48, 40, 3, 4, torch.float64, seed=11)
    full = merge_one(algo, taus, params={"rank_mode": "full"}, weights=w)
    outside = full - qb @ (qb.mT @ full @ qa) @ qa.mT
    assert float(outside.norm()) > 0.1 * float(full.norm())


def test_factors_of_peft_adapters_merge_in_core_space(tiny_base: Path, tmp_path: Path) -> None:
    """The factors asrmerge reads from peft's own adapters (rank and alpha patterns, rsLoRA) give the full-space
    tsvm and iso-c merge of the same adapters' task vectors."""
    from asrmerge.io.checkpoint import open_checkpoint
    from tests.factory import make_lora

    a = make_lora(tiny_base, tmp_path / "a", seed=1, r=2, lora_alpha=4, target_modules=["q_proj", "fc1"],
                  rank_pattern={"fc1": 3}, alpha_pattern={"q_proj": 8})
    b = make_lora(tiny_base, tmp_path / "b", seed=2, r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                  use_rslora=True)
    name = "model.encoder.layers.0.self_attn.q_proj.weight"
    with open_checkpoint(str(tiny_base)) as base, open_checkpoint(str(a), base=base) as ca, \
            open_checkpoint(str(b), base=base) as cb:
        fs = [ca.lora_factors(name), cb.lora_factors(name)]
        fc1 = ca.lora_factors("model.encoder.layers.0.fc1.weight")
        assert fc1 is not None and fc1.rank == 3 and cb.lora_factors("model.encoder.layers.0.fc1.weight").rank == 0
        taus = [ca.get(name), cb.get(name)]
    assert all(f is not None for f in fs)
    bs = [f.scale * f.b.double() for f in fs]
    as_ = [f.a.double() for f in fs]
    for f, t in zip(fs, taus, strict=True):
        assert_close(f.delta(), t.double(), tol=1e-12)
    qb, qa = core.bases(bs, as_)
    cs = core.cores(bs, as_, qb, qa)
    shape = tuple(taus[0].shape)
    full = merge_one("tsvm", [t.double() for t in taus])
    assert_close(core.lift(core.tsv(cs, shape, core.truncation(shape, 0.5)), qb, qa), full, tol=1e-10)
    full = merge_one("iso-c", [t.double() for t in taus])
    assert_close(core.lift(core.iso_c(cs[0] + cs[1], shape), qb, qa), full, tol=1e-10)
