"""boosted-tsvm: TSV-M with a per-task singular-value boost (docs/algorithms.md section 6.4) and the boost invariants (7.9).

Boost rule: e_i = sigma_i (or sigma_i^2), c_j = sum_{i<=j} e_i / sum e (kept, or the full spectrum),
j* = min{j : c_j >= beta} (else the last index), sigma'_i = max(sigma_i, sigma_{j*}).
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from asrmerge.merge.boosted_tsvm import boost
from tests.merge_cases import PROPS, assert_close, exact, generator, hadamard4, merge_one, ns_scalar
from tests.test_merge_tsvm import rank_deficient_task_sets, reference_tsvm

HD = hadamard4()
E = torch.eye(4, dtype=torch.float64)
U = exact([F(24, 25), F(7, 25), 0, 0])
Q1, Q2 = exact([F(4, 5), F(-3, 5), 0, 0]), exact([F(3, 5), F(4, 5), 0, 0])  # polar([e_1, u]) (see test_merge_tsvm)
SIGMA = exact([8, 4, 2, 1])


def diag(*s: float) -> torch.Tensor:
    return torch.diag(torch.tensor(s, dtype=torch.float64))


@pytest.mark.parametrize("beta,energy,expected", [
    # e = sigma = (8, 4, 2, 1), sum 15: c = (8/15 = .533, 12/15 = .8, 14/15 = .933, 1)
    (0.5, "sigma", [8, 8, 8, 8]),  # c_1 >= .5: j* = 1, every value lifted to 8
    (0.6, "sigma", [8, 4, 4, 4]),  # j* = 2
    (0.9, "sigma", [8, 4, 2, 2]),  # j* = 3
    (0.95, "sigma", [8, 4, 2, 1]),  # j* = 4: nothing to lift
    # e = sigma^2 = (64, 16, 4, 1), sum 85: c = (.753, .941, .988, 1)
    (0.7, "sigma2", [8, 8, 8, 8]),
    (0.9, "sigma2", [8, 4, 4, 4]),
    (0.95, "sigma2", [8, 4, 2, 2]),
    (0.99, "sigma2", [8, 4, 2, 1]),
])
def test_boost_by_hand(beta: float, energy: str, expected: list[int]) -> None:
    assert torch.equal(boost(SIGMA, SIGMA, beta, energy, "kept"), exact(expected))


def test_boost_scope_by_hand() -> None:
    """Kept (8, 4) of the spectrum (8, 4, 2, 1).
    kept: c = (8/12, 1); beta 0.6 -> j* = 1 -> (8, 8).
    full: c = (8/15, 12/15); beta 0.6 -> j* = 2 -> (8, 4); beta 0.9 -> no j reaches it, the last index -> (8, 4)."""
    kept = SIGMA[:2]
    assert torch.equal(boost(kept, SIGMA, 0.6, "sigma", "kept"), exact([8, 8]))
    assert torch.equal(boost(kept, SIGMA, 0.6, "sigma", "full"), exact([8, 4]))
    assert torch.equal(boost(kept, SIGMA, 0.9, "sigma", "full"), exact([8, 4]))


def test_boost_skips_beta_one_empty_and_zero_energy() -> None:
    """beta >= 1, k_t = 0 and sum e = 0 leave sigma unchanged (beta = 1 alone would lift trailing zeros)."""
    trailing = exact([3, 1, 0, 0])
    assert torch.equal(boost(trailing, trailing, 1.0), trailing)
    assert torch.equal(boost(trailing, trailing, 0.999), exact([3, 1, 1, 1]))  # the rule itself lifts them
    empty = torch.zeros(0, dtype=torch.float64)
    assert boost(empty, SIGMA, 0.3).numel() == 0
    zeros = torch.zeros(3, dtype=torch.float64)
    assert torch.equal(boost(zeros, zeros, 0.3), zeros)


def test_orthogonal_tasks_merge_by_hand() -> None:
    """T = 2, r = 4, k = 2, beta 0.5, orth=svd.
    tau_1 = Hd diag(6, 2, 1, 0): kept (6, 2), c = (6/8, 1), j* = 1 -> sigma' = (6, 6).
    tau_2 = Hd diag(0, 0, 4, 3): kept (4, 3) on (h_3, e_3), (h_4, e_4), c = (4/7, 1), j* = 1 -> (4, 4).
    U-bar = [h_1, h_2, h_3, h_4], V-bar = I: tau* = Hd diag(6, 6, 4, 4). beta 1 is tsvm: Hd diag(6, 2, 4, 3)."""
    taus = [HD @ diag(6, 2, 1, 0), HD @ diag(0, 0, 4, 3)]
    assert_close(merge_one("boosted-tsvm", taus, params={"beta": 0.5, "orth": "svd"}), HD @ diag(6, 6, 4, 4))
    assert_close(merge_one("boosted-tsvm", taus, params={"beta": 1.0, "orth": "svd"}), HD @ diag(6, 2, 4, 3))


def test_orthogonal_tasks_merge_with_the_default_newton_schulz_by_hand() -> None:
    """Same tasks with the default orth=ns (muon, 5 steps): U-bar (orthogonal, |.|_F = 2) becomes f U-bar and
    V-bar = I becomes f I, with f = the muon map of 1/(2 + 1e-7): tau* = f^2 Hd diag(6, 6, 4, 4) (f = 0.765...)."""
    taus = [HD @ diag(6, 2, 1, 0), HD @ diag(0, 0, 4, 3)]
    f = ns_scalar(1 / (2 + 1e-7))
    assert 0.68 <= f <= 1.21
    assert_close(merge_one("boosted-tsvm", taus, params={"beta": 0.5}), f**2 * HD @ diag(6, 6, 4, 4))


def overlapping() -> list[torch.Tensor]:
    """tau_1 = 6 e_1 e_1^T + 2 e_3 e_3^T, tau_2 = 4 u e_2^T + 1 e_4 e_4^T."""
    return [6 * torch.outer(E[0], E[0]) + 2 * torch.outer(E[2], E[2]), 4 * torch.outer(U, E[1]) + torch.outer(E[3], E[3])]


def test_overlapping_tasks_merge_by_hand() -> None:
    """k = 2, orth=svd. U-bar = [e_1, e_3, u, e_4]: polar = [q_1, e_3, q_2, e_4] (q from polar([e_1, u]),
    e_3 and e_4 are orthogonal to the rest); V-bar = [e_1, e_3, e_2, e_4] is orthonormal.
    beta 0.5: tau_1 kept (6, 2), c = (.75, 1), j* = 1 -> (6, 6); tau_2 (4, 1), c = (.8, 1), j* = 1 -> (4, 4).
    tau* = 6 q_1 e_1^T + 6 e_3 e_3^T + 4 q_2 e_2^T + 4 e_4 e_4^T:
    columns (24/5, -18/5, 0, 0), (12/5, 16/5, 0, 0), (0, 0, 6, 0), (0, 0, 0, 4)."""
    expected = exact([[F(24, 5), F(12, 5), 0, 0], [F(-18, 5), F(16, 5), 0, 0], [0, 0, 6, 0], [0, 0, 0, 4]])
    assert_close(merge_one("boosted-tsvm", overlapping(), params={"beta": 0.5, "orth": "svd"}), expected)


def test_boost_energy_sigma2_by_hand() -> None:
    """beta 0.85 on the overlapping tasks. sigma: tau_1 c = (6/8 = .75, 1) -> j* = 2, no boost; tau_2 c = (.8, 1)
    -> no boost: plain tsvm, 6 q_1 e_1^T + 2 e_3 e_3^T + 4 q_2 e_2^T + 1 e_4 e_4^T.
    sigma2: tau_1 c = (36/40 = .9, 1) -> j* = 1 -> (6, 6); tau_2 c = (16/17 = .94, 1) -> (4, 4): the boosted result."""
    params = {"beta": 0.85, "orth": "svd"}
    plain = 6 * torch.outer(Q1, E[0]) + 2 * torch.outer(E[2], E[2]) + 4 * torch.outer(Q2, E[1]) + torch.outer(E[3], E[3])
    boosted = 6 * torch.outer(Q1, E[0]) + 6 * torch.outer(E[2], E[2]) + 4 * torch.outer(Q2, E[1]) + 4 * torch.outer(E[3], E[3])
    assert_close(merge_one("boosted-tsvm", overlapping(), params=params), plain)
    assert_close(merge_one("boosted-tsvm", overlapping(), params={**params, "boost_energy": "sigma2"}), boosted)


def test_boost_scope_full_in_a_merge_by_hand() -> None:
    """One task diag(8, 4, 2, 1), rank_frac 0.5 (k = 2, kept (8, 4)), beta 0.6, orth=svd.
    kept: c = (8/12, 1) -> j* = 1 -> tau* = diag(8, 8, 0, 0); full: c = (8/15, 12/15) -> j* = 2 -> diag(8, 4, 0, 0)."""
    params = {"beta": 0.6, "orth": "svd", "rank_frac": 0.5}
    tau = [diag(8, 4, 2, 1)]
    assert_close(merge_one("boosted-tsvm", tau, params=params), diag(8, 8, 0, 0))
    assert_close(merge_one("boosted-tsvm", tau, params={**params, "boost_scope": "full"}), diag(8, 4, 0, 0))


# -- section 7.9 ---------------------------------------------------------------------------------------

@st.composite
def spectra(draw) -> tuple[torch.Tensor, torch.Tensor]:
    """A descending spectrum (repeats and zeros allowed) and the kept prefix."""
    values = draw(st.lists(st.sampled_from([0.0, 1e-3, 0.5, 1.0, 2.0, 3.0]) | st.floats(0, 100), min_size=1, max_size=12))
    full = torch.sort(torch.tensor(values, dtype=torch.float64), descending=True).values
    k = draw(st.integers(1, full.numel()))
    return full[:k], full


def j_star(sigma: torch.Tensor, full: torch.Tensor, beta: float, energy: str, scope: str) -> int:
    """0-based j* of section 6.4, in exact rational arithmetic."""
    e = [F(x) if energy == "sigma" else F(x) ** 2 for x in sigma.tolist()]
    denom = sum(e) if scope == "kept" else sum(F(x) if energy == "sigma" else F(x) ** 2 for x in full.tolist())
    c = F(0)
    for j, v in enumerate(e):
        c += v
        if c / denom >= F(beta):
            return j
    return len(e) - 1


@PROPS
@given(spec=spectra(), beta=st.floats(0.01, 0.99), beta2=st.floats(0.01, 1.0),
       energy=st.sampled_from(["sigma", "sigma2"]), scope=st.sampled_from(["kept", "full"]))
def test_boost_invariants(spec: tuple[torch.Tensor, torch.Tensor], beta: float, beta2: float, energy: str,
                          scope: str) -> None:
    """7.9: sigma' >= sigma; sigma' non-increasing; sigma'_1 = sigma_1; constant sigma_{j*} from j* on;
    sigma' non-increasing in beta."""
    sigma, full = spec
    assume(float(sigma.sum()) > 0)
    out = boost(sigma, full, beta, energy, scope)
    assert bool((out >= sigma).all())
    assert bool((out[:-1] >= out[1:]).all())
    assert float(out[0]) == float(sigma[0])
    j = j_star(sigma, full, beta, energy, scope)
    assert bool((out[j:] == sigma[j]).all())
    lo, hi = min(beta, beta2), max(beta, beta2)
    assert bool((boost(sigma, full, lo, energy, scope) >= boost(sigma, full, hi, energy, scope)).all())


