"""The top k singular triplets through the fp64 Gram matrix (docs/algorithms.md section 3, #gram-route).

TSV-M, TSV-M w/ NS and BoostedTSV-M keep only the top k = floor(p r) singular triplets of each task (and the
numerical rank; BoostedTSV-M with boost_scope=full the whole spectrum). For an m x n matrix A (m >= n, a
wide one through its transpose) with 5k <= n, on the CPU in fp32, :func:`top_svd` computes them as

    G = A^T A (fp64),  the top k eigenpairs (lambda, W) of G (fp64),  sigma = sqrt(lambda),
    V_k = W_{:k},  U_k = A V_k diag(sigma_{:k})^-1 (fp64),

the eigenpairs by LAPACK's dsyevr for indices n-k+1..n (:mod:`asrmerge.linalg.lapack`), or, where every
singular value is needed or that LAPACK is missing, by torch's full eigh, which pays only on matrices at
least twice as long as wide. On one core it is 1.7x faster than the fp32 thin SVD on 1280 x 1280 with
k = 128 and 1.9x on 5120 x 1280; at k = n / 2 it does not pay, and :func:`uses_gram` keeps the SVD there.

Squaring A squares its condition number, so each result is checked a posteriori, in fp64, before it is used:
the residual R = A^T U_k - V_k diag(sigma_{:k}) (A V_k = U_k diag(sigma_{:k}) holds by construction) and the
orthogonality of U_k. (U_k, sigma_{:k}, V_k) are then exact singular triplets of a matrix within
|R|_F + sigma_1 |U_k^T U_k - I|_F of A (a backward error); the route is kept where that is at most
:data:`GRAM_TOL` (1e-7) of |A|_F, below the fp32 SVD's own (measured 1e-6 on these shapes), and otherwise,
or where the eigensolver fails, the thin SVD runs as before. Only the first min(k, rho) triplets are
returned, rho the numerical rank: TSV-M's numerical rank mode never uses the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

GRAM_TOL = 1e-7  # the backward error the route must certify, relative to |A|_F
ASPECT = 2  # the long side at least this many times the short one, without dsyevr
SHARE = 5  # k at most the short side / SHARE
EIGH_UNITS = 0.75  # torch's fp64 n x n eigh in fp32 n x n SVDs (one core here: 0.83 at 384, 0.76 at 512, 0.73 at 1280)


def uses_gram(m: int, n: int, k: int, device_type: str, dtype_name: str, *, spectrum: bool = False) -> bool:
    """Whether :func:`top_svd` tries the Gram route for the top ``k`` triplets of an m x n matrix on this device
    in this dtype: the CPU in fp32 and k at most a fifth of the short side; with ``spectrum`` (the caller needs
    every singular value) or without dsyevr (:func:`asrmerge.linalg.lapack.available`), also a long side at
    least twice the short one (the full eigendecomposition does not pay on square matrices)."""
    from asrmerge.linalg import lapack

    long, short = max(m, n), min(m, n)
    if not (device_type == "cpu" and dtype_name == "float32" and k > 0 and SHARE * k <= short):
        return False
    return long >= ASPECT * short or (not spectrum and lapack.available())


def eigh_units(n: int, k: int, spectrum: bool) -> float:
    """The route's eigendecomposition of an n x n Gram matrix in :func:`asrmerge.merge.plan.svd_units` (an
    fp32 n x n SVD is n^3), for ``--dry-run``: dsyevr's top k ((0.25 + 1.5 k / n) n^3, timed on one core here:
    0.33 and 0.47 at n = 1280 with k = 128 and 256, 0.39 and 0.58 at n = 512 with k = 51 and 102), or, with
    ``spectrum`` or without dsyevr, the full one (:data:`EIGH_UNITS` n^3), as :func:`gram_svd` chooses."""
    from asrmerge.linalg import lapack

    subset = not spectrum and lapack.available()
    return (0.25 + 1.5 * min(k, n) / n if subset else EIGH_UNITS) * float(n) ** 3


SYRK = 0.6
"""Time per multiply-add of the Gram matrix by dsyrk (one triangle) against a matrix product's: 0.56-0.71
measured on large-v3 shapes (:mod:`asrmerge.linalg.lapack`)."""


def gram_products(m: int, n: int, k: int, syrk: bool | None = None) -> float:
    """Multiply-adds of the route besides its eigendecomposition, in units of an fp32 product (fp64 counts
    twice): the Gram matrix (at :data:`SYRK` where dsyrk forms it; ``syrk=None``: where it is available),
    U_k, the residual and U_k^T U_k, for ``--dry-run``'s estimate."""
    from asrmerge.linalg import lapack

    if syrk is None:
        syrk = lapack.syrk_available()
    long, short = max(m, n), min(m, n)
    return 2.0 * ((SYRK if syrk else 1.0) * long * short * short + 2 * long * short * k + long * k * k)


