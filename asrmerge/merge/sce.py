"""SCE: select, calculate, erase. FuseChat, Wan et al. 2024, arXiv:2408.07990 (docs/algorithms.md section 5.5); mergekit sce.

The per-task weights are SCE's own (mean squares of the selected task vectors); ``--weights`` are not used.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import Lam, P, algorithm
from asrmerge.merge.ties import divisor, elected_sign

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


@algorithm("sce", space="tau", returns="stats", lam=Lam(1.0, "scaling factor lambda (mergekit has none: 1)"),
           identity={"select_topk": 1.0}, paper="Wan et al. 2024, FuseChat (SCE), arXiv:2408.07990")
def sce(tasks: Operands, *,
        select_topk: Annotated[float, P("(0,1]", "fraction rho_s of entries with the largest variance across tasks kept (1: all)")] = 1.0) -> Generator[Any, Any, Rule]:
    """SCE: keep the entries whose values vary most across tasks, weigh tasks by energy, merge agreeing signs."""
    import torch

    from asrmerge.merge.stream import KthLargest, Total

    def variance(c: Operands) -> Tensor:
        return c.cached("sce-var", lambda: c.taus().var(0, unbiased=False))

    thr: float | None = None
    if select_topk < 1.0:
        (nnz,) = yield [Total(lambda c: (variance(c) != 0).sum())]
        k = math.floor(select_topk * int(nnz))
        if k == 0:
            return lambda c: torch.zeros(c.shape, dtype=c.dtype, device=c.device)
        (thr,) = yield [KthLargest(variance, k)]

    def keep(c: Operands) -> Tensor:
        """[variance >= thr] as 0/1 in the compute dtype (x times it is x times the boolean mask, to the bit)."""
        def make() -> Tensor:
            assert thr is not None
            v = variance(c)
            return torch.ge(v, thr, out=torch.empty_like(v))
        return c.cached("sce-keep", make)

    def selected(c: Operands, t: int) -> Tensor:
        x = c.tau(t)
        return x if thr is None else x * keep(c)

    (energy,) = yield [Total(lambda c: torch.stack([selected(c, t).pow(2).sum() for t in range(c.T)]))]
    total = float(energy.sum())
    w = [float(e) / total for e in energy.tolist()] if total > 0 else [1.0 / tasks.T] * tasks.T

    def rule(c: Operands) -> Tensor:
        xs = [selected(c, t) for t in range(c.T)]
        s = xs[0]
        for x in xs[1:]:
            s = s + x
        gamma = elected_sign(s)  # masks without torch.where, as in ties: the same values, bit for bit
        num = torch.zeros_like(s)
        den = torch.zeros_like(s)
        m = torch.empty_like(s)
        for wt, x in zip(w, xs, strict=True):
            torch.eq(torch.sign(x), gamma, out=m)
            num = num + wt * m * x
            den = den + wt * m
        return num / divisor(den, m)

    return rule
