"""Device-agnostic linear algebra for the subspace algorithms (docs/algorithms.md sections 1 and 3).

Thin SVD with one retry, numerical rank, the polar factor (partial isometry), and Newton-Schulz
orthogonalisation. Everything runs on the device and in the dtype of its input; wide matrices are
decomposed through their transpose, which LAPACK handles 2.5-4x faster on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch

from asrmerge.errors import AsrmergeError
from asrmerge.linalg.newton_schulz import NS_COEFFS, newton_schulz  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from torch import Tensor

T = TypeVar("T")

def machine_eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def eps_tol(sigma1: float | Tensor, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> float:
    """epsilon_tol(A) = max(m, n) * epsilon_machine * sigma_1(A)."""
    return float(max(shape[-2], shape[-1]) * machine_eps(dtype) * float(sigma1))


def numerical_rank(sigma: Tensor, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> int:
    """rho(A) = #{i : sigma_i > epsilon_tol(A)}; 0 for a zero matrix."""
    if sigma.numel() == 0 or float(sigma[0]) == 0.0:
        return 0
    return int((sigma > eps_tol(sigma[0], shape, dtype)).sum())


def _fp64_retry(decompose: Callable[[Tensor], T], a: Tensor, name: str, hint: str) -> T:
    """``decompose(a)``; on a LAPACK/cuSOLVER failure, once more on the CPU in fp64, the results brought back
    to ``a``'s device and dtype (docs/algorithms.md section 3); a second failure names the tensor."""
    try:
        return decompose(a)
    except (torch.linalg.LinAlgError, RuntimeError):
        try:
            out = decompose(a.detach().to("cpu", torch.float64))
        except (torch.linalg.LinAlgError, RuntimeError) as e:
            raise AsrmergeError(f"SVD failed twice (also on the CPU in fp64): {e}", subject=name or "svd",
                                hint=hint) from e
    if isinstance(out, tuple):
        return tuple(x.to(a.device, a.dtype) for x in out)  # type: ignore[return-value]
    return out.to(a.device, a.dtype)  # type: ignore[attr-defined]


def _thin_svd(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    return u, s, vh


def svd(a: Tensor, *, name: str = "") -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD ``a = U diag(S) Vh`` in ``a``'s dtype and device.

    Wide matrices are decomposed as their transpose (same factors, faster). On a LAPACK/cuSOLVER failure
    the decomposition is retried once on the CPU in fp64; a second failure names the tensor.
    """
    if a.shape[-2] < a.shape[-1]:
        u, s, vh = svd(a.mT, name=name)
        return vh.mT, s, u.mT
    if a.dim() == 2 and not bool(a.any()):  # a zero matrix (a frozen layer's task vector): no decomposition
        m, n = a.shape
        eye = torch.eye(m, n, dtype=a.dtype, device=a.device)
        return eye, a.new_zeros(n), torch.eye(n, dtype=a.dtype, device=a.device)
    return _fp64_retry(_thin_svd, a, name, "the tensor is ill-conditioned; exclude it with -p policy='NAME=mean'")


def time_svd(m: int, n: int, *, device: torch.device | str, dtype: torch.dtype = torch.float32,
             repeats: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` thin SVDs of a random m x n matrix on ``device``, after one warm-up.

    On the CPU the timing runs on one thread, as each merge worker does (the caller's thread count is restored).
    """
    import time

    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        a = torch.randn(m, n, dtype=dtype, device=device)
        torch.linalg.svd(a, full_matrices=False)
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            torch.linalg.svd(a, full_matrices=False)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return times
    finally:
        torch.set_num_threads(threads)


def svdvals(a: Tensor, *, name: str = "") -> Tensor:
    """Singular values only (descending); retried once on the CPU in fp64 like :func:`svd`."""
    if a.shape[-2] < a.shape[-1]:
        a = a.mT
    return _fp64_retry(torch.linalg.svdvals, a, name, "the tensor is ill-conditioned")


def batched_svd(a: Tensor, *, name: str = "") -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of a stack (..., m, n) in one call (wide stacks through their transpose); one retry on the CPU."""
    if a.shape[-2] < a.shape[-1]:
        u, s, vh = batched_svd(a.mT, name=name)
        return vh.mT, s, u.mT
    return _fp64_retry(_thin_svd, a, name, "merge with --batch 1 to find the tensor")


def rank_mask(s: Tensor, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> Tensor:
    """s_i > epsilon_tol of their matrix, for stacked spectra (..., r): the numerical-rank mask."""
    tol = max(shape[-2], shape[-1]) * machine_eps(dtype) * s[..., :1]
    return (s > tol) & (s[..., :1] > 0)


def batched_polar(a: Tensor, *, name: str = "") -> Tensor:
    """:func:`polar` of every matrix of a stack (..., m, n), the rank handled per matrix by masking."""
    p, s, qh = batched_svd(a, name=name)
    keep = rank_mask(s, a.shape, a.dtype).to(a.dtype)
    return (p * keep.unsqueeze(-2)) @ qh


def polar(a: Tensor, *, name: str = "", full: bool = False) -> Tensor:
    """polar(A) = P_{:rho} Q_{:rho}^T from A = P diag(s) Q^T, keeping pairs with s_i > epsilon_tol(A).

    Identical to P Q^T on full-rank A (orthonormal columns if A is tall, rows if wide); on rank-deficient
    A it is the unique partial isometry rather than an arbitrary completion. ``full=True`` keeps every pair,
    P Q^T, as the reference code does (on rank-deficient A the null pairs are the SVD's arbitrary choice).
    """
    p, s, qh = svd(a, name=name)
    if full:
        return p @ qh
    rho = numerical_rank(s, a.shape, a.dtype)
    return p[:, :rho] @ qh[:rho, :]


def orth_products(p: int, q: int, orth: str, ns_steps: int = 5, ns_coeffs: str = "muon",
                  spectral_ns: bool = False) -> float:
    """Multiply-adds of :func:`orthogonalise` on a p x q matrix besides its SVD: P Q^T (p q min(p, q)) for
    ``svd``; for ``ns``, Newton-Schulz's (its spectral route where ``spectral_ns``: the device and dtype take
    it, :func:`asrmerge.linalg.newton_schulz.ns_products`). For ``--dry-run``'s estimate."""
    from asrmerge.linalg.newton_schulz import ns_products

    if orth == "ns":
        return ns_products(p, q, ns_steps, ns_coeffs, spectral=spectral_ns)
    return float(p * q * min(p, q)) if orth == "svd" else 0.0


def orthogonalise(a: Tensor, orth: str, *, ns_steps: int = 5, ns_coeffs: str = "muon", name: str = "",
                  full: bool = False) -> Tensor:
    """The ``orth`` rule of sections 6.2-6.3: ``svd`` (polar; ``full``: every pair), ``ns`` (Newton-Schulz) or ``eigh``."""
    if orth == "svd":
        return polar(a, name=name, full=full)
    if orth == "ns":
        return newton_schulz(a, ns_steps, ns_coeffs)
    if orth == "eigh":
        lam, q = torch.linalg.eigh(a.mT @ a)
        return a @ q @ torch.diag(1.0 / (lam.abs().sqrt() + 1e-12)) @ q.mT
    raise ValueError(orth)
