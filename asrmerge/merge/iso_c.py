"""Iso-C: isotropic merging in common subspace. Marczak et al. 2025, arXiv:2502.04959 (docs/algorithms.md section 6.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from asrmerge.merge.registry import Lam, P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.linalg.core import CoreSpace
    from asrmerge.merge.operands import Operands

RANK_MODES = ("numerical", "full")


def _iso_c_batched(batch: list[Operands], *, rank_mode: str = "numerical") -> list[Tensor]:
    """iso-c over same-shape matrices at once: one batched SVD of the summed task vectors."""
    import torch

    from asrmerge.linalg.svd import batched_svd, rank_mask

    delta = torch.stack([b.weighted_sum() for b in batch])
    u, s, vh = batched_svd(delta, name=batch[0].name)
    if rank_mode == "full":
        return list((s.mean(-1)[:, None, None] * (u @ vh)).unbind(0))
    keep = rank_mask(s, delta.shape, delta.dtype)
    count = keep.sum(-1)
    mean = torch.where(count > 0, (s * keep).sum(-1) / count.clamp_min(1), 0.0)
    return list((mean[:, None, None] * ((u * keep.unsqueeze(-2).to(u.dtype)) @ vh)).unbind(0))


def _iso_c_core(space: CoreSpace, *, rank_mode: str = "numerical") -> Tensor:
    """iso-c on the cores of LoRA task vectors (docs/algorithms.md section 6.5: exact with rank_mode=numerical)."""
    from asrmerge.linalg import core

    return core.iso_c(space.total(), space.shape)


def numerical(params: dict[str, object]) -> bool:
    """rank_mode=numerical: the only mode with a core-space counterpart (rank_mode=full lifts null directions)."""
    return params.get("rank_mode") == "numerical"


def products(T: int, params: dict[str, object], m: int, n: int, spectral_ns: bool = False) -> float:
    """Multiply-adds besides the SVD: the recombination U V^T (m r n)."""
    return float(m * min(m, n) * n)


@algorithm("iso-c", space="subspace", returns="matrix",
           paper="Marczak et al. 2025, No task left behind (Iso-C), arXiv:2502.04959",
           lam=Lam(1.0, "scaling factor lambda (the Iso code tunes it over (0, 3])", source="FusionBench"),
           svds=lambda T, params: 1, batched=_iso_c_batched, core=_iso_c_core, core_exact=numerical,
           products=products)
def iso_c(tasks: Operands, *,
          rank_mode: Annotated[str, P(RANK_MODES, "average the numerically nonzero singular values (ours), or all (the reference)")] = "numerical") -> Tensor:
    """Iso-C: flatten the spectrum of the summed task vectors to its mean singular value."""
    from asrmerge.linalg.svd import numerical_rank, svd

    delta = tasks.weighted_sum()
    u, s, vh = svd(delta, name=tasks.name)
    if rank_mode == "full":
        return s.mean() * (u @ vh)
    rho = numerical_rank(s, delta.shape, delta.dtype)
    if rho == 0:
        return delta.new_zeros(delta.shape)
    return s[:rho].mean() * (u[:, :rho] @ vh[:rho])
