"""Single-matrix quantities of svd-inspect (docs/algorithms.md section 8.1) against closed forms and their bounds."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asrmerge.diagnostics.spectra import (
    boost,
    effective_rank,
    energy,
    keep_rank,
    matrix_stats,
    rank_at,
    rounding_loss,
    stable_rank,
)
from asrmerge.linalg.svd import svdvals
from tests.spectral import with_spectrum

SIGMA = [5.0, 4.0, 3.0, 2.0, 1.0]


def stats_of(a: torch.Tensor, **kw) -> dict:
    kw = {"rank_frac": 0.25, "beta": 0.3, **kw}
    return matrix_stats(svdvals(a), tuple(a.shape), a.dtype, **kw)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(12, 8), (8, 12)])
def test_known_singular_values(dtype: torch.dtype, tol: float, shape: tuple[int, int]) -> None:
    """U diag(5,4,3,2,1) V^T: every field by hand."""
    a = with_spectrum(SIGMA, *shape, seed=3, dtype=dtype)
    s = stats_of(a)
    close = lambda x, y: abs(x - y) <= tol * max(1.0, abs(y))  # noqa: E731
    assert s["spectrum"][:5] == pytest.approx(SIGMA, rel=tol, abs=tol)
    assert all(abs(v) <= 10 * tol * 5 for v in s["spectrum"][5:]) and len(s["spectrum"]) == 8
    assert close(s["fro"], math.sqrt(55)) and close(s["spec"], 5) and close(s["nuc"], 15)
    assert s["nrank"] == 5
    # E = 25/55, 41/55, 50/55, 54/55, 1
    assert s["rank90"] == 3 and s["rank99"] == 5
    p = [x / 15 for x in SIGMA]
    assert close(s["erank"], math.exp(-sum(q * math.log(q) for q in p)))
    assert close(s["srank"], 55 / 25)
    # p = 1/4 of r = 8: k = 2; E(2) = 41/55; the sigma-sum kept 9/15; boost at beta 0.3: c = 5/9 >= 0.3 at j* = 1
    assert s["k_keep"] == 2 and close(s["e_keep"], 41 / 55) and close(s["boost_c"], 9 / 15)
    assert s["boost_j"] == 1 and close(s["boost_gain"], 10 / 9)


def test_zero_matrix_gives_zeros_and_nulls() -> None:
    s = stats_of(torch.zeros(6, 4))
    assert (s["fro"], s["spec"], s["nuc"], s["nrank"], s["erank"], s["srank"], s["rank90"], s["rank99"]) == (0, 0, 0, 0, 0, 0, 0, 0)
    assert s["k_keep"] == 0 and s["e_keep"] is None and s["boost_c"] is None
    assert s["boost_j"] is None and s["boost_gain"] is None and s["spectrum"] == [0.0] * 4


def test_flat_spectrum_has_srank_and_erank_equal_to_rho() -> None:
    """An iso-c-like update: rho equal singular values give srank = erank = rho."""
    a = with_spectrum([2.0] * 5, 9, 7, seed=1, dtype=torch.float32)
    s = stats_of(a)
    assert s["nrank"] == 5
    assert s["srank"] == pytest.approx(5, rel=1e-5) and s["erank"] == pytest.approx(5, rel=1e-5)


def test_rank_one_has_unit_ranks() -> None:
    s = stats_of(with_spectrum([3.0], 10, 6, seed=2, dtype=torch.float32))
    assert s["nrank"] == 1 and s["rank90"] == 1 and s["rank99"] == 1
    assert s["erank"] == pytest.approx(1, abs=1e-6) and s["srank"] == pytest.approx(1, abs=1e-6)
    assert s["e_keep"] == pytest.approx(1.0, abs=1e-6) and s["boost_gain"] == 1.0


def test_top_and_full_spectrum() -> None:
    a = torch.randn(100, 80, generator=torch.Generator().manual_seed(0))
    assert len(stats_of(a)["spectrum"]) == 64
    full = stats_of(a, top=None)["spectrum"]
    assert len(full) == 80 and full == sorted(full, reverse=True)


spectra = st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=8).map(lambda v: sorted(v, reverse=True))


@settings(max_examples=60, deadline=None)
@given(sigma=spectra, extra=st.integers(0, 4), seed=st.integers(0, 1000), p=st.floats(0.01, 1.0),
       beta=st.floats(0.01, 1.0))
def test_bounds_hold_for_any_spectrum(sigma: list[float], extra: int, seed: int, p: float, beta: float) -> None:
    """erank, srank in [1, rho] (0 for zero); rank90 <= rank99 <= r; e_keep in [0, 1]; the boost only lifts."""
    m, n = len(sigma) + extra, len(sigma)
    a = with_spectrum(sigma, m, n, seed=seed)
    s = stats_of(a, rank_frac=p, beta=beta)
    rho = s["nrank"]
    assert rho <= sum(1 for x in sigma if x > 0)
    if rho == 0:
        assert s["erank"] == 0 and s["srank"] == 0
        return
    assert 1 - 1e-9 <= s["erank"] <= rho * (1 + 1e-9)
    assert 1 - 1e-9 <= s["srank"] <= rho * (1 + 1e-9)
    assert 1 <= s["rank90"] <= s["rank99"] <= n
    assert 1 <= s["k_keep"] <= rho and s["k_keep"] == min(max(1, math.floor(p * n)), rho)
    assert 0 <= s["e_keep"] <= 1 + 1e-12 and 0 <= s["boost_c"] <= 1 + 1e-12
    if beta < 1:
        assert 1 <= s["boost_j"] <= s["k_keep"]
    assert s["boost_gain"] >= 1 - 1e-12
    assert s["fro"] == pytest.approx(math.sqrt(sum(x * x for x in sigma)), rel=1e-9, abs=1e-12)


def test_energy_and_rank_at() -> None:
    e = energy(torch.tensor([3.0, 1.0]))  # 9/10, 1
    assert e.tolist() == pytest.approx([0.9, 1.0])
    assert rank_at(e, 0.9) == 1 and rank_at(e, 0.99) == 2
    assert rank_at(energy(torch.zeros(3)), 0.9) == 0


def test_effective_and_stable_rank_closed_forms() -> None:
    assert effective_rank(torch.tensor([1.0, 1.0, 1.0, 1.0])) == pytest.approx(4)
    assert effective_rank(torch.tensor([1.0, 0.0])) == pytest.approx(1)  # 0 ln 0 = 0
    assert effective_rank(torch.zeros(3)) == 0.0
    assert stable_rank(torch.tensor([2.0, 1.0])) == pytest.approx(1.25)
    assert stable_rank(torch.zeros(2)) == 0.0


def test_keep_rank_is_the_tsvm_truncation() -> None:
    assert keep_rank(512, 1 / 3, 512) == 170
    assert keep_rank(10, 0.01, 10) == 1  # at least one
    assert keep_rank(10, 0.5, 3) == 3  # no more than rho
    assert keep_rank(10, 0.5, 0) == 0


def test_boost_by_hand() -> None:
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])  # c = 0.4, 0.7, 0.9, 1
    assert boost(s, 0.5) == (2, pytest.approx(13 / 10))  # sigma' = 4, 3, 3, 3
    assert boost(s, 0.4) == (1, pytest.approx(16 / 10))  # every value lifted to sigma_1
    assert boost(s, 1.0) == (None, 1.0)  # beta >= 1 skips the boost
    assert boost(torch.zeros(3), 0.3) == (None, None)


def test_rounding_loss_closed_form() -> None:
    """fp16 has a half-ulp of 2^-11 ~ 4.9e-4 at 1.0 (2^-12 just below 1): +-1e-5 vanish, 1e-2 survives."""
    base = torch.ones(4, dtype=torch.float16)
    update = torch.tensor([1e-5, 1e-2, 0.0, -1e-5])
    assert rounding_loss(update, base, torch.float16) == 0.5
    assert rounding_loss(update, base, torch.float32) == 0.0
    assert rounding_loss(torch.tensor([3e-3, 1e-2]), base[:2], torch.bfloat16) == 0.5  # bf16 half-ulp 2^-8
    assert rounding_loss(torch.zeros(3), base[:3], torch.float16) == 0.0
