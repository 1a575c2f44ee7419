"""Subspace merges of low-rank task vectors computed on small cores (the "core space").

Panariello et al. 2025, "Accurate and Efficient Low-Rank Model Merging in Core Space", arXiv:2509.17786.
Each task vector is low-rank, tau_t = B_t A_t (LoRA: B_t = w_t s_t B, with the task weight and the LoRA
scale folded in), B_t m x r_t, A_t r_t x n. With orthonormal bases Q_B of span[B_1 .. B_T] (m x R) and
Q_A of span[A_1^T .. A_T^T] (n x R), R = sum_t r_t (by Householder QR, orthonormal even when the stack is
rank-deficient),

    tau_t = Q_B C_t Q_A^T,   C_t = (Q_B^T B_t)(A_t Q_A)   (R x R),

and the lift L(C) = Q_B C Q_A^T is a linear isometry that maps an SVD C = U S V^T to the SVD
(Q_B U) S (Q_A V)^T. So every step of TSV-M, TSV-M with Newton-Schulz, BoostedTSV-M, Iso-C and Iso-CTS
(rank_mode=numerical) has its core-space counterpart, and the merge computed on the cores and lifted
equals the full-space merge, provided every rule that looks at a matrix's size looks at the full-space
size: the numerical rank epsilon_tol = max(m, n) eps sigma_1 (a core is R x R), TSV-M's k = floor(p r) and
Iso-CTS's (k, s) with r = min(m, n), and the polar factor's rank rule on the m x K concatenation. The rules
here take that size as ``shape``. Not core-exact: Iso-C and Iso-CTS with rank_mode=full, which average
over, and lift, all min(m, n) directions, including null directions that the full-space SVD chooses
arbitrarily outside span(Q_B). The reasoning, step by step, is in docs/algorithms.md section 6.5.

All functions are pure torch, on the device and in the dtype of their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from asrmerge.linalg.svd import newton_schulz, numerical_rank, svd

if TYPE_CHECKING:
    from torch import Tensor

Boost = Callable[["Tensor", "Tensor"], "Tensor"]


def bases(bs: Sequence[Tensor], as_: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(Q_B, Q_A): orthonormal bases of the stacked column spaces of the B_t and row spaces of the A_t.

    Args:
        bs: B_t, each m x r_t (r_t may be 0).
        as_: A_t, each r_t x n.
    Returns:
        Q_B (m x min(m, R)) and Q_A (n x min(n, R)), R = sum r_t, from reduced Householder QR.
    """
    qb, _ = torch.linalg.qr(torch.cat(list(bs), 1))
    qa, _ = torch.linalg.qr(torch.cat([a.mT for a in as_], 1))
    return qb, qa


def cores(bs: Sequence[Tensor], as_: Sequence[Tensor], qb: Tensor, qa: Tensor) -> list[Tensor]:
    """C_t = (Q_B^T B_t)(A_t Q_A): tau_t = B_t A_t in the bases, so that tau_t = Q_B C_t Q_A^T."""
    return [(qb.mT @ b) @ (a @ qa) for b, a in zip(bs, as_, strict=True)]


def lift(c: Tensor, qb: Tensor, qa: Tensor) -> Tensor:
    """L(C) = Q_B C Q_A^T: a core back in the full m x n space."""
    return qb @ c @ qa.mT


@dataclass(frozen=True)
class CoreSpace:
    """One matrix's T low-rank task vectors x_t = w_t tau_t in their core space.

    Attributes:
        qb, qa: the orthonormal bases Q_B (m x R') and Q_A (n x R').
        cores: C_t (R' x R'), one per task, so that x_t = Q_B C_t Q_A^T.
        shape: (m, n) of the full-space matrices, which every size rule uses.
    """

    qb: Tensor
    qa: Tensor
    cores: list[Tensor]
    shape: tuple[int, int]

    @classmethod
    def of(cls, bs: Sequence[Tensor], as_: Sequence[Tensor], shape: tuple[int, int]) -> CoreSpace:
        """The core space of x_t = B_t A_t (B_t m x r_t with the weight and the LoRA scale folded in)."""
        qb, qa = bases(bs, as_)
        return cls(qb, qa, cores(bs, as_, qb, qa), shape)

    @property
    def T(self) -> int:  # noqa: N802  (the paper's notation)
        return len(self.cores)

    def total(self) -> Tensor:
        """The core of Delta = sum_t x_t."""
        out = self.cores[0].clone()
        for c in self.cores[1:]:
            out += c
        return out

    def lift(self, c: Tensor) -> Tensor:
        """L(C) = Q_B C Q_A^T, an m x n matrix."""
        return lift(c, self.qb, self.qa)


def worthwhile(shape: tuple[int, int], rank: int) -> bool:
    """Whether the cores (rank x rank) are smaller than the full matrices: R < min(m, n)."""
    return rank < min(shape)


def _polar(a: Tensor, shape: tuple[int, int]) -> Tensor:
    """polar(a) with the numerical rank judged as for a matrix of ``shape`` (the full-space concatenation)."""
    p, s, qh = svd(a)
    rho = numerical_rank(s, shape, a.dtype)
    return p[:, :rho] @ qh[:rho, :]


