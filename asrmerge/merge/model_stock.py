"""Model Stock. Jang et al. 2024, arXiv:2403.19522 (docs/algorithms.md section 4.2), averaged pairwise cosines as mergekit."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


def eta(gram: Tensor, cos_floor: float) -> Tensor:
    """eta = T q / (1 + (T - 1) q) from Gram matrices (..., T, T) of the task vectors, q the mean pairwise cosine."""
    import torch

    T = gram.shape[-1]
    norms = torch.diagonal(gram, dim1=-2, dim2=-1).clamp_min(0).sqrt()
    cos = gram / torch.clamp(norms[..., :, None] * norms[..., None, :], min=1e-6)
    iu = torch.triu_indices(T, T, offset=1)
    q = cos[..., iu[0], iu[1]].mean(-1).clamp(cos_floor, 1.0)
    return T * q / (1 + (T - 1) * q)


@algorithm("model-stock", space="params", returns="stats", paper="Jang et al. 2024, Model Stock, arXiv:2403.19522", min_tasks=2)
def model_stock(tasks: Operands, *,
                filter_wise: Annotated[bool, P(None, "one interpolation ratio per row of dim 0 instead of per tensor")] = False,
                cos_floor: Annotated[float, P("[-1,1]", "lower clamp of the mean cosine q (mergekit: -1)", source="ours")] = 0.0,
                ) -> Generator[Any, Any, Rule]:
    """Model Stock: interpolate between the base and the average by the task vectors' mean cosine."""
    import torch

    from asrmerge.merge.stream import Total

    def gram_rows(c: Operands) -> Tensor:
        d = c.taus().reshape(c.T, c.shape[0] if c.shape else 1, -1).transpose(0, 1)  # rows, T, cols
        return d @ d.transpose(1, 2)

    row_wise = filter_wise and len(tasks.full_shape) >= 2
    if not row_wise:
        def gram(c: Operands) -> Tensor:
            d = c.taus().reshape(c.T, -1)
            return d @ d.T

        (g,) = yield [Total(gram)]
        e = float(eta(g, cos_floor))

    def rule(c: Operands) -> Tensor:
        mean = c.thetas().mean(0)
        if row_wise:
            r = eta(gram_rows(c).to(torch.float64), cos_floor).to(c.dtype)
            r = r.reshape(-1, *([1] * (len(c.shape) - 1)))
        else:
            r = torch.tensor(e, dtype=c.dtype, device=c.device)
        return r * mean + (1 - r) * c.base()

    return rule
