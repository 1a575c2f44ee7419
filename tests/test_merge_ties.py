"""ties: trim, elect sign, disjoint merge (docs/algorithms.md section 5.2) and the TIES invariants of section 7.10."""

from __future__ import annotations

import math
from fractions import Fraction as F

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.merge.api import merge
from tests.merge_cases import BIAS, NORM, PROPS, Case, assert_close, cases, exact, merge_one, run

TAUS = [exact([3, -1, 2, -4]), exact([1, 5, -2, -2]), exact([2, -3, 1, -1])]


def trim(x: torch.Tensor, density: float, k_rule: str = "floor") -> torch.Tensor:
    """Step 1 written from the spec with a sort: keep |x| >= t_k, the k-th largest magnitude (ties kept)."""
    n = x.numel()
    k = min(n, math.floor(density * n) + 1) if k_rule == "ref" else max(1, math.floor(density * n))
    if density >= 1:
        return x
    t_k = torch.sort(x.abs().reshape(-1), descending=True).values[k - 1]
    return x * (x.abs() >= t_k)


def reference(taus: list[torch.Tensor], weights: list[float], density: float, agg: str, k_rule: str) -> torch.Tensor:
    """tau* of section 5.2, steps 1-3, one entry at a time (gamma = +1 where the weighted sum is 0)."""
    hats = [trim(t, density, k_rule) for t in taus]
    flat = [h.reshape(-1).tolist() for h in hats]
    out = []
    for i in range(len(flat[0])):
        total = sum(w * f[i] for w, f in zip(weights, flat, strict=True))
        gamma = 1.0 if total >= 0 else -1.0
        agree = [(w, f[i]) for w, f in zip(weights, flat, strict=True) if f[i] != 0 and math.copysign(1, f[i]) == gamma]
        if agg == "dis-sum":
            out.append(sum(w * v for w, v in agree))
        elif agg == "dis-max":
            out.append(gamma * max((abs(v) for _, v in agree), default=0.0))
        else:
            den = sum(w for w, _ in agree)
            out.append(sum(w * v for w, v in agree) / den if den != 0 else 0.0)
    return torch.tensor(out, dtype=torch.float64).reshape(taus[0].shape)


def test_trim_elect_merge_by_hand() -> None:
    """density 0.5, n = 4, k = 2.
    Trim: tau_1 = (3, -1, 2, -4): |.| = 3, 1, 2, 4, t_2 = 3 -> (3, 0, 0, -4).
          tau_2 = (1, 5, -2, -2): |.| = 1, 5, 2, 2, t_2 = 2, and both 2's tie at it -> (0, 5, -2, -2) (3 kept).
          tau_3 = (2, -3, 1, -1): t_2 = 2 -> (2, -3, 0, 0).
    Elect: sum = (5, 2, -2, -6), gamma = (+, +, -, -).
    Merge (dis-mean): (3 + 2)/2 = 2.5; 5 (the -3 disagrees); -2; (-4 - 2)/2 = -3 -> (2.5, 5, -2, -3).
    dis-sum: (5, 5, -2, -6). dis-max: (3, 5, -2, -4). W_0 = 1, lam = 0.5: W* = 1 + tau*/2."""
    base = torch.ones(4, dtype=torch.float64)
    for agg, tau in {"dis-mean": [2.5, 5, -2, -3], "dis-sum": [5, 5, -2, -6], "dis-max": [3, 5, -2, -4]}.items():
        out = merge_one("ties", TAUS, base, params={"density": 0.5, "agg": agg, "lam": 0.5})
        assert_close(out, base + 0.5 * exact(tau), what=agg)


def test_weights_by_hand() -> None:
    """Same trims, weights (1, 2, 1): sum = (3 + 2, 10 - 3, -4, -4 - 4) = (5, 7, -4, -8), gamma = (+, +, -, -).
    dis-mean: (1*3 + 1*2)/2 = 5/2; 2*5/2 = 5; 2*(-2)/2 = -2; (1*(-4) + 2*(-2))/(1 + 2) = -8/3.
    dis-sum: (5, 10, -4, -8). dis-max ignores the weights: (3, 5, -2, -4)."""
    expected = {"dis-mean": [F(5, 2), 5, -2, F(-8, 3)], "dis-sum": [5, 10, -4, -8], "dis-max": [3, 5, -2, -4]}
    for agg, tau in expected.items():
        out = merge_one("ties", TAUS, weights=[1, 2, 1], params={"density": 0.5, "agg": agg})
        assert_close(out, exact(tau), what=agg)


