"""soup: weighted average of the fine-tuned weights (docs/algorithms.md section 4.1)."""

from __future__ import annotations

import pytest
import torch

from asrmerge.errors import UsageError
from tests.merge_cases import assert_close, exact, merge_models


def test_weighted_average_by_hand() -> None:
    """W_1 = [[1, 2], [3, 4]], W_2 = [[3, 2], [1, 0]], weights (1, 3):
    W* = (1 W_1 + 3 W_2) / 4 = [[(1 + 9)/4, (2 + 6)/4], [(3 + 3)/4, (4 + 0)/4]] = [[2.5, 2], [1.5, 1]]."""
    w1 = exact([[1, 2], [3, 4]])
    w2 = exact([[3, 2], [1, 0]])
    assert_close(merge_models("soup", [w1, w2], weights=[1, 3]), exact([[2.5, 2], [1.5, 1]]))


def test_no_base_is_needed_and_uniform_weights_average() -> None:
    """(W_1 + W_2 + W_3) / 3 with W_t = t * ones: 2 * ones, written in W_1's dtype (no base)."""
    ws = [torch.full((2, 3), float(t), dtype=torch.float16) for t in (1, 2, 3)]
    out = merge_models("soup", ws, dtype=torch.float32)
    assert out.dtype == torch.float16
    assert torch.equal(out, torch.full((2, 3), 2.0, dtype=torch.float16))


def test_base_does_not_change_the_average() -> None:
    w1, w2 = exact([[1, 2]]), exact([[3, 6]])
    assert_close(merge_models("soup", [w1, w2], base=exact([[100, -100]])), exact([[2, 4]]))


@pytest.mark.parametrize("weights", [[1.0, -1.0], [0.0, 0.0], [-1.0, -2.0]])
def test_a_weight_sum_not_above_zero_is_an_error(weights: list[float]) -> None:
    with pytest.raises(UsageError, match="sum"):
        merge_models("soup", [exact([[1.0]]), exact([[2.0]])], weights=weights)
