"""Task Arithmetic. Ilharco et al. 2023, arXiv:2212.04089 (docs/algorithms.md section 5.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from asrmerge.merge.registry import Lam, P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


@algorithm("ta", space="tau", returns="rule", paper="Ilharco et al. 2023, Editing models with task arithmetic, arXiv:2212.04089",
           lam=Lam(0.3, "scaling factor: W* = W0 + lam * sum_t w_t tau_t", source="FusionBench scaling_factor"),
           identity={"lam": 1.0})
def ta(tasks: Operands, *,
       normalize: Annotated[bool, P(None, "divide the sum by sum_t w_t")] = False) -> Rule:
    """Task Arithmetic: add the weighted sum of task vectors to the base."""
    from asrmerge.errors import UsageError

    total = sum(tasks.weights)
    if normalize and total == 0:
        raise UsageError("normalize=true divides by the weights' sum, which is 0", subject="--weights")

    def rule(c: Operands) -> Tensor:
        s = c.weighted_sum()
        return s / total if normalize else s

    return rule
