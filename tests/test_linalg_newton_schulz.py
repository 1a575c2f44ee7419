"""Newton-Schulz's spectral route (docs/algorithms.md section 3): NS_K(A) = h(G) X through the fp64
eigendecomposition of the Gram matrix, its certified bound, and the steps it falls back to."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.linalg import newton_schulz as ns
from asrmerge.linalg.newton_schulz import (
    SPECTRAL_TOL,
    certified,
    newton_schulz,
    newton_schulz_spectral,
    newton_schulz_steps,
    ns_products,
    spectral_bound,
)
from tests.merge_cases import PROPS, assert_close, from_svd, generator, ns_scalar, orthonormal


def concatenation(m: int, T: int, k: int, seed: int) -> torch.Tensor:
    """TSV-M's U-bar in fp32: the top-k left singular vectors of T task matrices with decaying spectra, side by side."""
    g = generator(seed)
    blocks = []
    for _ in range(T):
        spectrum = torch.logspace(0, -3, 96, dtype=torch.float64)
        tau = from_svd(orthonormal(m, 96, g), spectrum, orthonormal(96, 96, g))
        blocks.append(torch.linalg.svd(tau, full_matrices=False)[0][:, :k])
    return torch.cat(blocks, 1).float()


def rel_fro(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).norm() / expected.double().norm())


@pytest.mark.parametrize(("m", "T", "k"), [(640, 2, 48), (96, 4, 24), (700, 8, 12)])
@pytest.mark.parametrize("coeffs", ["muon", "schedule", "cubic"])
def test_spectral_route_agrees_with_the_steps_in_fp64(m: int, T: int, k: int, coeffs: str) -> None:
    """On TSV-M's concatenations in fp32 (tall, and wide through the transpose) the route the CPU takes is the
    spectral one, and it is within 1e-5 of NS_K computed by its steps in fp64 (max norm, relative), and within
    its certified bound (Frobenius)."""
    for a in (concatenation(m, T, k, seed=T), concatenation(m, T, k, seed=T + 1).mT):
        spectral = newton_schulz_spectral(a, 5, coeffs)
        assert spectral is not None and spectral.dtype == torch.float32 and spectral.shape == a.shape
        assert torch.equal(newton_schulz(a, 5, coeffs), spectral)
        exact = newton_schulz_steps(a.double(), 5, coeffs)
        assert_close(spectral, exact, tol=1e-5, scale=1.0)
        s, w = min(a.shape), max(a.shape)
        assert float((spectral.double() - exact).norm()) <= spectral_bound(s, w, 5, coeffs) + 1e-6 * math.sqrt(s * w)


@PROPS
@given(m=st.integers(2, 40), n=st.integers(2, 40), seed=st.integers(0, 2**31 - 1),
       coeffs=st.sampled_from(["muon", "schedule", "cubic"]), steps=st.integers(1, 5))
def test_spectral_route_is_ns_k_on_any_matrix(m: int, n: int, seed: int, coeffs: str, steps: int) -> None:
    """Whenever the spectral route answers, it is NS_K (the fp64 steps) to 1e-5 relative to its output's
    scale; with at most five steps of these tables it answers on these sizes."""
    a = torch.randn(m, n, generator=generator(seed), dtype=torch.float64).float()
    spectral = newton_schulz_spectral(a, steps, coeffs)
    assert spectral is not None
    assert_close(spectral, newton_schulz_steps(a.double(), steps, coeffs), tol=1e-5, scale=1.0)


def test_the_scalar_polynomial_is_the_iteration_on_one_singular_value() -> None:
    """sigma h(sigma^2) is what the steps do to a normalised singular value sigma (section 3)."""
    sigma = torch.tensor([1e-3, 0.05, 0.3, 0.57735, 0.9, 1.0], dtype=torch.float64)
    for coeffs in ("muon", "schedule", "cubic"):
        h, dh = ns._h(sigma * sigma, 5, coeffs)
        for x, hx in zip(sigma.tolist(), h.tolist(), strict=True):
            assert math.isclose(x * hx, ns_scalar(x, coeffs), rel_tol=1e-12)
        lam = sigma * sigma
        step = 1e-7
        numeric = (ns._h(lam + step, 5, coeffs)[0] - ns._h(lam - step, 5, coeffs)[0]) / (2 * step)
        assert torch.allclose(dh, numeric, rtol=1e-5)


