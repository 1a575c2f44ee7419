"""asrmerge.linalg.svd: thin SVD with one retry, numerical rank, polar factor, Newton-Schulz (docs/algorithms.md section 1, 3, 7.7)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from asrmerge.errors import AsrmergeError
from asrmerge.linalg import svd as linalg
from asrmerge.linalg.svd import (
    NS_COEFFS,
    eps_tol,
    newton_schulz,
    numerical_rank,
    orthogonalise,
    polar,
    svd,
    svdvals,
)
from tests.merge_cases import FP, PROPS, TOL, assert_close, from_svd, generator, ns_scalar, orthonormal

shapes = st.tuples(st.integers(2, 12), st.integers(2, 12))


def random(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64).to(dtype)


# -- thin SVD ---------------------------------------------------------------------------------------

@PROPS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(FP))
def test_svd_is_thin_descending_and_reconstructs(shape: tuple[int, int], seed: int, dtype: torch.dtype) -> None:
    """Tall and wide matrices (wide ones go through their transpose): A = U diag(s) Vh, U and V orthonormal."""
    a = random(shape, seed, dtype)
    u, s, vh = svd(a)
    r = min(shape)
    assert u.shape == (shape[0], r) and s.shape == (r,) and vh.shape == (r, shape[1])
    assert u.dtype == s.dtype == vh.dtype == dtype
    assert bool((s[:-1] >= s[1:]).all()) and bool((s >= 0).all())
    assert_close(from_svd(u, s, vh.mT), a, dtype, tol=10 * TOL[dtype])
    assert_close(u.mT @ u, torch.eye(r, dtype=dtype), dtype, tol=10 * TOL[dtype])
    assert_close(vh @ vh.mT, torch.eye(r, dtype=dtype), dtype, tol=10 * TOL[dtype])
    assert_close(svdvals(a), s, dtype)


@PROPS
@given(shape=shapes, batch=st.integers(2, 4), seed=st.integers(0, 2**31 - 1))
def test_batched_svd_matches_unbatched_in_fp32(shape: tuple[int, int], batch: int, seed: int) -> None:
    """Section 3: batching same-shape tensors matches unbatched results to 1e-5 relative (fp32).

    Compared on what the factors determine uniquely: the singular values and U V^T (full-rank inputs).
    """
    a = random((batch, *shape), seed, torch.float32)
    u, s, vh = svd(a)
    for i in range(batch):
        ui, si, vhi = svd(a[i])
        assert_close(s[i], si, torch.float32)
        assert_close(u[i] @ vh[i], ui @ vhi, torch.float32, scale=1.0)


def test_svd_retries_once_on_the_cpu_in_fp64(monkeypatch: pytest.MonkeyPatch) -> None:
    """Section 3: on LinAlgError, retry once on CPU in fp64; the result comes back in the input's dtype."""
    real = torch.linalg.svd
    calls: list[torch.dtype] = []

    def flaky(x: torch.Tensor, *args, **kw):
        calls.append(x.dtype)
        if len(calls) == 1:
            raise torch.linalg.LinAlgError("did not converge")
        return real(x, *args, **kw)

    monkeypatch.setattr(torch.linalg, "svd", flaky)
    a = random((5, 3), 0, torch.float32)
    u, s, vh = linalg.svd(a, name="model.encoder.layers.0.fc1.weight")
    assert calls == [torch.float32, torch.float64]
    assert u.dtype == s.dtype == vh.dtype == torch.float32
    assert_close(from_svd(u, s, vh.mT), a, torch.float32)


def test_a_second_svd_failure_is_an_error_naming_the_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(x: torch.Tensor, *args, **kw):
        raise torch.linalg.LinAlgError("did not converge")

    monkeypatch.setattr(torch.linalg, "svd", broken)
    with pytest.raises(AsrmergeError) as info:
        linalg.svd(random((4, 4), 0, torch.float32), name="model.decoder.layers.3.fc2.weight")
    assert info.value.subject == "model.decoder.layers.3.fc2.weight"
    assert "twice" in info.value.message


# -- numerical rank ---------------------------------------------------------------------------------

def test_eps_tol_and_numerical_rank_by_hand() -> None:
    """Section 1: rho(A) = #{sigma_i > max(m, n) eps_m sigma_1}; rho(0) = 0.

    sigma = (2, 1e-7, 1e-14, 1e-17) for a 6 x 4 matrix:
    fp64: eps_tol = 6 * 2.22e-16 * 2 = 2.66e-15, so 2, 1e-7 and 1e-14 count: rho = 3;
    fp32: eps_tol = 6 * 1.19e-7 * 2 = 1.43e-6, so only 2 counts: rho = 1.
    """
    s = torch.tensor([2.0, 1e-7, 1e-14, 1e-17], dtype=torch.float64)
    assert eps_tol(2.0, (6, 4), torch.float64) == pytest.approx(6 * 2.220446049250313e-16 * 2, rel=1e-15)
    assert eps_tol(2.0, (6, 4), torch.float32) == pytest.approx(6 * 1.1920928955078125e-07 * 2, rel=1e-15)
    assert numerical_rank(s, (6, 4), torch.float64) == 3
    assert numerical_rank(s, (6, 4), torch.float32) == 1
    assert numerical_rank(torch.zeros(4, dtype=torch.float64), (6, 4), torch.float64) == 0


