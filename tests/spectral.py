"""Matrices with known singular values and task vectors with known geometry, for the svd-inspect tests."""

from __future__ import annotations

import torch


def orthogonal(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random n x n orthogonal matrix (QR of a seeded Gaussian, signs fixed)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(dtype)


def with_spectrum(sigma: list[float], m: int, n: int, seed: int = 0,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """U diag(sigma) V^T with random orthogonal U (m x m) and V (n x n); len(sigma) <= min(m, n)."""
    u, v = orthogonal(m, seed), orthogonal(n, seed + 1)
    s = torch.tensor(sigma, dtype=torch.float64)
    k = s.numel()
    return ((u[:, :k] * s) @ v[:, :k].T).to(dtype)


def block_tasks(spectra: list[list[float]], m: int, n: int, seed: int = 0,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """T task vectors on mutually orthogonal subspaces (U_i^T U_j = 0, V_i^T V_j = 0), stacked (T, m, n).

    Task t uses its own consecutive block of columns of one random orthogonal U and V.
    """
    u, v = orthogonal(m, seed), orthogonal(n, seed + 1)
    out, start = [], 0
    for sigma in spectra:
        k = len(sigma)
        s = torch.tensor(sigma, dtype=torch.float64)
        out.append((u[:, start:start + k] * s) @ v[:, start:start + k].T)
        start += k
    assert start <= min(m, n), "the tasks' ranks must fit side by side"
    return torch.stack(out).to(dtype)