# -- rank_mode: numerical (ours) and full (the reference TSV-M) -------------------------------------------

@PROPS
@given(m=st.integers(2, 8), n=st.integers(2, 8), T=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       beta=st.floats(0.05, 1.0), orth=st.sampled_from(["svd", "ns"]), energy=st.sampled_from(["sigma", "sigma2"]),
       scope=st.sampled_from(["kept", "full"]))
def test_rank_mode_full_equals_numerical_on_full_rank_tasks(m: int, n: int, T: int, seed: int, beta: float, orth: str,
                                                            energy: str, scope: str) -> None:
    """Full-rank tasks keep k_t = k values in both modes, and U-bar, V-bar have full rank: the rules agree."""
    g = generator(seed)
    taus = [torch.randn(m, n, generator=g, dtype=torch.float64) for _ in range(T)]
    params = {"beta": beta, "orth": orth, "boost_energy": energy, "boost_scope": scope}
    assert_close(merge_one("boosted-tsvm", taus, params={**params, "rank_mode": "full"}),
                 merge_one("boosted-tsvm", taus, params=params))


def clamp(sigma: torch.Tensor, beta: float) -> torch.Tensor:
    """The boost with e = sigma over the kept values, written out: j* = first j with c_j >= beta, else the last."""
    c = torch.cumsum(sigma, 0) / sigma.sum()
    j = next((i for i in range(sigma.numel()) if float(c[i]) >= beta), sigma.numel() - 1)
    return torch.clamp(sigma, min=float(sigma[j]))