def test_fallback_fires_where_the_bound_does_not_certify() -> None:
    """A rank-one 2 x 6000 matrix: its output's norm is ~1 while the bound grows with the long side (above
    1e-5 here), so the route declines and newton_schulz runs the steps, bit for bit. So does muon with eight
    steps, whose h' reaches ~1e12, on any matrix."""
    g = generator(3)
    rank_one = (torch.randn(2, 1, generator=g, dtype=torch.float64) @ torch.randn(1, 6000, generator=g,
                                                                                   dtype=torch.float64)).float()
    assert spectral_bound(2, 6000, 5, "muon") > SPECTRAL_TOL * 1.25
    assert newton_schulz_spectral(rank_one, 5, "muon") is None
    assert torch.equal(newton_schulz(rank_one, 5, "muon"), newton_schulz_steps(rank_one, 5, "muon"))
    full = torch.randn(30, 50, generator=g, dtype=torch.float64).float()
    assert newton_schulz_spectral(full, 5, "muon") is not None
    assert not certified(30, 50, 8, "muon", math.sqrt(30))
    assert newton_schulz_spectral(full, 8, "muon") is None
    assert torch.equal(newton_schulz(full, 8, "muon"), newton_schulz_steps(full, 8, "muon"))


def test_fp64_and_other_devices_run_the_steps() -> None:
    """The route is for fp32, fp16 and bf16 on the CPU: fp64 is NS_K by its steps, bit for bit."""
    a = torch.randn(20, 9, generator=generator(5), dtype=torch.float64)
    assert torch.equal(newton_schulz(a), newton_schulz_steps(a))
    assert ns.uses_spectral("cpu", "float32") and ns.uses_spectral("cpu", "bfloat16")
    assert not ns.uses_spectral("cuda", "float32") and not ns.uses_spectral("cpu", "float64")


def test_stacks_zero_and_extreme_scales() -> None:
    """A stack gives each matrix's own result; a zero matrix gives zero; 1e30 and 1e-30 inputs give NS_K
    (scale-free above the 1e-7 guard of the normalisation, linear below it)."""
    g = generator(11)
    stack = torch.randn(3, 40, 16, generator=g, dtype=torch.float64).float()
    stack[1] = 0
    out = newton_schulz_spectral(stack)
    assert out is not None
    for i in (0, 2):
        one = newton_schulz_spectral(stack[i])
        assert one is not None
        assert_close(out[i], one, tol=1e-6, scale=1.0)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    a = stack[0].double()
    assert_close(newton_schulz((a * 1e30).float()), newton_schulz_steps(a), tol=1e-5, scale=1.0)
    tiny = (a * 1e-30).float()  # below the guard: NS multiplies by ~485 / 1e-7
    assert_close(newton_schulz(tiny), newton_schulz_steps(tiny.double()), tol=1e-5)


def test_dry_run_cost_of_the_spectral_route_is_what_it_multiplies() -> None:
    """ns_products(spectral=True): the fp64 Gram (s^2 w, counted twice for fp64), h(G) (s^3, twice), h(G) X
    (s^2 w) and the eigendecomposition (6 s^3); torch's flop counter sees the three products."""
    from torch.utils.flop_counter import FlopCounterMode

    s, w = 24, 70
    a = torch.randn(w, s, generator=generator(2), dtype=torch.float64).float()
    counter = FlopCounterMode(display=False)
    with counter:
        assert newton_schulz_spectral(a) is not None
    products = s * s * w + s**3 + s * s * w
    assert counter.get_total_flops() == 2 * products
    assert ns_products(w, s, 5, spectral=True) == products + s * s * w + s**3 + 6 * s**3
    assert ns_products(w, s, 5) == 5 * (2 * s * s * w + s**3)