# -- polar factor (7.7) -----------------------------------------------------------------------------

@PROPS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(FP))
def test_polar_factor_is_orthonormal_tall_and_wide(shape: tuple[int, int], seed: int, dtype: torch.dtype) -> None:
    """Section 7.7: |polar(A)^T polar(A) - I|_max <= 1e-5 (rows for wide A); A = polar(A) H with H symmetric PSD."""
    a = random(shape, seed, dtype)
    p = polar(a)
    assert p.shape == a.shape and p.dtype == dtype
    gram = p.mT @ p if shape[0] >= shape[1] else p @ p.mT
    assert float((gram - torch.eye(min(shape), dtype=dtype)).abs().max()) <= 1e-5
    if shape[0] >= shape[1]:
        h = (p.mT @ a).double()
        assert_close(h, h.mT, dtype, tol=10 * TOL[dtype])
        assert float(torch.linalg.eigvalsh((h + h.mT) / 2).min()) >= -10 * TOL[dtype] * float(h.abs().max())


@PROPS
@given(shape=shapes, rank=st.integers(1, 11), seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(FP))
def test_polar_of_a_rank_deficient_matrix_is_its_partial_isometry(shape: tuple[int, int], rank: int, seed: int,
                                                                  dtype: torch.dtype) -> None:
    """Section 1: only pairs with s_i > eps_tol(A) are kept: P_{:rho} Q_{:rho}^T, a partial isometry of rank rho."""
    m, n = shape
    assume(rank < min(m, n))
    g = generator(seed)
    u, v = orthonormal(m, rank, g), orthonormal(n, rank, g)
    s = torch.rand(rank, generator=g, dtype=torch.float64) + 0.5
    p = polar(from_svd(u, s, v).to(dtype))
    assert_close(p, (u @ v.mT).to(dtype), dtype, tol=100 * TOL[dtype], scale=1.0)
    assert int(torch.linalg.matrix_rank(p.double(), atol=0.5)) == rank
    assert_close(p @ p.mT @ p, p, dtype, tol=100 * TOL[dtype], scale=1.0)


def test_polar_by_hand() -> None:
    """[[0, 2], [3, 0]] = I diag(3, 2) [[0, 1], [1, 0]] up to order: polar = [[0, 1], [1, 0]].

    [[1, 1], [0, 0]] = e_1 * sqrt(2) * ((1, 1)/sqrt(2))^T has rank 1: polar = e_1 (1, 1)/sqrt(2), and the
    null pair (s_2 = 0) is not completed.
    """
    a = torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64)
    assert_close(polar(a), torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    b = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    r = 1 / math.sqrt(2)
    assert_close(polar(b), torch.tensor([[r, r], [0.0, 0.0]], dtype=torch.float64))
    assert torch.equal(polar(torch.zeros(3, 2, dtype=torch.float64)), torch.zeros(3, 2, dtype=torch.float64))


@PROPS
@given(m=st.integers(2, 12), k=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_eigh_orthogonalisation_equals_the_polar_factor_on_full_column_rank(m: int, k: int, seed: int) -> None:
    """Section 6.3: U-bar Q diag(1/(sqrt|lambda| + 1e-12)) Q^T = polar(U-bar) when U-bar has full column rank."""
    assume(k <= m)
    a = random((m, k), seed, torch.float64)
    assume(float(torch.linalg.svdvals(a)[-1]) > 1e-3)
    assert_close(orthogonalise(a, "eigh"), polar(a), tol=1e-8, scale=1.0)


# -- Newton-Schulz (section 3, 7.7) ------------------------------------------------------------------

def test_ns_coefficients_are_the_specs() -> None:
    assert NS_COEFFS["muon"] == ((3.4445, -4.7750, 2.0315),)
    assert NS_COEFFS["schedule"] == ((4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037),
                                     (2.8769, -3.1427, 1.2046), (2.8366, -3.0525, 1.2012))
    assert NS_COEFFS["cubic"] == ((1.5, -0.5, 0.0),)


def test_ns_scalar_maps_by_hand() -> None:
    """Section 3, on a fine grid of the scalar map: muon sends [2e-3, 1] into [0.68, 1.21] and multiplies
    values near 1e-3 by ~485; schedule sends [1e-2, 1] into [0.9775, 1.032] (the spec rounds the low end to
    0.978; the exact minimum is 0.97775)."""
    grid = [10 ** (-2.699 + 2.699 * i / 4000) for i in range(4001)] + [2e-3 + i * (1 - 2e-3) / 4000 for i in range(4001)]
    muon = [ns_scalar(x, "muon") for x in grid]
    assert min(muon) >= 0.68 and max(muon) <= 1.21
    assert 450 <= ns_scalar(1e-3, "muon") / 1e-3 <= 490
    sched = [ns_scalar(x, "schedule") for x in grid if x >= 1e-2]
    assert min(sched) >= 0.9775 and max(sched) <= 1.032


@PROPS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(FP), log_lo=st.floats(-2.69, -0.1))
def test_ns_muon_maps_normalised_singular_values_in_2e_3_1_into_0_68_1_21(shape: tuple[int, int], seed: int,
                                                                          dtype: torch.dtype, log_lo: float) -> None:
    """Section 7.7: with muon, output singular values lie in [0.68, 1.21] when the normalised input's lie in [2e-3, 1]."""
    m, n = shape
    r = min(m, n)
    g = generator(seed)
    s = torch.cat([torch.tensor([1.0, 10**log_lo], dtype=torch.float64),
                   10 ** (log_lo * torch.rand(r - 2, generator=g, dtype=torch.float64))])[:r]
    s = s * 3.7 / float(s.norm())  # the kernel divides by the Frobenius norm again
    normalised = s / (float(s.norm()) + 1e-7)
    assume(float(normalised.min()) >= 2e-3)
    a = from_svd(orthonormal(m, r, g), s, orthonormal(n, r, g)).to(dtype)
    out = torch.linalg.svdvals(newton_schulz(a, 5, "muon").double())
    assert float(out.min()) >= 0.68 - 1e-5 and float(out.max()) <= 1.21 + 1e-5


@PROPS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(FP),
       coeffs=st.sampled_from(["muon", "schedule", "cubic"]), steps=st.integers(1, 8))
