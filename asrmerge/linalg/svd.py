"""Device-agnostic linear algebra for the subspace algorithms (ALGORITHMS.md sections 1 and 3).

Thin SVD with one retry, numerical rank, the polar factor (partial isometry), and Newton-Schulz
orthogonalisation. Everything runs on the device and in the dtype of its input; wide matrices are
decomposed through their transpose, which LAPACK handles 2.5-4x faster on CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from asrmerge.errors import AsrmergeError

if TYPE_CHECKING:
    from torch import Tensor

# Newton-Schulz (a, b, c) per step: X <- a X + (b G + c G^2) X with G = X X^T
NS_COEFFS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "muon": ((3.4445, -4.7750, 2.0315),),
    "schedule": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    "cubic": ((1.5, -0.5, 0.0),),
}


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
    try:
        return torch.linalg.svd(a, full_matrices=False)
    except (torch.linalg.LinAlgError, RuntimeError):
        try:
            u, s, vh = torch.linalg.svd(a.detach().to("cpu", torch.float64), full_matrices=False)
        except (torch.linalg.LinAlgError, RuntimeError) as e:
            raise AsrmergeError(f"SVD failed twice (also on the CPU in fp64): {e}", subject=name or "svd",
                                hint="the tensor is ill-conditioned; exclude it with -p policy='NAME=mean'") from e
        return u.to(a.device, a.dtype), s.to(a.device, a.dtype), vh.to(a.device, a.dtype)


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


def svdvals(a: Tensor) -> Tensor:
    """Singular values only (descending)."""
    if a.shape[-2] < a.shape[-1]:
        a = a.mT
    try:
        return torch.linalg.svdvals(a)
    except (torch.linalg.LinAlgError, RuntimeError):
        return torch.linalg.svdvals(a.detach().to("cpu", torch.float64)).to(a.device, a.dtype)


def batched_svd(a: Tensor, *, name: str = "") -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of a stack (..., m, n) in one call (wide stacks through their transpose); one retry on the CPU."""
    if a.shape[-2] < a.shape[-1]:
        u, s, vh = batched_svd(a.mT, name=name)
        return vh.mT, s, u.mT
    try:
        return torch.linalg.svd(a, full_matrices=False)
    except (torch.linalg.LinAlgError, RuntimeError):
        try:
            u, s, vh = torch.linalg.svd(a.detach().to("cpu", torch.float64), full_matrices=False)
        except (torch.linalg.LinAlgError, RuntimeError) as e:
            raise AsrmergeError(f"batched SVD failed twice (also on the CPU in fp64): {e}", subject=name or "svd",
                                hint="merge with --batch 1 to find the tensor") from e
        return u.to(a.device, a.dtype), s.to(a.device, a.dtype), vh.to(a.device, a.dtype)


def rank_mask(s: Tensor, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> Tensor:
    """s_i > epsilon_tol of their matrix, for stacked spectra (..., r): the numerical-rank mask."""
    tol = max(shape[-2], shape[-1]) * machine_eps(dtype) * s[..., :1]
    return (s > tol) & (s[..., :1] > 0)


def batched_polar(a: Tensor, *, name: str = "") -> Tensor:
    """:func:`polar` of every matrix of a stack (..., m, n), the rank handled per matrix by masking."""
    p, s, qh = batched_svd(a, name=name)
    keep = rank_mask(s, a.shape, a.dtype).to(a.dtype)
    return (p * keep.unsqueeze(-2)) @ qh


def polar(a: Tensor, *, name: str = "") -> Tensor:
    """polar(A) = P_{:rho} Q_{:rho}^T from A = P diag(s) Q^T, keeping pairs with s_i > epsilon_tol(A).

    Identical to P Q^T on full-rank A (orthonormal columns if A is tall, rows if wide); on rank-deficient
    A it is the unique partial isometry rather than an arbitrary completion.
    """
    p, s, qh = svd(a, name=name)
    rho = numerical_rank(s, a.shape, a.dtype)
    return p[:, :rho] @ qh[:rho, :]


def newton_schulz(a: Tensor, steps: int = 5, coeffs: str = "muon") -> Tensor:
    """NS_K(A): ``steps`` Newton-Schulz iterations towards polar(A), in ``a``'s dtype (section 3)."""
    table = NS_COEFFS[coeffs]
    x = a
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + 1e-7)
    for i in range(1, steps + 1):
        ca, cb, cc = table[min(i, len(table)) - 1]
        g = x @ x.mT
        x = ca * x + (cb * g + cc * (g @ g)) @ x
    return x.mT if tall else x


def orthogonalise(a: Tensor, orth: str, *, ns_steps: int = 5, ns_coeffs: str = "muon", name: str = "") -> Tensor:
    """The ``orth`` rule of sections 6.2-6.3: ``svd`` (polar), ``ns`` (Newton-Schulz) or ``eigh``."""
    if orth == "svd":
        return polar(a, name=name)
    if orth == "ns":
        return newton_schulz(a, ns_steps, ns_coeffs)
    if orth == "eigh":
        lam, q = torch.linalg.eigh(a.mT @ a)
        return a @ q @ torch.diag(1.0 / (lam.abs().sqrt() + 1e-12)) @ q.mT
    raise ValueError(orth)
