"""dare-ties: DARE drop and rescale, then TIES steps 2-4; with density < 1, trim first (docs/algorithms.md section 5.3)."""

from __future__ import annotations

import torch

from tests.merge_cases import BIAS, assert_close, dare_keep, exact, merge_one

TAUS = [exact([3, -1, 2, -4]), exact([1, 5, -2, -2]), exact([2, -3, 1, -1])]


def test_drop_then_elect_and_merge_by_hand() -> None:
    """density 1 (no trim), p = 0.5, seed 3: tau~_t = 2 m_t tau_t with the masks of the documented stream;
    then gamma = sgn(sum tau~_t) (+1 at 0) and the mean of the agreeing nonzero tau~_t, written out below."""
    drops = [2 * dare_keep(3, BIAS, t, (4,), 0.5).double() * tau for t, tau in enumerate(TAUS)]
    expected = []
    for i in range(4):
        col = [float(d[i]) for d in drops]
        gamma = 1.0 if sum(col) >= 0 else -1.0
        agree = [v for v in col if v != 0 and (v > 0) == (gamma > 0)]
        expected.append(sum(agree) / len(agree) if agree else 0.0)
    out = merge_one("dare-ties", TAUS, params={"drop_rate": 0.5, "seed": 3})
    assert_close(out, exact(expected))
    assert any(float(d.abs().sum()) < float(t.abs().sum()) * 2 for d, t in zip(drops, TAUS, strict=True))


def test_trim_comes_before_the_drop_and_l1_measures_the_trimmed_vector() -> None:
    """density 0.5 trims as in TIES: tau-hat = (3, 0, 0, -4), (0, 5, -2, -2), (2, -3, 0, 0).
    Then the drop with rescale=l1: s_t = |tau-hat_t|_1 / |m_t tau-hat_t|_1 (1 if the kept norm is < 1e-7),
    and dis-sum adds the agreeing entries."""
    hats = [exact([3, 0, 0, -4]), exact([0, 5, -2, -2]), exact([2, -3, 0, 0])]
    drops = []
    for t, h in enumerate(hats):
        m = dare_keep(11, BIAS, t, (4,), 0.4).double()
        kept = float((m * h).abs().sum())
        s = float(h.abs().sum()) / kept if kept >= 1e-7 else 1.0
        drops.append(s * m * h)
    total = sum(drops)
    gamma = torch.where(total >= 0, 1.0, -1.0).double()
    expected = sum(d * ((d != 0) & (torch.sign(d) == gamma)) for d in drops)
    out = merge_one("dare-ties", TAUS, params={"drop_rate": 0.4, "seed": 11, "density": 0.5, "rescale": "l1",
                                               "agg": "dis-sum"})
    assert_close(out, expected)


def test_drop_rate_zero_with_density_one_is_ties_by_hand() -> None:
    """p = 0, density 1: no trim, no drop. sum = (6, 1, 1, -7), gamma = (+, +, +, -):
    (3 + 1 + 2)/3 = 2; (5)/1 = 5 (-1 and -3 disagree); (2 + 1)/2 = 1.5; (-4 - 2 - 1)/3 = -7/3."""
    out = merge_one("dare-ties", TAUS, params={"drop_rate": 0.0})
    assert_close(out, exact([2, 5, 1.5, -7 / 3]))
