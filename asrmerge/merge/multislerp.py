"""Multi-SLERP, barycentric SLERP as mergekit merge_methods/multislerp.py (docs/algorithms.md section 4.4).

mergekit's tangent step is identically zero, so the result is the closed form
x* = (sum w_i n_i) * normalise(sum w_i x_i / n_i): karcher with max_iter = 0, computed from the T x T Gram
matrix in one streaming pass. mergekit divides by n_i + 1e-8 instead, a relative difference of about
1e-8 / n_i; zero inputs add nothing to the direction, and all-zero inputs give 0.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule

EPS = 1e-8


@algorithm("multislerp", space="params", returns="stats", identity={}, paper="Multi-SLERP (mergekit multislerp; arXiv:2603.05354)", needs_base=False)
def multislerp(tasks: Operands, *,
               use_base: Annotated[bool, P(None, "interpolate task vectors instead of weights, then add W0 back", source="ours")] = False,
               ) -> Generator[Any, Any, Rule]:
    """Multi-SLERP: spherical barycentre of the weights (or task vectors), rescaled by their mean norm."""
    from asrmerge.errors import AsrmergeError
    from asrmerge.merge.stream import Total

    def x(c: Operands, t: int) -> Tensor:
        return c.tau(t) if use_base else c.theta(t)

    if tasks.T == 1:
        return lambda c: c.theta(0)
    total = sum(tasks.weights)
    if total == 0:
        raise AsrmergeError("the weights sum to 0", subject="--weights")
    w = [v / total for v in tasks.weights]

    def gram(c: Operands) -> Tensor:
        import torch

        s = torch.stack([x(c, t).reshape(-1) for t in range(c.T)])
        return s @ s.T

    (g,) = yield [Total(gram)]
    T = tasks.T
    n = [math.sqrt(max(float(g[i, i]), 0.0)) for i in range(T)]
    mean_norm = sum(w[i] * n[i] for i in range(T))
    if mean_norm == 0.0:
        coef = [0.0] * T  # every input is 0: x* = 0 * normalise(...) = 0, whatever the direction
    else:
        # sum_i a_i x_i = n_min * sum_i w_i x_i / n_i (zero inputs add nothing): the closed form without
        # mergekit's eps, so that it is karcher(max_iter=0); the common factor n_min keeps 1/n_i finite
        n_min = min(v for v in n if v > 0)
        a = [w[i] * (n_min / n[i]) if n[i] > 0 else 0.0 for i in range(T)]
        sq = max(sum(a[i] * a[j] * float(g[i, j]) for i in range(T) for j in range(T)), 0.0)
        if math.sqrt(sq) / n_min < EPS:
            if T != 2:
                raise AsrmergeError(f"tensor {tasks.name}: antipodal inputs, the spherical mean is undefined",
                                    subject="multislerp", hint="merge these inputs with another algorithm")
            coef = w  # two opposite inputs: linear interpolation, as mergekit
        else:
            coef = [mean_norm * ai / math.sqrt(sq) for ai in a]

    def rule(c: Operands) -> Tensor:
        out = coef[0] * x(c, 0)
        for t in range(1, c.T):
            out = out + coef[t] * x(c, t)
        return c.base() + out if use_base else out

    return rule
