"""tsvm: truncate each task's SVD, concatenate, orthogonalise, recombine (docs/algorithms.md section 6.3).

4 x 4 hand cases: Hd is the Hadamard matrix (columns h_i), e_i the unit vectors. For overlapping tasks
u = (24/25, 7/25, 0, 0) makes cos(e_1, u) = c = 24/25 with 1 + c = (7/5)^2 and 1 - c = (1/5)^2, so
([e_1, u]^T [e_1, u])^(-1/2) = [[20/7, -15/7], [-15/7, 20/7]] is rational and
polar([e_1, u]) = [e_1, u] [[20/7, -15/7], [-15/7, 20/7]] = [(4/5, -3/5, 0, 0), (3/5, 4/5, 0, 0)].
"""

from __future__ import annotations

import math
from fractions import Fraction as F

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.errors import UsageError
from tests.merge_cases import PROPS, assert_close, exact, generator, hadamard4, merge_one, ns_scalar

HD = hadamard4()
E = torch.eye(4, dtype=torch.float64)
U = exact([F(24, 25), F(7, 25), 0, 0])
Q = exact([[F(4, 5), F(3, 5)], [F(-3, 5), F(4, 5)], [0, 0], [0, 0]])  # polar([e_1, u])


def diag(*s: float) -> torch.Tensor:
    return torch.diag(torch.tensor(s, dtype=torch.float64))


def test_truncation_keeps_each_tasks_top_k_by_hand() -> None:
    """T = 2, r = 4, rank_frac 1/T: k = 2.
    tau_1 = Hd diag(5, 3, 1, 0): keeps (5, h_1, e_1), (3, h_2, e_2); drops (1, h_3, e_3).
    tau_2 = 4 h_3 e_3^T + 2 h_4 e_4^T + h_1 e_1^T: keeps (4, h_3, e_3), (2, h_4, e_4); drops (1, h_1, e_1).
    U-bar = [h_1, h_2, h_3, h_4] and V-bar = I are orthonormal: tau* = Hd diag(5, 3, 4, 2)
    (ta would give Hd diag(6, 3, 5, 2))."""
    taus = [HD @ diag(5, 3, 1, 0), HD @ diag(1, 0, 4, 2)]
    assert_close(merge_one("tsvm", taus), HD @ diag(5, 3, 4, 2))
    assert_close(merge_one("tsvm", taus, params={"orth": "eigh"}), HD @ diag(5, 3, 4, 2))


def test_overlapping_singular_vectors_by_hand() -> None:
    """tau_1 = 3 e_1 e_1^T, tau_2 = 2 u u^T (rank 1 each: k_t = 1 although k = 2).
    U-bar = V-bar = [e_1, u], U_perp = V_perp = Q = [q_1, q_2] (module docstring).
    tau* = 3 q_1 q_1^T + 2 q_2 q_2^T = 3 [[16, -12], [-12, 9]]/25 + 2 [[9, 12], [12, 16]]/25
         = [[66, -12], [-12, 59]]/25 in the top-left block, 0 elsewhere."""
    taus = [3 * torch.outer(E[0], E[0]), 2 * torch.outer(U, U)]
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[:2, :2] = exact([[F(66, 25), F(-12, 25)], [F(-12, 25), F(59, 25)]])
    assert_close(merge_one("tsvm", taus), expected)
    assert_close(merge_one("tsvm", taus, params={"orth": "eigh"}), expected, tol=1e-10)


def test_overlapping_singular_vectors_with_newton_schulz_by_hand() -> None:
    """Same tasks, orth=ns: U-bar = [e_1, u] = P diag(7/5, 1/5) W^T with W = [[1, 1], [1, -1]]/sqrt 2
    (U-bar^T U-bar = [[1, c], [c, 1]] has eigenvalues 1 +- c). |U-bar|_F = sqrt 2, so NS(U-bar) =
    P diag(f(7/5/(sqrt 2 + 1e-7)), f(1/5/(sqrt 2 + 1e-7))) W^T = U-bar W diag(f_i / s_i) W^T (f: the muon map,
    five steps); V-bar = U-bar, so tau* = N diag(3, 2) N^T with N = U-bar W diag(f_i / s_i) W^T."""
    taus = [3 * torch.outer(E[0], E[0]), 2 * torch.outer(U, U)]
    ubar = torch.stack([E[0], U], 1)
    w = exact([[1, 1], [1, -1]]) / math.sqrt(2)
    s = [7 / 5, 1 / 5]
    f = [ns_scalar(si / (math.sqrt(2) + 1e-7)) for si in s]
    n = ubar @ w @ diag(f[0] / s[0], f[1] / s[1]) @ w.T
    assert_close(merge_one("tsvm-ns", taus), n @ diag(3, 2) @ n.T)


def test_rank_frac_one_on_square_full_rank_tasks_is_the_mean_by_hand() -> None:
    """2 x 2 tasks tau_1 = diag(2, 1), tau_2 = R diag(3, 1) (R a rotation by 90 degrees), rank_frac 1:
    U-bar = [I, R] (2 x 4, wide) has U-bar U-bar^T = 2I, so polar(U-bar) = U-bar / sqrt 2 (orthonormal rows);
    V-bar = [I, I] likewise. tau* = U-bar diag(2, 1, 3, 1) V-bar^T / 2 = (tau_1 + tau_2) / 2."""
    r = exact([[0, -1], [1, 0]])
    taus = [diag(2, 1), r @ diag(3, 1)]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 1.0}), (taus[0] + taus[1]) / 2)


@PROPS
@given(n=st.integers(2, 8), T=st.integers(2, 4), seed=st.integers(0, 2**31 - 1))
def test_rank_frac_one_on_square_full_rank_tasks_is_the_mean(n: int, T: int, seed: int) -> None:
    """The hand case in general: with m = n and full-rank tasks U-bar U-bar^T = T I, so tau* = (1/T) sum_t tau_t."""
    g = generator(seed)
    taus = [torch.randn(n, n, generator=g, dtype=torch.float64) for _ in range(T)]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 1.0}), sum(taus) / T, tol=1e-9)


def test_zero_tasks_give_k_zero_and_w0() -> None:
    """K = 0: every tau_t is 0, tau* = 0 and W* = W_0; a zero task among others adds no triplets."""
    base = HD.clone()
    assert torch.equal(merge_one("tsvm", [torch.zeros(4, 4, dtype=torch.float64)] * 3, base), base)
    taus = [HD @ diag(5, 3, 1, 0), torch.zeros(4, 4, dtype=torch.float64)]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 0.5}), HD @ diag(5, 3, 0, 0))


def test_eigh_with_more_columns_than_min_m_n_is_a_usage_error() -> None:
    """orth=eigh is only valid for K <= min(m, n): two full-rank 3 x 3 tasks with rank_frac 1 give K = 6 > 3.
    orth=svd handles the wide U-bar (orthonormal rows)."""
    g = generator(0)
    taus = [torch.randn(3, 3, generator=g, dtype=torch.float64) for _ in range(2)]
    with pytest.raises(UsageError, match="eigh"):
        merge_one("tsvm", taus, params={"orth": "eigh", "rank_frac": 1.0})
    assert bool(torch.isfinite(merge_one("tsvm", taus, params={"rank_frac": 1.0})).all())