def orthogonalise(a: Tensor, orth: str, rows: int, *, ns_steps: int = 5, ns_coeffs: str = "muon") -> Tensor:
    """The ``orth`` rule (polar factor, Newton-Schulz, eigh) of a core-space concatenation ``a`` (R x K) whose
    full-space counterpart has ``rows`` rows.

    Newton-Schulz needs no size: X -> X q(X^T X) is equivariant under X -> Q X for Q with orthonormal columns
    (X^T X and the Frobenius norm of the first step are unchanged), and so is the eigh rule (a^T a is).
    """
    if orth == "svd":
        return _polar(a, (rows, a.shape[1]))
    if orth == "ns":
        return newton_schulz(a, ns_steps, ns_coeffs)
    if orth == "eigh":
        lam, q = torch.linalg.eigh(a.mT @ a)
        return a @ q @ torch.diag(1.0 / (lam.abs().sqrt() + 1e-12)) @ q.mT
    raise ValueError(orth)


def tsv(xs: Sequence[Tensor], shape: tuple[int, int], k: int, *, orth: str = "svd", ns_steps: int = 5,
        ns_coeffs: str = "muon", boost: Boost | None = None) -> Tensor:
    """TSV-M steps 1-4 on the (weighted) task vectors ``xs``, which may be cores of full-space ``shape``.

    Args:
        xs: w_t tau_t, or their cores.
        shape: (m, n) of the full-space task vectors: every numerical-rank rule uses it.
        k: each task's truncation, max(1, floor(p min(m, n))) of the full space.
        orth: ``svd`` (polar), ``ns`` (Newton-Schulz) or ``eigh``.
        boost: ``boost(kept, whole_spectrum)`` replaces each task's kept singular values (BoostedTSV-M).
    Returns:
        tau* in the space of ``xs`` (lift it for cores).
    Raises:
        ValueError: orth=eigh with K > min(m, n).
    """
    us, ss, vs = [], [], []
    for x in xs:
        u, s, vh = svd(x)
        kt = min(k, numerical_rank(s, shape, x.dtype))
        sk = s[:kt]
        if boost is not None and kt > 0:
            sk = boost(sk, s)
        us.append(u[:, :kt])
        ss.append(sk)
        vs.append(vh[:kt].mT)
    ubar, scat, vbar = torch.cat(us, 1), torch.cat(ss), torch.cat(vs, 1)
    if scat.numel() == 0:
        return xs[0].new_zeros(xs[0].shape)
    if orth == "eigh" and scat.numel() > min(shape):
        raise ValueError(f"orth=eigh needs K <= min(m, n), but K = {scat.numel()}")
    u_p = orthogonalise(ubar, orth, shape[0], ns_steps=ns_steps, ns_coeffs=ns_coeffs)
    v_p = orthogonalise(vbar, orth, shape[1], ns_steps=ns_steps, ns_coeffs=ns_coeffs)
    return (u_p * scat) @ v_p.mT


def iso_c(total: Tensor, shape: tuple[int, int]) -> Tensor:
    """Iso-C with rank_mode=numerical on Delta = sum_t w_t tau_t (or its core) of full-space ``shape``:
    sigma-bar U_rho V_rho^T, sigma-bar the mean of the rho numerically nonzero singular values."""
    u, s, vh = svd(total)
    rho = numerical_rank(s, shape, total.dtype)
    if rho == 0:
        return total.new_zeros(total.shape)
    return s[:rho].mean() * (u[:, :rho] @ vh[:rho])


def iso_cts(xs: Sequence[Tensor], shape: tuple[int, int], k: int, s: int, *, orth: str = "svd", ns_steps: int = 5,
            ns_coeffs: str = "muon") -> Tensor:
    """Iso-CTS with rank_mode=numerical on the weighted task vectors ``xs`` (or cores) of full-space ``shape``.

    Args:
        k, s: the common-subspace rank and the per-task rank, sized on the full space (r = min(m, n)).
    """
    from asrmerge.linalg.svd import eps_tol, svdvals

    total = xs[0]
    for x in xs[1:]:
        total = total + x
    u, sig, vh = svd(total)

    def kept(sv: Tensor, sigma1: float) -> Tensor:
        if sigma1 <= 0:
            return torch.zeros_like(sv, dtype=torch.bool)
        return sv > eps_tol(sigma1, shape, sv.dtype)

    keep_c = kept(sig[:k], float(sig[0]) if sig.numel() else 0.0)
    uc, sc, vc = u[:, :k][:, keep_c], sig[:k][keep_c], vh[:k].mT[:, keep_c]
    blocks_u, blocks_s, blocks_v = [], [], []
    for x in xs if s > 0 else []:
        resid = x - uc @ (uc.mT @ x)
        resid = resid - uc @ (uc.mT @ resid)
        ut, st, vth = svd(resid)
        keep = kept(st[:s], float(svdvals(x)[0]))
        blocks_u.append(ut[:, :s][:, keep])
        blocks_s.append(st[:s][keep])
        blocks_v.append(vth[:s].mT[:, keep])
    blocks_u.append(uc)
    blocks_s.append(sc)
    blocks_v.append(vc)
    ubar, sall, vbar = torch.cat(blocks_u, 1), torch.cat(blocks_s), torch.cat(blocks_v, 1)
    if sall.numel() == 0:
        return total.new_zeros(total.shape)
    u_p = orthogonalise(ubar, orth, shape[0], ns_steps=ns_steps, ns_coeffs=ns_coeffs)
    v_p = orthogonalise(vbar, orth, shape[1], ns_steps=ns_steps, ns_coeffs=ns_coeffs)
    return sall.mean() * (u_p @ v_p.mT)


def truncation(shape: tuple[int, int], rank_frac: float) -> int:
    """TSV-M's k = max(1, floor(p r)), r = min(m, n) of the full space."""
    return max(1, math.floor(rank_frac * min(shape)))
