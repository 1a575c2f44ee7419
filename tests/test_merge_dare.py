"""dare-ta: drop and rescale, then task arithmetic (docs/algorithms.md section 5.3, section 3 random numbers, 7.11)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.merge.api import merge
from tests.merge_cases import BIAS, FEW, FP, PROPS, SVD, assert_close, dare_keep, exact, generator, merge_one


def test_masks_follow_the_documented_stream_by_hand() -> None:
    """tau_1 = (1, 2, 3, 4, 5, 6), tau_2 = -(6, 5, 4, 3, 2, 1), p = 0.5, seed 7, weights (1, 2), lam 0.3, W_0 = 1:
    m_t keeps u >= 0.5 with u drawn for ("7:<name>:t"), s = 1/(1 - 0.5) = 2, and
    W* = 1 + 0.3 (1 * 2 m_1 tau_1 + 2 * 2 m_2 tau_2)."""
    t1, t2 = exact([1, 2, 3, 4, 5, 6]), -exact([6, 5, 4, 3, 2, 1])
    m1, m2 = (dare_keep(7, BIAS, t, (6,), 0.5).double() for t in (0, 1))
    out = merge_one("dare-ta", [t1, t2], torch.ones(6, dtype=torch.float64), weights=[1, 2],
                    params={"drop_rate": 0.5, "seed": 7})
    assert_close(out, 1 + 0.3 * (2 * m1 * t1 + 2 * 2 * m2 * t2))
    assert 0 < int(m1.sum()) < 6  # this seed drops some entries and keeps some


def test_l1_and_none_rescaling_by_hand() -> None:
    """tau = (1, -2, 3, -4), |tau|_1 = 10, p = 0.5, seed 0: l1 sets s = 10 / |m tau|_1; none sets s = 1."""
    tau = exact([1, -2, 3, -4])
    m = dare_keep(0, BIAS, 0, (4,), 0.5).double()
    kept = float((m * tau).abs().sum())
    assert kept > 0
    l1 = merge_one("dare-ta", [tau], params={"drop_rate": 0.5, "rescale": "l1", "lam": 1.0})
    assert_close(l1, 10 / kept * m * tau)
    none = merge_one("dare-ta", [tau], params={"drop_rate": 0.5, "rescale": "none", "lam": 1.0})
    assert_close(none, m * tau)


def test_l1_rescaling_falls_back_to_one_below_1e_7() -> None:
    """|tau|_1 = 6e-9 < 1e-7: s = 1, the kept entries are not rescaled."""
    tau = exact([1e-9, 2e-9, 3e-9])
    m = dare_keep(0, BIAS, 0, (3,), 0.5).double()
    out = merge_one("dare-ta", [tau], params={"drop_rate": 0.5, "rescale": "l1", "lam": 1.0})
    assert_close(out, m * tau)


def test_masks_depend_on_seed_tensor_name_and_task() -> None:
    tau = torch.ones(64, dtype=torch.float64)
    a = merge_one("dare-ta", [tau, tau], params={"seed": 1, "lam": 1.0, "rescale": "none"})
    assert torch.equal(a, (dare_keep(1, BIAS, 0, (64,), 0.5) + dare_keep(1, BIAS, 1, (64,), 0.5).double()).double())
    assert not torch.equal(dare_keep(1, BIAS, 0, (64,), 0.5), dare_keep(1, BIAS, 1, (64,), 0.5))
    assert not torch.equal(dare_keep(1, BIAS, 0, (64,), 0.5), dare_keep(2, BIAS, 0, (64,), 0.5))
    assert not torch.equal(dare_keep(1, BIAS, 0, (64,), 0.5), dare_keep(1, SVD, 0, (64,), 0.5))


# -- section 7.11 ---------------------------------------------------------------------------------------

@PROPS
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**62), shape=st.sampled_from([(40, 50), (2000,), (30, 30)]))
def test_kept_fraction_is_within_4_sigma_of_the_binomial_mean(p: float, seed: int, shape: tuple[int, ...]) -> None:
    """7.11: the number of kept entries of n is within 4 sqrt(n p (1 - p)) of n (1 - p)."""
    tau = torch.rand(shape, generator=generator(seed % 2**31), dtype=torch.float64) + 0.5  # no zeros
    out = merge_one("dare-ta", [tau], params={"drop_rate": p, "seed": seed, "rescale": "none", "lam": 1.0})
    n = tau.numel()
    kept = int((out != 0).sum())
    assert abs(kept - n * (1 - p)) <= 4 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_inv_rescaling_is_unbiased_over_draws(p: float) -> None:
    """7.11: E[tau~] = tau with s = 1/(1 - p). Over N = 200 seeds the mean of each entry is within 5 standard
    errors, |tau| sqrt(p / ((1 - p) N)), of tau."""
    tau = exact([1.0, -2.0, 0.5, 3.0, -0.25, 1.5])
    n_draws = 200
    total = torch.zeros_like(tau)
    for seed in range(n_draws):
        total += merge_one("dare-ta", [tau], params={"drop_rate": p, "seed": seed, "lam": 1.0})
    mean = total / n_draws
    bound = 5 * tau.abs() * math.sqrt(p / ((1 - p) * n_draws))
    assert bool(((mean - tau).abs() <= bound).all()), (mean, tau)


@FEW
@given(p=st.floats(0.05, 0.9), seed=st.integers(0, 2**62), dtype=st.sampled_from(FP), T=st.integers(1, 3))
def test_l1_rescaling_preserves_the_l1_norm(p: float, seed: int, dtype: torch.dtype, T: int) -> None:
    """7.11 / 5.3: |tau~_t|_1 = |tau_t|_1 to rtol 1e-5 (each task is checked alone through tensors of its own)."""
    g = generator(seed % 2**31)
    taus = [torch.randn(12, 9, generator=g, dtype=torch.float64).to(dtype) for _ in range(T)]
    for t, tau in enumerate(taus):
        others = [torch.zeros_like(x) for x in taus]
        others[t] = tau
        out = merge_one("dare-ta", others, params={"drop_rate": p, "seed": seed, "rescale": "l1", "lam": 1.0},
                        dtype=dtype)
        assert float(out.double().abs().sum()) == pytest.approx(float(tau.double().abs().sum()), rel=1e-5)


def test_same_seed_same_masks_for_every_schedule() -> None:
    """Section 3: identical masks whatever the chunking (a budget of a few hundred bytes streams row chunks)."""
    tau = torch.randn(16, 8, generator=generator(3), dtype=torch.float64)
    base = torch.zeros_like(tau)
    runs = [merge("dare-ta", [{SVD: tau}], base={SVD: base}, taskvecs=True, params={"seed": 5, "lam": 1.0},
                  compute_dtype=torch.float64, budget=b) for b in (1 << 20, 300, 700)]
    for r in runs:
        assert isinstance(r, dict)
        assert torch.equal(r[SVD], runs[0][SVD])  # type: ignore[index]
    assert torch.equal(runs[0][SVD], 2 * dare_keep(5, SVD, 0, (16, 8), 0.5).double() * tau)  # type: ignore[index]