def gram_svd(a: Tensor, k: int, tol: float = GRAM_TOL, *,
             spectrum: bool = False) -> tuple[Tensor, Tensor, Tensor, int | None] | None:
    """(U_k, sigma, V_k, rho) of ``a`` (m x n, m >= n) by the Gram route, in ``a``'s dtype: U_k m x k',
    V_k n x k' with k' = min(k, rho), rho the numerical rank. With ``spectrum`` or without dsyevr, sigma is
    all n singular values and rho is known; else sigma is the top k values and rho is None where it is at
    least k (only the top k were computed). ``None`` where the backward error does not certify ``tol`` or the
    eigendecomposition fails (the caller takes the thin SVD)."""
    from asrmerge.linalg import lapack
    from asrmerge.linalg.svd import numerical_rank

    x = a.to(torch.float64)
    g = lapack.gram(x)
    if g is None:
        g = x.mT @ x
    top = None if spectrum else lapack.top_eigh(g, k)
    if top is None:
        try:
            lam, w = torch.linalg.eigh(g)
        except (torch.linalg.LinAlgError, RuntimeError):
            return None
        lam, w = lam.flip(0), w.flip(1)
    else:
        lam, w = top
    sigma = lam.clamp_min(0).sqrt()
    norm = float(torch.linalg.vector_norm(x))
    if not 0 < norm < float("inf") or float(sigma[0]) == 0.0:
        return None
    above = numerical_rank(sigma, a.shape, a.dtype)  # of the k values computed: rho, or k where rho >= k
    rho = above if top is None or above < k else None
    kk = min(k, above)
    v = w[:, :kk]
    sk = sigma[:kk]
    u = (x @ v) / sk
    residual = float(torch.linalg.vector_norm(x.mT @ u - v * sk))
    gram = u.mT @ u
    gram.diagonal().sub_(1.0)
    backward = residual + float(sigma[0]) * float(torch.linalg.vector_norm(gram))
    if not backward <= tol * norm:
        return None
    return u.to(a.dtype), sigma.to(a.dtype), v.to(a.dtype), rho


def top_svd(a: Tensor, k: int, *, name: str = "", tol: float = GRAM_TOL,
            spectrum: bool = False) -> tuple[Tensor, Tensor, Tensor, int | None]:
    """(U, sigma, V, rho) of ``a``, with at least the top min(k, rho) triplets: by the Gram route where
    :func:`uses_gram` says so and its check certifies ``tol``, else the thin SVD (every triplet, the whole
    spectrum and rho). ``a = U diag(sigma) V^T`` restricted to the triplets returned. ``spectrum``: sigma must
    be the whole spectrum (and rho known); otherwise the route may return the top k values only and rho None,
    meaning at least k."""
    from asrmerge.linalg.svd import numerical_rank, svd

    m, n = a.shape[-2], a.shape[-1]
    if a.dim() == 2 and uses_gram(m, n, k, a.device.type, str(a.dtype).removeprefix("torch."), spectrum=spectrum):
        out = gram_svd(a if m >= n else a.mT, k, tol, spectrum=spectrum)
        if out is not None:
            u, s, v, rho = out
            return (u, s, v, rho) if m >= n else (v, s, u, rho)
    u, s, vh = svd(a, name=name)
    return u, s, vh.mT, numerical_rank(s, a.shape, a.dtype)
