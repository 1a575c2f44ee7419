"""Between tasks, per tensor: cosine, TSV task interference (STI) and subspace overlap (docs/algorithms.md section 8.2).

Each task t contributes its top triplets (U_t, sigma_t, V_t), truncated to k_t = min(k, rho(tau_t)) with
k = floor(r / T) unless ``--sti-k``: triplets whose singular value is below epsilon_tol are dropped, as
TSV-M does (section 6.3 step 1, ours). Their singular vectors are arbitrary (LAPACK's choice), and keeping
them would let the null space of one task "interfere" with the signal of another; dropping them keeps
mutually orthogonal tasks at exactly zero interference even when they are rank-deficient.

    STI     = || (U^T U - I) Sigma (V^T V - I) ||,  U = [U_1 ... U_T], V likewise, Sigma = blkdiag(sigma_t)
    sti_rel = STI / ((T - 1)^2 sum_t sum_i sigma_{t,i})
    STI_ij  = || U_i^T U_j Sigma_j V_j^T V_i || + || U_j^T U_i Sigma_i V_i^T V_j ||   (pair; / sum sigma_i + sum sigma_j)

The norm is the entrywise L1 norm (``l1``, our reading of the paper's ||.||_1) or Frobenius (``fro``); for
a pair, the norm of the block-diagonal matrix holding both terms, so the pair value equals STI for T = 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

NORMS = ("l1", "fro")


@dataclass(frozen=True)
class Triplets:
    """A task's kept singular triplets: ``u`` (m x k_t), ``s`` (k_t), ``v`` (n x k_t)."""

    u: Tensor
    s: Tensor
    v: Tensor

    @property
    def k(self) -> int:
        return int(self.s.numel())


def truncate(u: Tensor, s: Tensor, vh: Tensor, k: int, rho: int) -> Triplets:
    """The top k_t = min(k, rho) triplets of a thin SVD ``u diag(s) vh``.

    Args:
        u, s, vh: the thin SVD of one task vector.
        k: the requested number of triplets.
        rho: the numerical rank (triplets beyond it are dropped).
    Returns:
        the kept :class:`Triplets`.
    Paper: Gargiulo et al. 2025, Task Singular Vectors, arXiv:2412.00081.
    """
    kt = min(k, rho)
    return Triplets(u[:, :kt], s[:kt], vh[:kt, :].mT)


def _norm(x: Tensor, norm: str) -> float:
    if norm == "l1":
        return float(x.abs().sum(dtype=torch.float64))
    return float(torch.linalg.matrix_norm(x.to(torch.float64)))


def sti(tasks: list[Triplets], norm: str = "l1") -> tuple[float, float | None]:
    """The TSV task interference of T tasks on one tensor, and its relative value.

    Args:
        tasks: each task's kept triplets (:func:`truncate`), all on one device.
        norm: ``l1`` (entrywise, the default) or ``fro``.
    Returns:
        (STI, sti_rel); sti_rel is None for T = 1 or when every kept singular value is zero. With ``l1``,
        T identical tasks give sti_rel = 1 and mutually orthogonal tasks give 0.
    Paper: Gargiulo et al. 2025, Task Singular Vectors: Reducing Task Interference in Model Merging,
    arXiv:2412.00081 (docs/algorithms.md section 8.2).
    """
    if not tasks:
        return 0.0, None
    u = torch.cat([t.u for t in tasks], 1)
    v = torch.cat([t.v for t in tasks], 1)
    s = torch.cat([t.s for t in tasks])
    eye = torch.eye(s.numel(), dtype=u.dtype, device=u.device)
    value = _norm(((u.mT @ u - eye) * s) @ (v.mT @ v - eye), norm) if s.numel() else 0.0
    T = len(tasks)
    denom = (T - 1) ** 2 * float(s.sum(dtype=torch.float64))
    return value, (value / denom if T >= 2 and denom > 0 else None)


def pair_sti(a: Triplets, b: Triplets, norm: str = "l1") -> tuple[float, float | None]:
    """STI_ij of two tasks and its value relative to sum sigma_i + sum sigma_j (the T x T heat map).

    Args:
        a, b: the kept triplets of tasks i and j.
        norm: ``l1`` or ``fro``.
    Returns:
        (STI_ij, STI_ij / (sum sigma_i + sum sigma_j)); the relative value is None when both sums are zero.
        Symmetric, invariant to SVD sign flips, and equal to :func:`sti` of the two tasks.
    Paper: arXiv:2412.00081 (docs/algorithms.md section 8.2).
    """
    x1 = ((a.u.mT @ b.u) * b.s) @ (b.v.mT @ a.v)
    x2 = ((b.u.mT @ a.u) * a.s) @ (a.v.mT @ b.v)
    if norm == "l1":
        value = _norm(x1, norm) + _norm(x2, norm)
    else:
        value = math.hypot(_norm(x1, norm), _norm(x2, norm))
    denom = float(a.s.sum(dtype=torch.float64)) + float(b.s.sum(dtype=torch.float64))
    return value, (value / denom if denom > 0 else None)


def overlap(a: Tensor, b: Tensor) -> float | None:
    """ov = ||A^T B||_F^2 / min(k_a, k_b): the mean squared cosine of the principal angles between two subspaces.

    Args:
        a, b: orthonormal bases (m x k_a, m x k_b) of the two subspaces, e.g. two tasks' kept U.
    Returns:
        a value in [0, 1] (1: one subspace contains the other); None when either is empty.
    Paper: docs/algorithms.md section 8.2 (ov^U, ov^V; with k_a = k_b = k it is ||U_i^T U_j||_F^2 / k).
    """
    k = min(a.shape[1], b.shape[1])
    if k == 0:
        return None
    return float(torch.linalg.matrix_norm((a.mT @ b).to(torch.float64)) ** 2) / k


def cosines(x: Tensor) -> list[list[float | None]]:
    """cos(vec tau_i, vec tau_j) for every pair of a stack of T task vectors.

    Args:
        x: T matrices of one shape, stacked (T, m, n).
    Returns:
        the T x T matrix as nested lists; entries involving a zero task vector are None.
    Paper: docs/algorithms.md section 8.2.
    """
    flat = x.reshape(x.shape[0], -1)
    gram = (flat @ flat.mT).to(torch.float64)  # in the compute dtype: no float64 copy of the whole stack
    norms = gram.diagonal().clamp_min(0).sqrt().tolist()
    g = gram.tolist()
    return [[g[i][j] / (norms[i] * norms[j]) if norms[i] > 0 and norms[j] > 0 else None
             for j in range(len(norms))] for i in range(len(norms))]
