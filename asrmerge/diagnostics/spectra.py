"""Single-matrix quantities of one singular spectrum (docs/algorithms.md section 8.1).

Everything here is a function of the singular values sigma_1 >= ... >= sigma_r >= 0 of one matrix A
(m x n, r = min(m, n)), computed in float64 from the values the SVD returned in the compute dtype:

- ``fro`` = sqrt(sum sigma^2) = ||A||_F, ``spec`` = sigma_1, ``nuc`` = sum sigma, ``nrank`` = rho(A);
- energy E(k) = sum_{i<=k} sigma_i^2 / sum sigma^2; ``rank90``/``rank99`` the smallest k with E(k) >= 0.9/0.99;
- ``k_keep`` = min(max(1, floor(p r)), rho), the ranks TSV-M keeps (section 6.3 step 1), ``e_keep`` = E(k_keep);
- ``erank`` (Roy & Vetterli 2007) and ``srank`` over the rho values above epsilon_tol, so both lie in [1, rho]
  (0 for a zero matrix);
- the BoostedTSV-M boost (section 6.4): ``boost_c``, ``boost_j`` and ``boost_gain``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from asrmerge.linalg.svd import numerical_rank

if TYPE_CHECKING:
    from torch import Tensor

TOP = 64  # spectrum values reported without --full


def energy(sigma: Tensor) -> Tensor:
    """E(k) for k = 1..r: the share of the squared Frobenius norm held by the top k singular values.

    Args:
        sigma: singular values, descending (any float dtype).
    Returns:
        float64 tensor of length r; all zeros for a zero spectrum (E is undefined there).
    Paper: docs/algorithms.md section 8.1 (the Frobenius energy, not the sigma-sum of the BoostedTSV-M boost).
    """
    s = _scaled(sigma.to(torch.float64))
    if s.numel() == 0 or float(s.max()) == 0.0:
        return torch.zeros_like(s)
    sq = s * s
    return torch.cumsum(sq, 0) / sq.sum()


def rank_at(e: Tensor, q: float) -> int:
    """The smallest k with E(k) >= q (1-based); 0 for a zero spectrum.

    Args:
        e: the energy curve of :func:`energy`.
        q: the fraction, e.g. 0.9.
    Returns:
        k in [1, r], or 0 when the spectrum is zero.
    """
    if e.numel() == 0 or float(e[-1]) == 0.0:
        return 0
    hits = torch.nonzero(e >= q)
    return int(hits[0]) + 1 if hits.numel() else int(e.numel())


def effective_rank(sigma: Tensor) -> float:
    """erank = exp(H), H = -sum p_i ln p_i with p_i = sigma_i / sum sigma (0 ln 0 = 0); 0 for a zero matrix.

    Args:
        sigma: the singular values to count (callers pass the rho values above epsilon_tol).
    Returns:
        erank in [1, len(sigma)], or 0.0 when sigma sums to zero.
    Paper: Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007.
    """
    s = sigma.to(torch.float64)
    total = float(s.sum())
    if total == 0.0:
        return 0.0
    p = s[s > 0] / total
    return math.exp(float(-(p * torch.log(p)).sum()))


def stable_rank(sigma: Tensor) -> float:
    """srank = sum sigma^2 / sigma_1^2 in [1, len(sigma)]; 0 for a zero matrix.

    Args:
        sigma: singular values, descending.
    Returns:
        the stable rank.
    Paper: docs/algorithms.md section 8.1; Subspace Boosting (Skorobogat et al. 2025, arXiv:2506.16506) tracks it.
    """
    s = sigma.to(torch.float64)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0.0
    return float(((s / s[0]) ** 2).sum())


def keep_rank(r: int, rank_frac: float, rho: int) -> int:
    """k_t = min(max(1, floor(p r)), rho): the triplets TSV-M keeps of a task (docs/algorithms.md section 6.3 step 1).

    Args:
        r: min(m, n).
        rank_frac: p in (0, 1].
        rho: the numerical rank of the task.
    Returns:
        the kept rank (0 for a zero matrix).
    Paper: Gargiulo et al. 2025, Task Singular Vectors, arXiv:2412.00081.
    """
    return min(max(1, math.floor(rank_frac * r)), rho)


def boost(sigma_kept: Tensor, beta: float) -> tuple[int | None, float | None]:
    """(j*, gain) of the BoostedTSV-M boost of one task's kept singular values (defaults: e_i = sigma_i, kept scope).

    c_j = sum_{i<=j} sigma_i / sum_{i<=k} sigma_i; j* = min{j : c_j >= beta} (1-based; the last index if none);
    sigma'_i = max(sigma_i, sigma_{j*}); gain = sum sigma' / sum sigma >= 1. The boost is skipped (j* = None,
    gain 1) when beta >= 1, as in docs/algorithms.md section 6.4.

    Args:
        sigma_kept: the k_t kept singular values, descending.
        beta: the energy fraction beta.
    Returns:
        (j*, gain); (None, None) when nothing is kept or the kept values sum to zero.
    Paper: Carvalho et al. 2026, arXiv:2603.05354; the rule of Subspace Boosting, arXiv:2506.16506.
    """
    s = sigma_kept.to(torch.float64)
    total = float(s.sum()) if s.numel() else 0.0
    if total == 0.0:
        return None, None
    if beta >= 1.0:
        return None, 1.0
    c = torch.cumsum(s, 0) / total
    hits = torch.nonzero(c >= beta)
    j = int(hits[0]) if hits.numel() else s.numel() - 1
    lifted = torch.maximum(s, s[j])
    return j + 1, float(lifted.sum()) / total


def matrix_stats(sigma: Tensor, shape: tuple[int, int], compute: torch.dtype, *, rank_frac: float,
                 beta: float, top: int | None = TOP) -> dict[str, Any]:
    """Every single-matrix quantity of section 8.1, as the fields of a JSONL record.

    Args:
        sigma: the singular values of one matrix, descending, in the compute dtype (any device).
        shape: (m, n) of the matrix.
        compute: the dtype the SVD ran in (sets epsilon_tol and the printed precision).
        rank_frac: p of ``k_keep`` and ``e_keep``.
        beta: beta of ``boost_j`` and ``boost_gain``.
        top: how many singular values ``spectrum`` lists (None: all).
    Returns:
        a dict with ``fro spec nuc nrank erank srank rank90 rank99 p k_keep e_keep boost_c beta boost_j
        boost_gain spectrum``; quantities undefined for a zero matrix are None.
    Paper: docs/algorithms.md section 8.1.
    """
    s = sigma.detach().to("cpu")
    rho = numerical_rank(s, shape, compute)
    s64 = s.to(torch.float64)
    e = energy(s64)
    r = min(shape)
    k = keep_rank(r, rank_frac, rho)
    nuc = float(s64.sum())
    j, gain = boost(s64[:k], beta)
    digits = 7 if compute == torch.float32 else 17
    shown = s64 if top is None else s64[:top]
    return {
        "fro": _fro(s64),
        "spec": float(s64[0]) if s64.numel() else 0.0,
        "nuc": nuc,
        "nrank": rho,
        "erank": effective_rank(s64[:rho]),
        "srank": stable_rank(s64[:rho]),
        "rank90": rank_at(e, 0.90),
        "rank99": rank_at(e, 0.99),
        "p": rank_frac,
        "k_keep": k,
        "e_keep": float(e[k - 1]) if k > 0 else None,
        "boost_c": float(s64[:k].sum()) / nuc if k > 0 else None,
        "beta": beta,
        "boost_j": j,
        "boost_gain": gain,
        "spectrum": [float(f"{v:.{digits}g}") for v in shown.tolist()],
    }


def _scaled(s: Tensor) -> Tensor:
    """``s`` times a power of two that brings its largest value near 1: exact, and squares no longer underflow."""
    top = float(s.abs().max()) if s.numel() else 0.0
    if top == 0.0:
        return s
    e = -math.frexp(top)[1]
    return s * 2.0 ** (e // 2) * 2.0 ** (e - e // 2)  # two factors: 2^1074 alone would overflow


def _fro(s: Tensor) -> float:
    top = float(s.max()) if s.numel() else 0.0
    return top * math.sqrt(float(((s / top) ** 2).sum())) if top > 0 else 0.0


def rounding_loss(update: Tensor, base: Tensor, dtype: torch.dtype) -> float:
    """The fraction of entries where M != 0 but cast(W_0 + M) == cast(W_0) in ``dtype``: what storing is lost.

    Args:
        update: M (or tau_t), in the compute dtype.
        base: W_0 as stored (upcast exactly to the update's dtype before the addition).
        dtype: the storage dtype of the result (fp32, fp16 or bf16).
    Returns:
        #{entries with M != 0 and cast(W_0 + M) == cast(W_0)} / numel, in [0, 1].
    Paper: docs/algorithms.md section 8.1 and 3 (fine-tuning deltas sit near the half-ulp of fp16/bf16 weights).
    """
    if update.numel() == 0:
        return 0.0
    w0 = base.to(update.device, update.dtype)
    lost = (update != 0) & ((w0 + update).to(dtype) == w0.to(dtype))
    return float(lost.sum()) / update.numel()