def test_ns_commutes_with_right_orthogonal_factors(shape: tuple[int, int], seed: int, dtype: torch.dtype,
                                                   coeffs: str, steps: int) -> None:
    """Section 3: NS(A Q) = NS(A) Q for orthogonal Q (tall and wide A)."""
    a = random(shape, seed, dtype)
    q = orthonormal(shape[1], shape[1], generator(seed + 1)).to(dtype)
    assert_close(newton_schulz(a @ q, steps, coeffs), newton_schulz(a, steps, coeffs) @ q, dtype, scale=1.0)


@PROPS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(FP),
       kind=st.sampled_from(["zero", "rank1", "tiny", "huge", "random"]), coeffs=st.sampled_from(["muon", "schedule", "cubic"]))
def test_ns_never_fails_and_zero_gives_zero(shape: tuple[int, int], seed: int, dtype: torch.dtype, kind: str,
                                            coeffs: str) -> None:
    """Section 3: zero in, zero out; finite output of the input's shape and dtype for any finite input."""
    a = random(shape, seed, torch.float64)
    a = {"zero": a * 0, "rank1": a[:, :1] @ a[:1, :], "tiny": a * 1e-30, "huge": a * 1e30, "random": a}[kind].to(dtype)
    out = newton_schulz(a, 5, coeffs)
    assert out.shape == a.shape and out.dtype == dtype
    assert bool(torch.isfinite(out).all())
    if kind == "zero":
        assert torch.equal(out, torch.zeros_like(a))


@PROPS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_cubic_ns_converges_to_the_polar_factor_in_about_30_steps(shape: tuple[int, int], seed: int) -> None:
    """Section 3: cubic = (1.5, -0.5, 0), classical Newton-Schulz, converges to polar(A) with K ~ 30."""
    m, n = shape
    r = min(m, n)
    g = generator(seed)
    s = torch.rand(r, generator=g, dtype=torch.float64) * 0.9 + 0.1  # condition number <= 10
    a = from_svd(orthonormal(m, r, g), s, orthonormal(n, r, g))
    assert_close(newton_schulz(a, 30, "cubic"), polar(a), tol=1e-6, scale=1.0)


def test_ns_on_a_scaled_orthogonal_matrix_by_hand() -> None:
    """A = 2 I_3 has normalised singular values 2 / (|A|_F + 1e-7) = 2 / (2 sqrt 3 + 1e-7) = 0.57735...;
    NS returns the scalar map of that value times I, e.g. muon: p(x) = 3.4445 x - 4.7750 x^3 + 2.0315 x^5
    applied five times."""
    a = 2 * torch.eye(3, dtype=torch.float64)
    x0 = 2 / (2 * math.sqrt(3) + 1e-7)
    for coeffs in ("muon", "schedule", "cubic"):
        assert_close(newton_schulz(a, 5, coeffs), ns_scalar(x0, coeffs) * torch.eye(3, dtype=torch.float64))
