"""sce: select by variance, calculate energy weights, erase minority signs (docs/algorithms.md section 5.5)."""

from __future__ import annotations

from fractions import Fraction as F

import pytest
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


def test_the_rule_equals_the_formula_written_with_where_to_the_bit() -> None:
    """The rule builds its masks as 0/1 values by comparisons, not torch.where (a CPU speed matter); the result
    is the step-by-step formula of section 5.5 bit for bit, in fp32 and fp64, with and without the variance
    selection, on integer-valued tasks with zeros, ties in the variance and sums that are exactly 0."""
    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        # small integers: the energies are exact in any summation order, so the weights are the formula's
        taus = [torch.randint(-3, 4, (3000,), generator=g).to(dtype) for _ in range(3)]
        taus[1][:40] = -taus[0][:40] - taus[2][:40]  # sums exactly 0: gamma +1
        taus[2][40:80] = taus[0][40:80]
        for topk in (1.0, 0.4):
            var = torch.stack(taus).var(0, unbiased=False)
            if topk < 1.0:
                k = int(topk * int((var != 0).sum()))
                thr = float(torch.sort(var.flatten(), descending=True).values[k - 1])
                hats = [t * (var >= thr) for t in taus]
            else:
                hats = taus
            energy = torch.stack([h.pow(2).sum() for h in hats])
            w = [float(e) / float(energy.sum()) for e in energy.tolist()]
            s = hats[0] + hats[1] + hats[2]
            gamma = torch.where(s >= 0, 1.0, -1.0).to(dtype)
            num, den = torch.zeros_like(s), torch.zeros_like(s)
            for wt, h in zip(w, hats, strict=True):
                m = (torch.sign(h) == gamma).to(dtype)
                num, den = num + wt * m * h, den + wt * m
            want = num / torch.where(den == 0, 1.0, den)
            got = merge_one("sce", taus, params={"select_topk": topk}, dtype=dtype)
            assert torch.equal(got, want), (dtype, topk)
            bits = torch.int64 if dtype == torch.float64 else torch.int32
            assert bool((got.view(bits) == want.view(bits)).all()), (dtype, topk)
    with pytest.raises(AssertionError):  # the check can fail: a different rule is caught
        assert torch.equal(merge_one("sce", taus[:2], dtype=torch.float64), want)
