"""Multi-SLERP, barycentric SLERP as mergekit merge_methods/multislerp.py (ALGORITHMS.md 4.4).

mergekit's tangent step is identically zero, so the result is the closed form
x* = (sum w_i n_i) * normalise(sum w_i x_i / (n_i + eps)): karcher with max_iter = 0, computed from the
T x T Gram matrix in one streaming pass.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.stream import Rule
    from asrmerge.merge.tasks import Tasks

EPS = 1e-8


@algorithm("multislerp", space="weights", paper="Multi-SLERP (mergekit multislerp; arXiv:2603.05354)", needs_base=False)
def multislerp(tasks: Tasks, *,
               use_base: Annotated[bool, P(None, "interpolate task vectors instead of weights, then add W0 back", source="ours")] = False,
               ) -> Generator[Any, Any, Rule]:
    """Multi-SLERP: spherical barycentre of the weights (or task vectors), rescaled by their mean norm."""
    from asrmerge.errors import AsrmergeError
    from asrmerge.merge.stream import Total

    def x(c: Tasks, t: int) -> Tensor:
        return c.tau(t) if use_base else c.theta(t)

    if tasks.T == 1:
        return lambda c: c.theta(0)
    total = sum(tasks.weights)
    if total == 0:
        raise AsrmergeError("the weights sum to 0", subject="--weights")
    w = [v / total for v in tasks.weights]

    def gram(c: Tasks) -> Tensor:
        import torch

        s = torch.stack([x(c, t).reshape(-1) for t in range(c.T)])
        return s @ s.T

    (g,) = yield [Total(gram)]
    n = [math.sqrt(max(float(g[i, i]), 0.0)) for i in range(tasks.T)]
    a = [w[i] / (n[i] + EPS) for i in range(tasks.T)]  # sum_i a_i x_i is sum w_i u~_i
    sq = sum(a[i] * a[j] * float(g[i, j]) for i in range(tasks.T) for j in range(tasks.T))
    mean_norm = sum(w[i] * n[i] for i in range(tasks.T))
    if math.sqrt(max(sq, 0.0)) < EPS:
        if tasks.T != 2:
            raise AsrmergeError(f"tensor {tasks.name}: antipodal inputs, the spherical mean is undefined",
                                subject="multislerp", hint="merge these inputs with another algorithm")
        coef = w  # two opposite inputs: linear interpolation, as mergekit
    else:
        coef = [mean_norm * ai / math.sqrt(sq) for ai in a]

    def rule(c: Tasks) -> Tensor:
        out = coef[0] * x(c, 0)
        for t in range(1, c.T):
            out = out + coef[t] * x(c, t)
        return c.base() + out if use_base else out

    return rule
