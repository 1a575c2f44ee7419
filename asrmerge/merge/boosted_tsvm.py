"""BoostedTSV-M: TSV-M with per-task singular-value boosting and Newton-Schulz orthogonalisation.

Carvalho et al. 2026, arXiv:2603.05354 (docs/algorithms.md section 6.4). The boost clamps each task's kept singular
values from below at sigma_{j*}, where j* is the first index whose cumulative energy fraction reaches beta
(the rule of Subspace Boosting, Skorobogat et al. 2025, arXiv:2506.16506, applied per task before the
concatenation). With beta = 1 it is exactly tsvm with the same orthogonalisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.iso_c import RANK_MODES, numerical
from asrmerge.merge.registry import Lam, P, algorithm
from asrmerge.merge.tsvm import (
    NS_COEFFS,
    ORTHS,
    one_over_t,
    products,
    svd_count,
    top_k,
    tsv_merge,
    tsv_merge_batch,
)

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.linalg.core import CoreSpace
    from asrmerge.merge.operands import Operands


def boost(sigma: Tensor, full: Tensor, beta: float, energy: str = "sigma", scope: str = "kept") -> Tensor:
    """sigma'_i = max(sigma_i, sigma_{j*}) for the kept values ``sigma`` (``full``: the task's whole spectrum).

    Args:
        sigma: the kept singular values, descending (length k_t).
        full: the whole spectrum of the task (used when ``scope='full'``).
        beta: the energy fraction; beta >= 1 leaves sigma unchanged.
        energy: ``sigma`` (e_i = sigma_i) or ``sigma2`` (e_i = sigma_i^2).
        scope: ``kept`` (fractions of the kept energy) or ``full`` (of the whole spectrum's).
    """
    import torch

    if beta >= 1.0 or sigma.numel() == 0:
        return sigma
    e = sigma if energy == "sigma" else sigma * sigma
    denom = (full if energy == "sigma" else full * full).sum() if scope == "full" else e.sum()
    if float(denom) == 0.0:
        return sigma
    c = torch.cumsum(e, 0) / denom
    hits = torch.nonzero(c >= beta)
    j = int(hits[0]) if hits.numel() else sigma.numel() - 1
    return torch.maximum(sigma, sigma[j])


def boost_batch(sk: Tensor, full: Tensor, keep: Tensor, beta: float, energy: str = "sigma",
                scope: str = "kept") -> Tensor:
    """:func:`boost` of every row of a stack at once: ``sk`` (rows, k) zero-padded where ``keep`` is False."""
    import torch

    if beta >= 1.0:
        return sk
    e = sk if energy == "sigma" else sk * sk
    denom = (full if energy == "sigma" else full * full).sum(-1) if scope == "full" else e.sum(-1)
    c = torch.cumsum(e, -1) / torch.where(denom == 0, 1.0, denom).unsqueeze(-1)
    kt = keep.sum(-1)
    hit = (c >= beta) & keep
    last = (kt - 1).clamp_min(0)
    j = torch.where(hit.any(-1), hit.int().argmax(-1), last)
    lifted = torch.where(keep, torch.maximum(sk, sk.gather(-1, j.unsqueeze(-1))), sk)
    skip = (kt == 0) | (denom == 0)
    return torch.where(skip.unsqueeze(-1), sk, lifted)


def _boosted_batched(batch: list[Operands], *, beta: float = 0.3, rank_frac: float | None = None, orth: str = "ns",
                     ns_steps: int = 5, ns_coeffs: str = "muon", boost_energy: str = "sigma",
                     boost_scope: str = "kept", rank_mode: str = "numerical") -> list[Tensor] | None:
    """boosted-tsvm over same-shape matrices at once; ``None`` for orth=eigh and rank_mode=full (per-matrix only)."""
    if orth == "eigh" or rank_mode == "full":
        return None
    assert rank_frac is not None

    def lift(sk: Tensor, full: Tensor, keep: Tensor) -> Tensor:
        return boost_batch(sk, full, keep, beta, boost_energy, boost_scope)

    return tsv_merge_batch(batch, rank_frac, orth, ns_steps, ns_coeffs, boost=lift if beta < 1.0 else None)


def _boosted_core(space: CoreSpace, *, beta: float = 0.3, rank_frac: float | None = None, orth: str = "ns",
                  ns_steps: int = 5, ns_coeffs: str = "muon", boost_energy: str = "sigma",
                  boost_scope: str = "kept", rank_mode: str = "numerical") -> Tensor:
    """boosted-tsvm on the cores of LoRA task vectors (docs/algorithms.md section 6.5: exact with
    boost_scope=kept; with full, the core spectrum lacks the full one's rounding-level zeros). Only
    rank_mode=numerical comes here (``core_exact``)."""
    from asrmerge.linalg import core

    assert rank_frac is not None

    def lift(sigma: Tensor, full: Tensor) -> Tensor:
        return boost(sigma, full, beta, boost_energy, boost_scope)

    k = core.truncation(space.shape, rank_frac)
    return core.tsv(space.cores, space.shape, k, orth=orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs,
                    boost=lift if beta < 1.0 else None)


def boosted_top_k(T: int, params: dict[str, Any], m: int, n: int) -> tuple[int, bool] | None:
    """tsvm's, except that boost_scope=full (with beta < 1) reads each task's whole spectrum."""
    got = top_k(T, params, m, n)
    return None if got is None else (got[0], params["beta"] < 1.0 and params["boost_scope"] == "full")


@algorithm("boosted-tsvm", space="subspace", returns="matrix",
           paper="Carvalho et al. 2026, Model merging for multi-domain ASR, arXiv:2603.05354",
           lam=Lam(1.0, source="ours"), svds=svd_count, batched=_boosted_batched, core=_boosted_core,
           core_exact=numerical, products=products, top_k=boosted_top_k,
           identity={"beta": 1.0, "orth": "svd", "rank_frac": 1.0, "lam": 1.0})
def boosted_tsvm(tasks: Operands, *,
                 beta: Annotated[float, P("(0,1]", "energy fraction beta: values from index j* on are lifted to sigma_{j*} (smaller boosts more)", source="the paper")] = 0.3,
                 rank_frac: Annotated[float | None, P("(0,1]", "fraction p of each task's rank kept", default="1/T", source="ours", resolve=one_over_t)] = None,
                 orth: Annotated[str, P(ORTHS, "orthogonalisation of the concatenated singular vectors", source="the paper: ns")] = "ns",
                 ns_steps: Annotated[int, P("[1,100]", "Newton-Schulz iterations", source="the paper")] = 5,
                 ns_coeffs: Annotated[str, P(NS_COEFFS, "Newton-Schulz coefficients (the paper's quintic: muon)", source="ours")] = "muon",
                 boost_energy: Annotated[str, P(("sigma", "sigma2"), "energy e_i of the cumulative fraction: sigma_i or sigma_i^2", source="ours")] = "sigma",
                 boost_scope: Annotated[str, P(("kept", "full"), "fractions of the kept spectrum's energy or the whole spectrum's", source="ours")] = "kept",
                 rank_mode: Annotated[str, P(RANK_MODES, "drop numerically zero triplets and polar pairs (ours) or keep all k and P Q^T (the reference TSV-M)", source="ours")] = "numerical") -> Tensor:
    """BoostedTSV-M: TSV-M whose tasks' kept spectra are boosted towards isotropy before the concatenation."""
    assert rank_frac is not None

    def lift(sigma: Tensor, full: Tensor) -> Tensor:
        return boost(sigma, full, beta, boost_energy, boost_scope)

    return tsv_merge(tasks, rank_frac, orth, ns_steps, ns_coeffs, boost=lift if beta < 1.0 else None,
                     rank_mode=rank_mode, spectrum=beta < 1.0 and boost_scope == "full")
