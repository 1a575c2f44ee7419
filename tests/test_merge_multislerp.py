"""multislerp: barycentric SLERP, the closed form x* = (sum w_i n_i) normalise(sum w_i x_i / n_i) (docs/algorithms.md section 4.4)."""

from __future__ import annotations

import math

import pytest
import torch

from asrmerge.errors import AsrmergeError
from tests.merge_cases import assert_close, exact, merge_models, merge_one


def test_closed_form_by_hand() -> None:
    """x_1 = (2, 0), x_2 = (0, 4), weights (1, 3) -> w = (1/4, 3/4): sum w_i x_i / n_i = (1/4, 3/4),
    normalised (1, 3)/sqrt 10; scale sum w_i n_i = 2/4 + 12/4 = 3.5. x* = 3.5 (1, 3)/sqrt 10."""
    out = merge_models("multislerp", [exact([2, 0]), exact([0, 4])], weights=[1, 3])
    assert_close(out, 3.5 * exact([1, 3]) / math.sqrt(10), tol=1e-14)


def test_within_1e_6_of_mergekits_eps_form() -> None:
    """mergekit divides by n_i + 1e-8: u~ = (2/(2 + 1e-8), 0), (0, 4/(4 + 1e-8)); the direction moves by
    ~1e-8 |1/2 - 1/4|, far inside the 1e-6 parity bound of section 4.4."""
    eps = 1e-8
    mk = 3.5 * torch.nn.functional.normalize(exact([0.25 * 2 / (2 + eps), 0.75 * 4 / (4 + eps)]), dim=0)
    out = merge_models("multislerp", [exact([2, 0]), exact([0, 4])], weights=[1, 3])
    assert_close(out, mk, tol=1e-6)


def test_a_zero_input_counts_in_the_scale_only() -> None:
    """x = (2, 0), (0, 4), (0, 0), weights (1, 1, 2) -> w = (1/4, 1/4, 1/2): direction (1, 1)/sqrt 2, scale
    (2 + 4 + 0) / 4 = 1.5."""
    out = merge_models("multislerp", [exact([2, 0]), exact([0, 4]), exact([0, 0])], weights=[1, 1, 2])
    assert_close(out, 1.5 * exact([1, 1]) / math.sqrt(2), tol=1e-14)


def test_two_antipodal_inputs_fall_back_to_linear_interpolation() -> None:
    """x_1 = (1, 0), x_2 = (-3, 0), equal weights: sum w_i x_i / n_i = 0 (< eps), T = 2, so
    x* = (x_1 + x_2) / 2 = (-1, 0), as mergekit (the closed form would give 2 (+-1, 0))."""
    out = merge_models("multislerp", [exact([1, 0]), exact([-3, 0])])
    assert_close(out, exact([-1, 0]), tol=1e-15)


def test_three_inputs_with_zero_mean_direction_are_an_error() -> None:
    """Unit vectors at 0, 2pi/3 and 4pi/3 sum to 0 with T = 3: 'antipodal inputs' (section 4.4)."""
    c, s = -0.5, math.sqrt(3) / 2
    with pytest.raises(AsrmergeError, match="antipodal"):
        merge_models("multislerp", [exact([1, 0]), exact([c, s]), exact([c, -s])])


def test_all_zero_inputs_give_zero() -> None:
    """Section 7.2 with x = 0: the scale sum w_i n_i is 0, so x* = 0 for any T (no 'antipodal' error)."""
    zeros = [torch.zeros(3, dtype=torch.float64) for _ in range(3)]
    assert torch.equal(merge_models("multislerp", zeros), zeros[0])


def test_use_base_interpolates_task_vectors_and_adds_w0_back() -> None:
    """W_0 = (1, 1), tau = (2, 0), (0, 4), weights (1, 3): W* = W_0 + 3.5 (1, 3)/sqrt 10."""
    base = exact([1, 1])
    out = merge_one("multislerp", [exact([2, 0]), exact([0, 4])], base, weights=[1, 3], params={"use_base": True})
    assert_close(out, base + 3.5 * exact([1, 3]) / math.sqrt(10), tol=1e-14)


def test_a_single_input_comes_back_unchanged() -> None:
    one = exact([[0.25, -3], [1e-9, 7]])
    assert torch.equal(merge_models("multislerp", [one]), one)
