"""TIES-Merging: trim, elect sign, disjoint merge. Yadav et al. 2023, arXiv:2306.01708 (docs/algorithms.md section 5.2)."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import Lam, P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule

AGGS = ("dis-mean", "dis-sum", "dis-max")


def top_k(n: int, density: float, k_rule: str) -> int:
    """Entries each task keeps: max(1, floor(rho n)), or the reference's floor(rho n) + 1 (capped at n)."""
    k = math.floor(density * n)
    return min(n, k + 1) if k_rule == "ref" else max(1, k)


def trim_thresholds(tasks: Operands, density: float, k_rule: str,
                    value: Callable[[Operands, int], Tensor]) -> Generator[Any, Any, list[float] | None]:
    """Ask for each task's top-k threshold t_k(|value|) over the scope; ``None`` when nothing is trimmed."""
    from asrmerge.merge.stream import KthLargest

    if density >= 1.0:
        return None
    k = top_k(tasks.scope_numel, density, k_rule)
    thr = yield [KthLargest(magnitude(value, t), k, fresh=True) for t in range(tasks.T)]
    return [float(x) for x in thr]


def magnitude(value: Callable[[Operands, int], Tensor], t: int) -> Callable[[Operands], Tensor]:
    """|value(chunk, t)| as a one-argument function of the chunk (a new tensor on every call)."""
    return lambda c: value(c, t).abs()


def trimmed(x: Tensor, thr: float | None) -> Tensor:
    """x with entries below the threshold magnitude zeroed (entries tied at the threshold are kept).

    |x| >= thr, with thr rounded to x's dtype as a comparison would, is |x| > the next value towards zero,
    which is hardshrink's rule: one vectorised pass, where ``torch.where`` takes ~35x longer on the CPU.
    """
    import torch
    import torch.nn.functional as F

    if thr is None:
        return x
    t = torch.tensor(thr, dtype=x.dtype)
    if float(t) <= 0.0:  # every |x| >= 0 is kept
        return x
    return F.hardshrink(x, float(torch.nextafter(t, torch.zeros((), dtype=x.dtype))))


def elected_sign(total: Tensor) -> Tensor:
    """+1 where ``total`` >= 0 (0 and -0 included), else -1, in its dtype: 2 [total >= 0] - 1, exact.

    Masks in these rules are 0/1 values of the compute dtype written by a comparison into an ``out=`` tensor:
    on the CPU ``torch.where`` and boolean tensors cost 4-35x a vectorised pass."""
    import torch

    return torch.ge(total, 0, out=torch.empty_like(total)).mul_(2.0).sub_(1.0)


def divisor(den: Tensor, scratch: Tensor) -> Tensor:
    """``den`` (>= 0) with 1 where it is 0, in place (den + 0 = den elsewhere, exactly); ``scratch`` is
    overwritten with the 0/1 mask of those entries."""
    import torch

    return den.add_(torch.eq(den, 0, out=scratch))


def disjoint_merge(xs: list[Tensor], weights: list[float], agg: str) -> Tensor:
    """TIES steps 2-3: elect the sign of sum_t w_t x_t (+1 where it is 0), then merge the agreeing entries.

    In place where it can be: every sum adds w_t x_t, rounded, to the running total in task order (the
    products are formed first, never fused into the addition), so the result is the same to the bit. The
    agreeing entries are summed as magnitudes, gamma x_t, and the elected sign applied at the end: negating
    is exact, so that sum is the signed one's to the bit, in fewer passes.

    Masks and the sign are built without ``torch.where`` (:func:`elected_sign`); one ``where`` is left
    (dis-mean's empty entries).
    """
    import torch

    def scaled(x: Tensor, w: float) -> Tensor:
        return x if w == 1.0 else x * w

    total = xs[0] * weights[0]
    for w, x in zip(weights[1:], xs[1:], strict=True):
        total.add_(scaled(x, w))
    gamma = elected_sign(total)
    del total
    num = torch.zeros_like(gamma)
    den = torch.zeros_like(gamma)
    mag = torch.empty_like(gamma)
    agree = torch.empty_like(gamma)
    for w, x in zip(weights, xs, strict=True):
        torch.mul(x, gamma, out=mag)  # |x| where x is nonzero with the elected sign, <= 0 elsewhere
        if agg == "dis-mean":
            torch.gt(mag, 0, out=agree)
        mag.clamp_(min=0.0)
        if agg == "dis-max":
            torch.maximum(num, mag, out=num)
        else:
            num.add_(scaled(mag, w))
            if agg == "dis-mean":
                den.add_(scaled(agree, w))
    if agg == "dis-mean":
        nonzero = den != 0
        return torch.where(nonzero, gamma * num / divisor(den, agree), 0.0)  # 0 where no task agrees
    return gamma * num


@algorithm("ties", space="tau", returns="stats", paper="Yadav et al. 2023, TIES-Merging, arXiv:2306.01708",
           lam=Lam(1.0), identity={"density": 1.0, "lam": 1.0}, stats_set=(1, 6))
def ties(tasks: Operands, *,
         density: Annotated[float, P("(0,1]", "fraction rho of entries each task keeps (top-k by magnitude)")] = 0.2,
         scope: Annotated[str, P(("tensor", "model"), "where the top-k is taken: per tensor (mergekit) or over the whole model (the paper)")] = "tensor",
         agg: Annotated[str, P(AGGS, "disjoint aggregation: mean, sum or max of the agreeing entries")] = "dis-mean",
         k_rule: Annotated[str, P(("floor", "ref"), "k = max(1, floor(rho n)), or floor(rho n) + 1 as the reference code")] = "floor") -> Generator[Any, Any, Rule]:
    """TIES-Merging: trim each task to its top-k, elect a sign per entry, average the agreeing entries."""
    thr = yield from trim_thresholds(tasks, density, k_rule, lambda c, t: c.tau(t))

    def rule(c: Operands) -> Tensor:
        xs = [trimmed(c.tau(t), thr[t] if thr else None) for t in range(c.T)]
        return disjoint_merge(xs, c.weights, agg)

    return rule
