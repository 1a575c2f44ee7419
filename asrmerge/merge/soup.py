"""Model Soups: weight averaging. Wortsman et al. 2022, arXiv:2203.05482 (docs/algorithms.md section 4.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asrmerge.merge.registry import algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


@algorithm("soup", space="params", returns="rule", identity={}, paper="Wortsman et al. 2022, Model soups, arXiv:2203.05482", needs_base=False)
def soup(tasks: Operands) -> Rule:
    """Weighted average of the fine-tuned weights: W* = sum_t w_t W_t / sum_t w_t."""
    from asrmerge.errors import UsageError

    total = sum(tasks.weights)
    if total <= 0:
        raise UsageError(f"the weights sum to {total:g}; soup divides by their sum", subject="--weights",
                         hint="give weights with a positive sum")

    def rule(c: Operands) -> Tensor:
        out = c.weights[0] * c.theta(0)
        for t in range(1, c.T):
            out = out + c.weights[t] * c.theta(t)
        return out / total

    return rule
