"""DARE + TIES: drop and rescale, then elect signs and merge disjointly (docs/algorithms.md section 5.3).

With ``density`` < 1 each task is first trimmed to its top-k magnitudes and then dropped, as MergeLM does.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.dare import RESCALES, dropped, rescale_factors
from asrmerge.merge.registry import Lam, P, algorithm
from asrmerge.merge.ties import AGGS, disjoint_merge, trim_thresholds, trimmed

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


@algorithm("dare-ties", space="tau", returns="stats", lam=Lam(1.0),
           identity={"density": 1.0, "lam": 1.0, "drop_rate": 0.0}, stats_set=(2, 6),
           paper="Yu et al. 2024, DARE, arXiv:2311.03099; TIES: arXiv:2306.01708")
def dare_ties(tasks: Operands, *,
              drop_rate: Annotated[float, P("[0,1)", "probability p of dropping each entry")] = 0.5,
              rescale: Annotated[str, P(RESCALES, "rescale kept entries: 1/(1-p), L1-preserving, or none")] = "inv",
              seed: Annotated[int, P("[0,9.2e18]", "seed of the drop masks")] = 0,
              density: Annotated[float, P("(0,1]", "trim each task to its top rho entries before dropping (1: no trim)")] = 1.0,
              scope: Annotated[str, P(("tensor", "model"), "where the trim's top-k is taken")] = "tensor",
              k_rule: Annotated[str, P(("floor", "ref"), "top-k count rule of the trim")] = "floor",
              agg: Annotated[str, P(AGGS, "disjoint aggregation")] = "dis-mean") -> Generator[Any, Any, Rule]:
    """DARE-TIES: drop and rescale each task vector, elect signs, average the agreeing entries."""
    thr = yield from trim_thresholds(tasks, density, k_rule, lambda c, t: c.tau(t))

    def trim(c: Operands, t: int) -> Tensor:
        return trimmed(c.tau(t), thr[t] if thr else None)

    s = yield from rescale_factors(tasks, drop_rate, seed, rescale, trim)

    def rule(c: Operands) -> Tensor:
        xs = [dropped(c, trim(c, t), seed, t, drop_rate, s[t]) for t in range(c.T)]
        return disjoint_merge(xs, c.weights, agg)

    return rule
