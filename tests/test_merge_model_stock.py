"""model-stock: interpolate between the base and the average by the mean pairwise cosine (docs/algorithms.md section 4.2)."""

from __future__ import annotations

from fractions import Fraction as F

import pytest
import torch

from asrmerge.errors import UsageError
from tests.merge_cases import assert_close, exact, merge_models


def test_two_tasks_by_hand() -> None:
    """W_0 = (1, 1), W_1 = (4, 5), W_2 = (5, 4): d_1 = (3, 4), d_2 = (4, 3), |d_t| = 5,
    q = <d_1, d_2> / 25 = 24/25, eta = 2q / (1 + q) = (48/25) / (49/25) = 48/49,
    W-bar = (4.5, 4.5), W* = 48/49 * 4.5 + 1/49 * 1 = (216 + 1)/49 = 217/49 in both entries."""
    out = merge_models("model-stock", [exact([4, 5]), exact([5, 4])], base=exact([1, 1]))
    assert_close(out, exact([F(217, 49), F(217, 49)]), tol=1e-14)


def test_negative_mean_cosine_is_clamped_at_cos_floor() -> None:
    """W_0 = 0, d = (1, 0), (-1, 0), (0, 1): cosines -1, 0, 0, mean q = -1/3.
    cos_floor = 0 (default): q = 0, eta = 0, W* = W_0 = 0.
    cos_floor = -1 (mergekit): eta = 3q / (1 + 2q) = -1 / (1/3) = -3,
    W-bar = (0, 1/3), W* = -3 W-bar + 4 W_0 = (0, -1): mergekit's extrapolation."""
    ws = [exact([1, 0]), exact([-1, 0]), exact([0, 1])]
    base = exact([0, 0])
    assert torch.equal(merge_models("model-stock", ws, base=base), base)
    assert_close(merge_models("model-stock", ws, base=base, params={"cos_floor": -1.0}), exact([0, -1]), tol=1e-14)


def test_filter_wise_takes_one_ratio_per_row() -> None:
    """Row 0: d = (3, 4) and (4, 3): q = 24/25, eta = 48/49 (as above). Row 1: d = (1, 0) and (0, 1): q = 0,
    eta = 0. W_0 = 0, so W* row 0 = 48/49 * (3.5, 3.5) = (24/7, 24/7) and row 1 = 0.
    Per tensor instead: q = <d_1, d_2> / (|d_1| |d_2|) = 24 / 26 = 12/13, eta = (24/13) / (25/13) = 24/25,
    W* = 24/25 * W-bar = 24/25 * [[3.5, 3.5], [0.5, 0.5]]."""
    w1 = exact([[3, 4], [1, 0]])
    w2 = exact([[4, 3], [0, 1]])
    base = torch.zeros(2, 2, dtype=torch.float64)
    row = merge_models("model-stock", [w1, w2], base=base, params={"filter_wise": True})
    assert_close(row, exact([[F(24, 7), F(24, 7)], [0, 0]]), tol=1e-14)
    whole = merge_models("model-stock", [w1, w2], base=base)
    assert_close(whole, exact([[F(84, 25), F(84, 25)], [F(12, 25), F(12, 25)]]), tol=1e-14)


def test_all_zero_task_vectors_give_w0() -> None:
    """Section 4.2 edge case: all d_t = 0 gives q = 0 (0 / max(0, 1e-6)), eta = 0, W* = W_0 exactly."""
    base = exact([[0.5, -2], [3, 7]])
    assert torch.equal(merge_models("model-stock", [base.clone(), base.clone(), base.clone()], base=base), base)


def test_the_1e_6_guard_shrinks_q_for_tiny_task_vectors() -> None:
    """q divides by max(|d_i| |d_j|, 1e-6) (mergekit's guard): for d_1 = d_2 = (1e-4, 0) the cosine is
    1e-8 / 1e-6 = 0.01 instead of 1, eta = 0.02 / 1.01, and W* = W_0 + eta d (not W_1 = W_0 + d)."""
    base = exact([1, 1])
    d = exact([1e-4, 0])
    out = merge_models("model-stock", [base + d, base + d], base=base)
    eta = 0.02 / 1.01
    assert_close(out, base + eta * d, tol=1e-14)


def test_one_task_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="at least 2"):
        merge_models("model-stock", [exact([1, 2])], base=exact([0, 0]))


def test_the_base_is_required() -> None:
    with pytest.raises(UsageError, match="base"):
        merge_models("model-stock", [exact([1, 2]), exact([2, 1])])