def test_weights_are_applied_in_the_compute_dtype() -> None:
    """density 1, tau = (1,) and (3,), weights (0.1, 0.7): (0.1 * 1 + 0.7 * 3) / (0.1 + 0.7) = 2.2 / 0.8 = 2.75
    to fp64 precision (weights rounded to fp32 would give 2.7500000359)."""
    out = merge_one("ties", [exact([1]), exact([3])], weights=[0.1, 0.7], params={"density": 1.0})
    assert_close(out, exact([2.75]))


def test_k_rule_ref_keeps_floor_rho_n_plus_one() -> None:
    """k_rule=ref: k = min(4, floor(2) + 1) = 3.
    tau_1: t_3 = 2 -> (3, 0, 2, -4); tau_2: t_3 = 2 -> (0, 5, -2, -2); tau_3: t_3 = 1 -> (2, -3, 1, -1).
    sum = (5, 2, 1, -7), gamma = (+, +, +, -): (3 + 2)/2 = 2.5; 5; (2 + 1)/2 = 1.5; (-4 - 2 - 1)/3 = -7/3."""
    out = merge_one("ties", TAUS, params={"density": 0.5, "k_rule": "ref"})
    assert_close(out, exact([F(5, 2), 5, F(3, 2), F(-7, 3)]))


def test_all_entries_tied_at_the_threshold_are_kept() -> None:
    """tau = (2, -2, 2, 1), density 0.25: k = 1, t_1 = 2, and |x| >= 2 keeps three entries: (2, -2, 2, 0)."""
    assert_close(merge_one("ties", [exact([2, -2, 2, 1])], params={"density": 0.25}), exact([2, -2, 2, 0]))


def test_k_is_at_least_one() -> None:
    """density 0.1, n = 4: floor(0.4) = 0, so k = max(1, 0) = 1: only -3 survives."""
    assert_close(merge_one("ties", [exact([1, -3, 2, 0.5])], params={"density": 0.1}), exact([0, -3, 0, 0]))


def test_a_zero_sum_elects_plus() -> None:
    """density 1: tau_1 = (1, 2), tau_2 = (-1, 1). Sum (0, 3): gamma = (+1, +1) (0 elects +1), so entry 0 keeps
    only tau_1's 1 and entry 1 averages (2 + 1)/2: tau* = (1, 1.5)."""
    assert_close(merge_one("ties", [exact([1, 2]), exact([-1, 1])], params={"density": 1.0}), exact([1, 1.5]))


def test_scope_model_trims_over_all_tensors_of_a_task() -> None:
    """One task, density 0.5, tensors a = (4, 5) and b = (1, 2).
    scope=model: n = 4, k = 2, t_2 over (4, 5, 1, 2) = 4: a = (4, 5), b = (0, 0).
    scope=tensor: k = 1 per tensor: a = (0, 5), b = (0, 2)."""
    zero = {BIAS: torch.zeros(2, dtype=torch.float64), NORM: torch.zeros(2, dtype=torch.float64)}
    task = {BIAS: exact([4, 5]), NORM: exact([1, 2])}
    for scope, a, b in (("model", [4, 5], [0, 0]), ("tensor", [0, 5], [0, 2])):
        out = merge("ties", [task], base=zero, taskvecs=True, params={"density": 0.5, "scope": scope},
                    compute_dtype=torch.float64)
        assert isinstance(out, dict)
        assert_close(out[BIAS], exact(a), what=scope)
        assert_close(out[NORM], exact(b), what=scope)


@pytest.mark.parametrize("agg", ["dis-mean", "dis-sum", "dis-max"])
@PROPS
@given(case=cases(kinds=("random", "lowrank", "duplicated", "antiparallel", "zero"), zero_base=True),
       density=st.sampled_from([0.1, 0.25, 0.5, 0.8, 1.0]), k_rule=st.sampled_from(["floor", "ref"]))
def test_ties_equals_the_spec_written_entry_by_entry(agg: str, case: Case, density: float, k_rule: str) -> None:
    params = {"density": density, "agg": agg, "k_rule": k_rule}
    ref = reference([t.double() for t in case.taus], case.w(), density, agg, k_rule)
    assert_close(run("ties", case, params=params), ref, case.dtype, scale=case.scale())


# -- section 7.10 ---------------------------------------------------------------------------------------

@PROPS
@given(case=cases(kinds=("random",), tasks=(1, 1), weighted=False, zero_base=True),
       density=st.floats(0.01, 1.0), k_rule=st.sampled_from(["floor", "ref"]))
def test_kept_count_is_k_when_magnitudes_are_distinct(case: Case, density: float, k_rule: str) -> None:
    """7.10: with distinct magnitudes the trim keeps exactly k entries, the k largest (T = 1 shows the trim)."""
    x = case.taus[0]
    n = x.numel()
    k = n if density >= 1 else (min(n, math.floor(density * n) + 1) if k_rule == "ref" else max(1, math.floor(density * n)))
    out = run("ties", case, params={"density": density, "k_rule": k_rule})
    assert int((out != 0).sum()) == k
    top = torch.sort(x.abs().reshape(-1), descending=True).indices[:k]
    assert torch.equal(out.reshape(-1)[top], x.reshape(-1)[top])


