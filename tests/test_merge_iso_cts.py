"""iso-cts: common subspace of the sum plus each task's residual directions, flattened (docs/algorithms.md section 6.2).

Hand cases use the 4 x 4 Hadamard matrix Hd = (1/2) [[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]]
(orthogonal, exact in binary) with columns h_1..h_4: Hd diag(s) = sum_i s_i h_i e_i^T.
"""

from __future__ import annotations

import pytest
import torch

from asrmerge.merge.iso_cts import sizes
from tests.merge_cases import assert_close, hadamard4, merge_one, ns_scalar

HD = hadamard4()


def diag(*s: float) -> torch.Tensor:
    return torch.diag(torch.tensor(s, dtype=torch.float64))


@pytest.mark.parametrize("r,T,f,expected", [
    (1280, 10, 0.8, (1020, 26)),  # the spec's example: k = 1024, round(25.6) * 10 = 260, k = 1020, s = 26
    (4, 3, 0.5, (1, 1)),  # k = 2, round(2/3) = 1, s_tot = 3, k = 1
    (6, 4, 0.0, (2, 1)),  # round(1.5) = 2, s_tot = 8 > 6, so floor(6/4) * 4 = 4: k = 2, s = 1
    (10, 4, 0.0, (2, 2)),  # round(2.5) = 2 (half to even), s_tot = 8
    (14, 4, 0.0, (2, 3)),  # round(3.5) = 4, s_tot = 16 > 14, so 12
    (8, 2, 1.0, (8, 0)),  # common_frac 1: everything common (iso-c)
])
def test_sizes(r: int, T: int, f: float, expected: tuple[int, int]) -> None:
    assert sizes(r, T, f) == expected


def test_orthogonal_tasks_by_hand() -> None:
    """tau_1 = Hd diag(6, 0, 3, 0), tau_2 = Hd diag(0, 4, 0, 2), common_frac 0.5: r = 4, T = 2, k = 2, s = 1.
    Sum = Hd diag(6, 4, 3, 2): U_c = [h_1, h_2], sigma_c = (6, 4), V_c = [e_1, e_2].
    R_1 = 3 h_3 e_3^T, R_2 = 2 h_4 e_4^T: task triplets (3, h_3, e_3), (2, h_4, e_4).
    U-bar = [h_3, h_4, h_1, h_2] and V-bar = [e_3, e_4, e_1, e_2] are orthonormal, polar leaves them:
    Delta = mean(3, 2, 6, 4) U-bar V-bar^T = 15/4 Hd."""
    taus = [HD @ diag(6, 0, 3, 0), HD @ diag(0, 4, 0, 2)]
    assert_close(merge_one("iso-cts", taus, params={"common_frac": 0.5}), 15 / 4 * HD)
    assert_close(merge_one("iso-cts", taus, params={"common_frac": 0.5, "rank_mode": "full"}), 15 / 4 * HD)


def test_orthogonal_tasks_with_newton_schulz_by_hand() -> None:
    """Same tasks, orth=ns: U-bar is orthogonal with |U-bar|_F = 2, so NS(U-bar) = f U-bar with
    f = the muon map applied five times to 1/(2 + 1e-7); the same for V-bar. Delta = 15/4 f^2 Hd."""
    taus = [HD @ diag(6, 0, 3, 0), HD @ diag(0, 4, 0, 2)]
    f = ns_scalar(1 / (2 + 1e-7))
    assert_close(merge_one("iso-cts", taus, params={"common_frac": 0.5, "orth": "ns"}), 15 / 4 * f**2 * HD)


def test_conflicting_residuals_cancel_by_hand() -> None:
    """tau_1 = Hd diag(6, 0, 3, 0), tau_2 = Hd diag(0, 4, -3, 2), common_frac 0.5 (k = 2, s = 1).
    Sum = Hd diag(6, 4, 0, 2): U_c = [h_1, h_2], sigma_c = (6, 4).
    R_1 = 3 h_3 e_3^T -> (3, h_3, e_3); R_2 = -3 h_3 e_3^T + 2 h_4 e_4^T -> top (3, -h_3, e_3) (or (h_3, -e_3)).
    U-bar = [h_3, -h_3, h_1, h_2] = [h_3, h_1, h_2] M with M = [[1, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]:
    polar(U-bar) = [h_3, h_1, h_2] (M M^T)^(-1/2) M = [h_3/sqrt 2, -h_3/sqrt 2, h_1, h_2];
    likewise V_perp = [e_3/sqrt 2, e_3/sqrt 2, e_1, e_2]. U_perp V_perp^T = h_1 e_1^T + h_2 e_2^T: the two
    h_3 terms cancel. sigma-bar = mean(3, 3, 6, 4) = 4, so Delta = 4 Hd diag(1, 1, 0, 0).
    (iso-c on the same tasks: rho = 3, sigma-bar = 12/3 = 4, 4 Hd diag(1, 1, 0, 1).)"""
    taus = [HD @ diag(6, 0, 3, 0), HD @ diag(0, 4, -3, 2)]
    assert_close(merge_one("iso-cts", taus, params={"common_frac": 0.5}), 4 * HD @ diag(1, 1, 0, 0))
    assert_close(merge_one("iso-c", taus), 4 * HD @ diag(1, 1, 0, 1))


def test_a_task_inside_the_common_space_adds_no_directions() -> None:
    """One task tau = Q diag(5, 3, 0, 0) Q'^T (Q, Q' rotations, so the SVD is not exact), common_frac 0.5:
    k = 2, s = 2. U_c spans tau's columns, so R = tau - U_c U_c^T tau is 0 up to rounding: its triplets are
    below eps_tol(tau) and dropped. Delta = mean(5, 3) (q_1 q'_1^T + q_2 q'_2^T) = 4 Q diag(1, 1, 0, 0) Q'^T."""
    q = torch.linalg.qr(torch.tensor([[1.0, 2, 0, 1], [0, 1, 3, 1], [2, 0, 1, 1], [1, 1, 1, 0]], dtype=torch.float64))[0]
    q2 = torch.linalg.qr(torch.tensor([[2.0, 1, 0, 0], [1, 3, 1, 0], [0, 1, 4, 1], [0, 0, 1, 5]], dtype=torch.float64))[0]
    tau = q @ diag(5, 3, 0, 0) @ q2.T
    assert_close(merge_one("iso-cts", [tau], params={"common_frac": 0.5}), 4 * q @ diag(1, 1, 0, 0) @ q2.T)


def test_a_zero_sum_with_no_task_parts_gives_w0() -> None:
    """Antiparallel tasks, common_frac 1: the sum is 0, no triplet survives, Delta = 0."""
    base = HD.clone()
    tau = HD @ diag(4, 3, 2, 1)
    assert torch.equal(merge_one("iso-cts", [tau, -tau], base, params={"common_frac": 1.0}), base)
