"""karcher: the Karcher (Frechet) mean of the weights on the unit sphere (docs/algorithms.md section 4.3).

On a circle the Riemannian gradient step is exact: from mu at angle theta_0, g is sum_i alpha_i (theta_i -
theta_0) along the tangent, and the exponential map lands on sum_i alpha_i theta_i. So 2-D inputs have
closed-form answers.
"""

from __future__ import annotations

import math

import torch

from tests.merge_cases import assert_close, exact, merge_models


def test_two_orthogonal_inputs_by_hand() -> None:
    """W_1 = (2, 0) (angle 0), W_2 = (0, 4) (angle pi/2), weights (1, 3): alpha = (1/4, 3/4).
    mu_0 = normalise((1/4, 3/4)) = (1, 3)/sqrt 10; one step lands on angle 1/4 * 0 + 3/4 * pi/2 = 3 pi/8, the
    next has g = 0 and stops. Scale: (1 * 2 + 3 * 4) / 4 = 3.5. W* = 3.5 (cos 3pi/8, sin 3pi/8)."""
    ws = [exact([2, 0]), exact([0, 4])]
    expected = 3.5 * torch.tensor([math.cos(3 * math.pi / 8), math.sin(3 * math.pi / 8)], dtype=torch.float64)
    assert_close(merge_models("karcher", ws, weights=[1, 3]), expected, tol=1e-12)


def test_max_iter_zero_is_the_normalised_weighted_mean_direction() -> None:
    """Same inputs, max_iter = 0: W* = 3.5 * mu_0 = 3.5 (1, 3) / sqrt 10."""
    ws = [exact([2, 0]), exact([0, 4])]
    expected = 3.5 * exact([1, 3]) / math.sqrt(10)
    assert_close(merge_models("karcher", ws, weights=[1, 3], params={"max_iter": 0}), expected, tol=1e-14)


def test_a_zero_input_adds_nothing_to_the_direction_or_the_scale() -> None:
    """W = (2, 0), (0, 4), (0, 0) with weights (1, 1, 2): the zero input leaves the direction, alpha = (1/2, 1/2),
    mu = (1, 1)/sqrt 2 (the midpoint: g = 0 at once). Scale a_i n_i with a_i = w_i / sum_all w:
    (1 * 2 + 1 * 4 + 2 * 0) / 4 = 1.5. W* = 1.5 (1, 1)/sqrt 2."""
    ws = [exact([2, 0]), exact([0, 4]), exact([0, 0])]
    expected = 1.5 * exact([1, 1]) / math.sqrt(2)
    assert_close(merge_models("karcher", ws, weights=[1, 1, 2]), expected, tol=1e-14)


def test_an_input_below_tol_leaves_the_direction_but_not_the_scale() -> None:
    """tol = 0.5: W_2 = (0, 0.4) has n = 0.4 <= tol and leaves the direction: mu = (1, 0).
    The scale sums a_i n_i over every input: (1 + 0.4) / 2 = 0.7, so W* = (0.7, 0)."""
    out = merge_models("karcher", [exact([1, 0]), exact([0, 0.4])], params={"tol": 0.5})
    assert_close(out, exact([0.7, 0]), tol=1e-15)


def test_all_inputs_below_tol_give_zero_and_one_input_comes_back() -> None:
    """No input remains: W* = 0. A single input is returned unchanged, whatever its norm."""
    assert torch.equal(merge_models("karcher", [exact([1e-6, 0]), exact([0, 1e-6])]), exact([0, 0]))
    one = exact([1e-7, -3e-7])
    assert torch.equal(merge_models("karcher", [one]), one)


def test_an_antipodal_pair_with_unequal_weights_stays_finite() -> None:
    """W = (1, 1, 1), (-1, -1, -1), weights (2, 1): alpha = (2/3, 1/3), mu_0 = normalise(2/3 u_1 - 1/3 u_1) = u_1.
    phi_1 = 0 is skipped; phi_2 = pi has no tangent direction (u_2 - cos(pi) mu = 0, sin(pi) = 0) and is skipped
    too (our guard: the term is 0 * inf; evaluated, sqrt(3)^2 != 3 in floating point made it a huge tangent
    and a NaN). g = 0, so mu = u_1 and W* = (2 sqrt 3 + sqrt 3)/3 * (1, 1, 1)/sqrt 3 = (1, 1, 1)."""
    for dtype in (torch.float32, torch.float64):
        ones = torch.ones(3, dtype=dtype)
        out = merge_models("karcher", [ones, -ones], weights=[2, 1], dtype=dtype)
        assert_close(out, ones, dtype)


def test_an_equal_weight_antipodal_pair_takes_the_first_input() -> None:
    """Equal weights: sum alpha_i u_i = 0 (norm < tol), so mu = the first valid u_i (section 4.3) and W* = W_1.
    The Karcher mean of two antipodes is undefined; this rule makes the result depend on the order, the one
    exception to the permutation invariant (7.3) for karcher."""
    a, b = exact([2, 0]), exact([-2, 0])
    assert_close(merge_models("karcher", [a, b]), a, tol=1e-15)
    assert_close(merge_models("karcher", [b, a]), b, tol=1e-15)


def test_iterations_converge_to_the_frechet_mean_of_three_points() -> None:
    """Angles 0, pi/3 and pi/2 with weights (1, 1, 2): the mean angle is (0 + pi/3 + 2 pi/2) / 4 = pi/3;
    norms 1, 2, 3: scale (1 + 2 + 6) / 4 = 9/4."""
    ws = [exact([1, 0]), 2 * torch.tensor([math.cos(math.pi / 3), math.sin(math.pi / 3)], dtype=torch.float64),
          exact([0, 3])]
    expected = 9 / 4 * torch.tensor([math.cos(math.pi / 3), math.sin(math.pi / 3)], dtype=torch.float64)
    assert_close(merge_models("karcher", ws, weights=[1, 1, 2]), expected, tol=1e-12)
