"""DARE: drop and rescale task vectors, then add them. Yu et al. 2024, arXiv:2311.03099 (docs/algorithms.md section 5.3).

The mask of (task t, tensor) keeps entries where u >= p, with u ~ U[0,1) in fp32 drawn from a CPU
generator seeded with SHA-256("{seed}:{name}:{t}") (:func:`asrmerge.merge.operands.draw_seed`): the same
on every device, thread count and chunking.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import Lam, P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule

RESCALES = ("inv", "l1", "none")


def rescale_factors(tasks: Operands, p: float, seed: int, rescale: str,
                    value: Callable[[Operands, int], Tensor]) -> Generator[Any, Any, list[float]]:
    """s_t per task: 1/(1-p) (inv), 1 (none), or ||x_t||_1 / ||m_t x_t||_1 over the tensor (l1; 1 if either < 1e-7)."""
    import torch

    from asrmerge.merge.stream import Total

    if rescale == "inv":
        return [1.0 / (1.0 - p)] * tasks.T
    if rescale == "none":
        return [1.0] * tasks.T

    def norms(c: Operands) -> Tensor:
        rows = []
        for t in range(c.T):
            x = value(c, t)
            rows.append(torch.stack([x.abs().sum(), (x * keep(c, seed, t, p)).abs().sum()]))
        return torch.stack(rows)

    (sums,) = yield [Total(norms, per_tensor=True)]
    out = []
    for full, kept in sums.tolist():
        out.append(full / kept if full >= 1e-7 and kept >= 1e-7 else 1.0)
    return out


def keep(c: Operands, seed: int, t: int, p: float) -> Tensor:
    """The DARE keep-mask m_t of this chunk: u >= p."""
    return c.uniform(seed, t) >= p


def dropped(c: Operands, x: Tensor, seed: int, t: int, p: float, s: float) -> Tensor:
    """s * (m_t * x)."""
    return x * keep(c, seed, t, p) * s if p > 0 else x * s


@algorithm("dare-ta", space="tau", returns="stats", lam=Lam(0.3), identity={"lam": 1.0, "drop_rate": 0.0},
           paper="Yu et al. 2024, Language models are Super Mario (DARE), arXiv:2311.03099")
def dare_ta(tasks: Operands, *,
            drop_rate: Annotated[float, P("[0,1)", "probability p of dropping each entry (FusionBench sparsity_ratio; mergekit density = 1 - p)")] = 0.5,
            rescale: Annotated[str, P(RESCALES, "rescale kept entries by 1/(1-p) (DARE), to keep the L1 norm (mergekit), or not")] = "inv",
            seed: Annotated[int, P("[0,9.2e18]", "seed of the drop masks")] = 0) -> Generator[Any, Any, Rule]:
    """DARE + Task Arithmetic: randomly drop entries of each task vector, rescale, and add them."""
    s = yield from rescale_factors(tasks, drop_rate, seed, rescale, lambda c, t: c.tau(t))

    def rule(c: Operands) -> Tensor:
        out = c.weights[0] * dropped(c, c.tau(0), seed, 0, drop_rate, s[0])
        for t in range(1, c.T):
            out = out + c.weights[t] * dropped(c, c.tau(t), seed, t, drop_rate, s[t])
        return out

    return rule
