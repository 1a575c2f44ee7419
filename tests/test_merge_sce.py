"""sce: select by variance, calculate energy weights, erase minority signs (docs/algorithms.md section 5.5)."""

from __future__ import annotations

from fractions import Fraction as F

import torch

from tests.merge_cases import assert_close, exact, merge_one


def test_energy_weights_and_erase_by_hand() -> None:
    """select_topk 1 (no selection), tau_1 = (1, 2, -3, 0), tau_2 = (3, -2, -1, 4).
    Calculate: mean(tau_1^2) = 14/4, mean(tau_2^2) = 30/4, so w = (14/44, 30/44) = (7/22, 15/22).
    Erase: sum = (4, 0, -4, 4), gamma = (+, +, -, +) (0 elects +); M_t = [sgn tau_t = gamma].
    Merge: entry 0, both agree: (7*1 + 15*3)/22 = 52/22 = 26/11; entry 1: only tau_1 (2) agrees: 2;
    entry 2, both: (7*(-3) + 15*(-1))/22 = -36/22 = -18/11; entry 3: tau_1 = 0 has sgn 0, only tau_2: 4."""
    out = merge_one("sce", [exact([1, 2, -3, 0]), exact([3, -2, -1, 4])])
    assert_close(out, exact([F(26, 11), 2, F(-18, 11), 4]))


def test_variance_selection_by_hand() -> None:
    """select_topk 0.5, tau_1 = (1, 2, -3, 0), tau_2 = (3, 2, 1, -4).
    Population variance ((a - b)/2)^2 = (1, 0, 4, 4): nnz = 3, k = floor(1.5) = 1, t_1 = 4, and both 4's are kept
    (ties at the threshold): tau-hat_1 = (0, 0, -3, 0), tau-hat_2 = (0, 0, 1, -4).
    Weights: (9/4) / (9/4 + 17/4) = 9/26 and 17/26. Sum (0, 0, -2, -4): gamma = (+, +, -, -).
    Entry 2: only tau-hat_1 (-3) agrees: -3; entry 3: only tau-hat_2 (-4): -4; entries 0, 1: D = 0 -> 1, 0/1 = 0."""
    out = merge_one("sce", [exact([1, 2, -3, 0]), exact([3, 2, 1, -4])], params={"select_topk": 0.5})
    assert_close(out, exact([0, 0, -3, -4]))


def test_k_zero_gives_w0() -> None:
    """select_topk 0.3 with nnz(v) = 3: k = floor(0.9) = 0, every tau-hat is 0 and W* = W_0 exactly."""
    base = exact([0.5, -1, 2, 7])
    out = merge_one("sce", [exact([1, 2, -3, 0]), exact([3, 2, 1, -4])], base, params={"select_topk": 0.3})
    assert torch.equal(out, base)


def test_weights_option_is_ignored_and_lam_scales() -> None:
    """SCE computes its own task weights; --weights do not change tau*. lam = 0.5 halves it."""
    taus = [exact([1, 2, -3, 0]), exact([3, -2, -1, 4])]
    plain = merge_one("sce", taus)
    assert torch.equal(merge_one("sce", taus, weights=[5, 0.1]), plain)
    assert_close(merge_one("sce", taus, params={"lam": 0.5}), 0.5 * plain)
