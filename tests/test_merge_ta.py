"""ta: Task Arithmetic, W* = W_0 + lam sum_t w_t tau_t (docs/algorithms.md section 5.1)."""

from __future__ import annotations

import pytest
import torch

from asrmerge.errors import UsageError
from tests.merge_cases import assert_close, exact, merge_one


def test_weighted_sum_by_hand() -> None:
    """W_0 = ones, tau_1 = [[1, 0], [0, 2]], tau_2 = [[0, -1], [3, 0]], weights (2, 1), lam = 0.5:
    2 tau_1 + tau_2 = [[2, -1], [3, 4]], W* = ones + 0.5 [[2, -1], [3, 4]] = [[2, 0.5], [2.5, 3]].
    normalize=true divides the sum by 2 + 1 = 3: W* = ones + 0.5/3 [[2, -1], [3, 4]]."""
    base = torch.ones(2, 2, dtype=torch.float64)
    taus = [exact([[1, 0], [0, 2]]), exact([[0, -1], [3, 0]])]
    assert_close(merge_one("ta", taus, base, weights=[2, 1], params={"lam": 0.5}), exact([[2, 0.5], [2.5, 3]]))
    out = merge_one("ta", taus, base, weights=[2, 1], params={"lam": 0.5, "normalize": True})
    assert_close(out, base + 0.5 / 3 * exact([[2, -1], [3, 4]]))


def test_default_lambda_is_0_3() -> None:
    """FusionBench's scaling_factor: W* = W_0 + 0.3 (tau_1 + tau_2) = 0.3 * (1 + 3) = 1.2."""
    assert_close(merge_one("ta", [exact([1.0]), exact([3.0])]), exact([1.2]), tol=1e-15)


def test_normalize_with_weights_summing_to_zero_is_an_error() -> None:
    with pytest.raises(UsageError, match="sum"):
        merge_one("ta", [exact([1.0]), exact([3.0])], weights=[1, -1], params={"normalize": True})


@pytest.mark.parametrize("lam", [0.0, 3.5])
def test_lambda_outside_0_3_is_a_usage_error(lam: float) -> None:
    with pytest.raises(UsageError, match="lam"):
        merge_one("ta", [exact([1.0])], params={"lam": lam})
