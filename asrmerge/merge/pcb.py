"""PCB-Merging: parameter competition balancing. Du et al. 2024, arXiv:2410.02396 (docs/algorithms.md section 5.4).

Rows of X are the task vectors in scope (a tensor, or the model with scope=model); sorted() is the
ascending per-row sort, 0-based. The quantiles are exact order statistics, streamed when needed; the
row minima and maxima that minmax needs are the clip bounds and the drop threshold themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import Lam, P, algorithm
from asrmerge.merge.ties import magnitude

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


def _minmax(x: Tensor, lo: float, hi: float) -> Tensor:
    """(x - lo) / (hi - lo), defined as 0 where hi == lo (the guard of section 1)."""
    import torch

    return torch.zeros_like(x) if hi == lo else (x - lo) / (hi - lo)


@algorithm("pcb", space="tau", returns="stats", lam=Lam(1.0, "scaling factor lambda (one for all tasks)"),
           paper="Du et al. 2024, Parameter Competition Balancing, arXiv:2410.02396", stats_set=(1, 6))
def pcb(tasks: Operands, *,
        ratio: Annotated[float, P("(0,1]", "fraction r of entries each task keeps after the drop", source="the official default")] = 0.1,
        clip: Annotated[float, P("[0,0.5)", "quantile a clipped from both ends of |tau_t|")] = 1e-4,
        scope: Annotated[str, P(("tensor", "model"), "where the quantiles are taken (the official code: model)")] = "tensor") -> Generator[Any, Any, Rule]:
    """PCB-Merging: clip, weigh entries by intra- and inter-task balance, drop the least important, average."""
    import torch

    from asrmerge.merge.stream import Extreme, KthLargest

    n, T = tasks.scope_numel, tasks.T
    # sorted(v)[i] (ascending, 0-based) is the (n - i)-th largest
    lo_rank = n - math.floor(n * clip)
    # sorted(|X|)[floor(n (1 - a)) - 1]; for n = 1 and a > 0 that index is -1, which (as the reference's
    # Python indexing) is the last element: without the clamp a one-element tensor asked for rank 2 of 1
    hi_rank = n - max(math.floor(n * (1 - clip)) - 1, 0)
    drop_rank = n - math.floor(n * (1 - ratio))
    bounds = yield [KthLargest(magnitude(lambda c, t: c.tau(t), t), k, fresh=True) for t in range(T)
                    for k in (lo_rank, hi_rank)]
    lo = [float(bounds[2 * t]) for t in range(T)]
    hi = [float(bounds[2 * t + 1]) for t in range(T)]

    def importance(c: Operands, t: int) -> Tensor:
        total = c.cached("pcb-sum", lambda: c.taus().sum(0))
        x = c.tau(t)
        a = x.abs().clamp(lo[t], hi[t])
        s = torch.exp(T * _minmax(a, lo[t], hi[t]) ** 2)
        return s * torch.tanh(x * total)

    def of(t: int) -> Callable[[Operands], Tensor]:
        return lambda c: importance(c, t)

    stats = yield [r for t in range(T) for r in (KthLargest(of(t), drop_rank), Extreme(of(t), largest=True))]
    thr = [float(stats[2 * t]) for t in range(T)]
    top = [max(float(stats[2 * t + 1]), thr[t]) for t in range(T)]

    def rule(c: Operands) -> Tensor:
        num = torch.zeros(c.shape, dtype=c.dtype, device=c.device)
        den = torch.zeros_like(num)
        for t in range(T):
            x = c.tau(t)
            xc = torch.sign(x) * x.abs().clamp(lo[t], hi[t])
            sh = _minmax(torch.maximum(importance(c, t), torch.tensor(thr[t], dtype=c.dtype, device=c.device)),
                         thr[t], top[t])
            num = num + sh * xc
            den = den + sh
        return num / den.clamp_min(1e-12)

    return rule
