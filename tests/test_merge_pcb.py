"""pcb: PCB-Merging, clip, intra- and inter-balance, drop, weighted average (docs/algorithms.md section 5.4)."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.merge_cases import PROPS, Case, assert_close, cases, exact, merge_one, run

X1, X2 = exact([2, -1, 0, 1]), exact([1, 1, -2, 0])


def reference(taus: list[torch.Tensor], ratio: float, clip: float) -> torch.Tensor:
    """tau* of section 5.4 written with sorts, for one tensor (rows of X are the tasks), in the tasks' dtype.

    The dtype matters: where tanh saturates (tanh(11) is 1 in fp32, not in fp64) importances tie, and ties
    at the drop threshold decide which entries survive.
    """
    x = torch.stack([t.reshape(-1) for t in taus])
    T, n = x.shape

    def minmax(v: torch.Tensor) -> torch.Tensor:
        lo, hi = v.min(1, keepdim=True).values, v.max(1, keepdim=True).values
        return torch.where(hi == lo, torch.zeros_like(v), (v - lo) / torch.where(hi == lo, 1.0, hi - lo))

    srt = torch.sort(x.abs(), 1).values
    a = x.abs().clamp(srt[:, math.floor(n * clip)][:, None], srt[:, math.floor(n * (1 - clip)) - 1][:, None])
    xc = torch.sign(x) * a
    b = torch.exp(T * minmax(a) ** 2) * torch.tanh(x * x.sum(0))
    thr = torch.sort(b, 1).values[:, math.floor(n * (1 - ratio))][:, None]
    s_hat = minmax(torch.maximum(b, thr))
    return ((s_hat * xc).sum(0) / s_hat.sum(0).clamp_min(1e-12)).reshape(taus[0].shape)


def test_balance_drop_and_average_by_hand() -> None:
    """clip 0 (A = |X|), ratio 0.75, T = 2, n = 4.
    |X_1| = (2, 1, 0, 1): minmax (1, .5, 0, .5), S_1 = exp(2 (1, .25, 0, .25)) = (e^2, e^.5, 1, e^.5).
    |X_2| = (1, 1, 2, 0): minmax (.5, .5, 1, 0), S_2 = (e^.5, e^.5, e^2, 1).
    sum X = (3, 0, -2, 1): C_1 = tanh(6, 0, 0, 1), C_2 = tanh(3, 0, 4, 0).
    B_1 = (e^2 tanh 6, 0, 0, e^.5 tanh 1), B_2 = (e^.5 tanh 3, 0, e^2 tanh 4, 0).
    Drop threshold sorted(B)[floor(4 * 0.25)] = sorted(B)[1] = 0 for both rows, so S-hat = B / max B:
    S-hat_1 = (1, 0, 0, b_1), b_1 = e^.5 tanh 1 / (e^2 tanh 6); S-hat_2 = (b_2, 0, 1, 0), b_2 = e^.5 tanh 3 / (e^2 tanh 4).
    tau* = sum S-hat X / max(sum S-hat, 1e-12) = ((2 + b_2)/(1 + b_2), 0/1e-12 = 0, -2/1, b_1/b_1) = (..., 0, -2, 1)."""
    e = math.exp
    b2 = e(0.5) * math.tanh(3) / (e(2) * math.tanh(4))
    out = merge_one("pcb", [X1, X2], params={"clip": 0.0, "ratio": 0.75})
    assert_close(out, exact([(2 + b2) / (1 + b2), 0, -2, 1]))


def test_clipping_to_a_constant_row_gives_minmax_zero() -> None:
    """clip 0.25, n = 4: bounds sorted(|X|)[1] and sorted(|X|)[floor(3) - 1] = sorted(|X|)[2].
    |X_1| sorted (0, 1, 1, 2): both bounds 1, A_1 = (1, 1, 1, 1) is constant, minmax = 0 (not NaN), S_1 = 1,
    X_c1 = sgn(X_1) = (1, -1, 0, 1). Likewise |X_2| sorted (0, 1, 1, 2): A_2 = 1, X_c2 = (1, 1, -1, 0).
    C_1 = tanh(6, 0, 0, 1), C_2 = tanh(3, 0, 4, 0) = B (S = 1). ratio 0.75: threshold 0, S-hat = B / max B:
    S-hat_1 = (1, 0, 0, tanh 1 / tanh 6), S-hat_2 = (tanh 3 / tanh 4, 0, 1, 0).
    tau* = ((1 + c)/(1 + c), 0, -1, 1) = (1, 0, -1, 1) with c = tanh 3 / tanh 4."""
    out = merge_one("pcb", [X1, X2], params={"clip": 0.25, "ratio": 0.75})
    assert_close(out, exact([1, 0, -1, 1]))


def test_a_zero_task_drops_out() -> None:
    """tau_2 = 0: |X_2| is constant (minmax 0, S_2 = 1), C_2 = tanh(0) = 0, B_2 = 0 is constant, so S-hat_2 = 0
    and the task adds nothing. clip 0, ratio 1: threshold sorted(B_1)[0] = 0, S-hat_1 = B_1 / max B_1 with
    B_1 = (e^2 tanh 4, e^.5 tanh 1, 0, e^.5 tanh 1) > 0 except at the zero entry: tau* = X_1 = (2, -1, 0, 1)."""
    out = merge_one("pcb", [X1, torch.zeros(4, dtype=torch.float64)], params={"clip": 0.0, "ratio": 1.0})
    assert_close(out, X1)


def test_an_all_zero_column_gives_zero() -> None:
    """Entry 2 is 0 in both tasks: S-hat * X_c = 0 there and the denominator is guarded (1e-12): tau*_2 = 0."""
    out = merge_one("pcb", [exact([1, 2, 0]), exact([2, 1, 0])], params={"clip": 0.0, "ratio": 1.0})
    assert float(out[2]) == 0.0 and bool(torch.isfinite(out).all())


def test_a_one_element_tensor_has_constant_rows_and_gives_w0() -> None:
    """n = 1, default clip 1e-4: the bounds are sorted(|X|)[0] and sorted(|X|)[floor(0.9999) - 1 = -1], the
    last (only) element as in the reference's indexing. Every row is constant, so every minmax is 0: S = 1,
    and S-hat = minmax(max(B, B)) = 0, hence tau* = 0 / 1e-12 = 0 and W* = W_0."""
    base = exact([0.5])
    assert torch.equal(merge_one("pcb", [exact([3]), exact([-1])], base), base)


@PROPS
@given(case=cases(kinds=("random", "lowrank", "duplicated", "antiparallel", "rank1", "zero"), zero_base=True),
       ratio=st.sampled_from([0.05, 0.1, 0.3, 0.5, 1.0]), clip=st.sampled_from([0.0, 1e-4, 0.1, 0.3]))
def test_pcb_equals_the_spec_written_with_sorts(case: Case, ratio: float, clip: float) -> None:
    """pcb with lam 1 over W_0 = 0 equals section 5.4 evaluated directly; equal weights (pcb has none)."""
    ref = reference(case.taus, ratio, clip)
    out = run("pcb", case, params={"ratio": ratio, "clip": clip}, weights=[1.0] * case.T)
    assert_close(out, ref, case.dtype, scale=case.scale())