@pytest.mark.parametrize("which", ["duplicated", "rank1"])
@pytest.mark.parametrize("beta", [0.3, 0.9, 1.0])
def test_rank_mode_full_is_the_reference_on_rank_deficient_tasks(which: str, beta: float) -> None:
    """Section 6.4 with rank_mode=full: the reference TSV-M with each task's k kept values boosted, the
    numerically zero ones included; beta = 1 is tsvm with rank_mode=full."""
    taus, p = rank_deficient_task_sets()[which]
    k = int(p * min(taus[0].shape))
    params = {"beta": beta, "orth": "svd", "rank_frac": p}
    full = merge_one("boosted-tsvm", taus, params={**params, "rank_mode": "full"})
    assert_close(full, reference_tsvm(taus, k, lift=lambda s: clamp(s, beta) if beta < 1 else s))
    ours = merge_one("boosted-tsvm", taus, params=params)
    assert float((full - ours).abs().max()) > 0.1 * float(ours.abs().max())
    if beta == 1.0:
        assert torch.equal(full, merge_one("tsvm", taus, params={"rank_frac": p, "rank_mode": "full"}))


def test_rank_mode_full_lifts_the_null_triplets_of_rank_one_tasks() -> None:
    """Rank-1 tasks (10 x 8, k = 4): kept (sigma_t, 0, 0, 0), c = (1, 1, 1, 1), so j* = 1 and every kept value,
    the three null ones too, is lifted to sigma_t. U-bar (10 x 8) and V-bar (8 x 8) have full rank, so
    polar(U-bar) has orthonormal columns and polar(V-bar) is orthogonal: tau* has the singular values
    sigma_1 and sigma_2, four times each, where rank_mode=numerical gives rank 2. Finite, for orth=ns as well."""
    taus, p = rank_deficient_task_sets()["rank1"]
    tops = sorted((float(torch.linalg.svdvals(t)[0]) for t in taus), reverse=True)
    full = merge_one("boosted-tsvm", taus, params={"beta": 0.5, "orth": "svd", "rank_frac": p, "rank_mode": "full"})
    expected = torch.tensor([tops[0]] * 4 + [tops[1]] * 4, dtype=torch.float64)
    assert_close(torch.linalg.svdvals(full), expected)
    ours = merge_one("boosted-tsvm", taus, params={"beta": 0.5, "orth": "svd", "rank_frac": p})
    assert int(torch.linalg.matrix_rank(ours)) == 2
    ns = merge_one("boosted-tsvm", taus, params={"beta": 0.5, "rank_frac": p, "rank_mode": "full"})
    assert bool(torch.isfinite(ns).all()) and int(torch.linalg.matrix_rank(ns)) == 8