@PROPS
@given(case=cases(kinds=("random", "lowrank", "duplicated", "antiparallel"), tasks=(2, 4), zero_base=True),
       density=st.sampled_from([0.2, 0.5, 1.0]))
def test_nonzero_entries_take_the_elected_sign_and_dis_mean_is_bounded(case: Case, density: float) -> None:
    """7.10: every nonzero entry of tau* has the sign gamma; with dis-mean and positive weights
    |tau*| <= max_t |tau-hat_t| element-wise."""
    hats = [trim(t.double(), density) for t in case.taus]
    total = sum(w * h for w, h in zip(case.w(), hats, strict=True))
    gamma = torch.where(total >= 0, 1.0, -1.0).double()
    for agg in ("dis-mean", "dis-sum", "dis-max"):
        out = run("ties", case, params={"density": density, "agg": agg}).double()
        nz = out != 0
        assert torch.equal(torch.sign(out[nz]), gamma[nz]), agg
    out = run("ties", case, params={"density": density}).double()
    bound = torch.stack([h.abs() for h in hats]).max(0).values
    assert bool((out.abs() <= bound * (1 + 4 * torch.finfo(case.dtype).eps)).all())


@pytest.mark.parametrize("agg", ["dis-mean", "dis-sum", "dis-max"])
@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0, 1.0], [0.7, 1.3, 0.25, 2.0]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_disjoint_merge_equals_the_plain_formula_to_the_bit(agg: str, weights: list[float], dtype: torch.dtype) -> None:
    """The in-place disjoint merge gives exactly what the step-by-step formula of section 5.2 gives: sums of
    rounded products w_t x_t in task order (no fused multiply-add), on trimmed tasks with zeros and ties."""
    from asrmerge.merge.ties import disjoint_merge

    g = torch.Generator().manual_seed(11)
    xs = [torch.randn(5000, generator=g, dtype=dtype) * (torch.rand(5000, generator=g) < 0.4) for _ in weights]
    xs[1][:50] = -xs[0][:50]  # entries whose elected total is exactly 0 (sign +1)
    total = weights[0] * xs[0]
    for w, x in zip(weights[1:], xs[1:], strict=True):
        total = total + w * x
    gamma = torch.where(total >= 0, 1.0, -1.0).to(dtype)
    num, den, peak = torch.zeros_like(total), torch.zeros_like(total), torch.zeros_like(total)
    for w, x in zip(weights, xs, strict=True):
        m = ((x != 0) & (torch.sign(x) == gamma)).to(dtype)
        num, den, peak = num + w * (x * m), den + w * m, torch.maximum(peak, (x * m).abs())
    want = {"dis-sum": num, "dis-max": gamma * peak,
            "dis-mean": torch.where(den != 0, num / torch.where(den != 0, den, 1.0), 0.0)}[agg]
    assert torch.equal(disjoint_merge(xs, weights, agg), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trimmed_is_the_threshold_comparison_to_the_bit(dtype: torch.dtype) -> None:
    """trimmed (hardshrink below the next value towards zero) keeps exactly the entries with |x| >= thr, as
    torch.where(|x| >= thr, x, 0) does, for thresholds that are entries (ties kept), that fall between two
    values of the dtype (rounded as the comparison rounds them), 0, the smallest subnormal and past the
    largest entry; kept entries keep their bits and sign, -0.0 included."""
    from asrmerge.merge.ties import trimmed

    g = torch.Generator().manual_seed(5)
    x = torch.randn(4000, generator=g, dtype=torch.float64).to(dtype)
    x[:20] = x[20:40]  # repeated magnitudes
    x[40:60] = -x[20:40]
    x[60], x[61], x[62] = 0.0, -0.0, torch.finfo(dtype).tiny / 4  # zeros and a subnormal
    between = float(torch.nextafter(x[20].abs(), torch.tensor(math.inf, dtype=dtype))) * 0.5 + float(x[20].abs()) * 0.5
    thresholds = [float(x[20].abs()), between, float(x[100].abs()) * (1 + 1e-12), 0.0, float(x[62]),
                  float(x.abs().max()) * 2, float(x.abs().median())]
    for thr in thresholds:
        want = torch.where(x.abs() >= thr, x, 0.0)
        got = trimmed(x, thr)
        assert got.dtype == dtype
        same_bits = got.view(torch.int64 if dtype == torch.float64 else torch.int32) == \
            want.view(torch.int64 if dtype == torch.float64 else torch.int32)
        assert bool(same_bits.all()), thr
    assert trimmed(x, None) is x
