"""iso-c: flatten the spectrum of the summed task vectors to its mean singular value (docs/algorithms.md section 6.1).

Hand cases use H = (1/3) [[1, 2, 2], [2, 1, -2], [2, -2, 1]], an orthogonal matrix with rational entries:
tau = H diag(s) has the SVD U = H, sigma = s (sorted), V = I.
"""

from __future__ import annotations

from fractions import Fraction as F

import torch

from tests.merge_cases import assert_close, exact, merge_one

H = exact([[F(1, 3), F(2, 3), F(2, 3)], [F(2, 3), F(1, 3), F(-2, 3)], [F(2, 3), F(-2, 3), F(1, 3)]])


def diag(*s: float) -> torch.Tensor:
    return torch.diag(torch.tensor(s, dtype=torch.float64))


def test_full_rank_sum_by_hand() -> None:
    """tau_1 = H diag(3, 0, 1), tau_2 = H diag(0, 2, 0): Delta = H diag(3, 2, 1), rho = 3, sigma-bar = 2,
    Delta_iso = 2 H I^T = 2H = (2/3) [[1, 2, 2], [2, 1, -2], [2, -2, 1]]. rank_mode=full agrees (full rank)."""
    taus = [H @ diag(3, 0, 1), H @ diag(0, 2, 0)]
    assert_close(merge_one("iso-c", taus), 2 * H)
    assert_close(merge_one("iso-c", taus, params={"rank_mode": "full"}), 2 * H)


def test_rank_deficient_sum_keeps_rho_directions_by_hand() -> None:
    """tau_1 = H diag(2, 0, 0) with weight 2, tau_2 = H diag(0, 2, 0): Delta = H diag(4, 2, 0), rho = 2,
    sigma-bar = (4 + 2)/2 = 3, Delta_iso = 3 (h_1 e_1^T + h_2 e_2^T) = [[1, 2, 0], [2, 1, 0], [2, -2, 0]].
    lam = 0.5 over W_0 = I halves it."""
    taus = [H @ diag(2, 0, 0), H @ diag(0, 2, 0)]
    expected = exact([[1, 2, 0], [2, 1, 0], [2, -2, 0]])
    assert_close(merge_one("iso-c", taus, weights=[2, 1]), expected)
    eye = torch.eye(3, dtype=torch.float64)
    assert_close(merge_one("iso-c", taus, eye, weights=[2, 1], params={"lam": 0.5}), eye + 0.5 * expected)


def test_rank_mode_full_lifts_a_null_direction() -> None:
    """rank_mode=full (the reference) on Delta = H diag(4, 2, 0): sigma-bar = 6/3 = 2 and Delta_iso = 2 U V^T
    includes the null pair u_3 v_3^T = +-h_3 e_3^T that LAPACK picks: the result is 2 H diag(1, 1, 0) plus
    a rank-1 term of norm 2 in the third column."""
    taus = [H @ diag(4, 0, 0), H @ diag(0, 2, 0)]
    out = merge_one("iso-c", taus, params={"rank_mode": "full"})
    extra = out - 2 * H @ diag(1, 1, 0)
    assert_close(extra[:, :2], torch.zeros(3, 2, dtype=torch.float64), scale=2.0)
    assert abs(float(extra.norm()) - 2.0) < 1e-12


def test_a_zero_sum_gives_w0() -> None:
    """rho(0) = 0: Delta_iso = 0 (antiparallel tasks cancel exactly)."""
    base = exact([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    tau = H @ diag(3, 2, 1)
    assert torch.equal(merge_one("iso-c", [tau, -tau], base), base)
