"""Karcher (Frechet) mean on the unit sphere (docs/algorithms.md section 4.3); mergekit merge_methods/karcher.py.

Every iterate is a combination of the unit inputs u_i, so the iteration runs on their T x T Gram matrix:
one streaming pass for the Gram matrix, then the mean is written element-wise as sum_i c_i W_i.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.merge.registry import P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands
    from asrmerge.merge.stream import Rule


def thetas_gram(c: Operands) -> Tensor:
    x = c.thetas().reshape(c.T, -1)
    return x @ x.T


def karcher_coefficients(gram: Tensor, weights: list[float], max_iter: int, tol: float) -> list[float]:
    """c such that W* = sum_i c_i W_i, computed from G_ij = <W_i, W_j> (float64)."""
    import torch

    G = gram.to(torch.float64)
    T = G.shape[0]
    n = torch.diagonal(G).clamp_min(0).sqrt()
    valid = [i for i in range(T) if float(n[i]) > tol]
    total_w = sum(weights)
    if not valid or total_w == 0:
        return [0.0] * T
    idx = torch.tensor(valid)
    nv = n[idx]
    U = G[idx][:, idx] / (nv[:, None] * nv[None, :])  # Gram of the unit vectors
    wv = torch.tensor([weights[i] for i in valid], dtype=torch.float64)
    alpha = wv / wv.sum()

    def norm(c: Tensor) -> float:
        return math.sqrt(max(float(c @ U @ c), 0.0))

    mu = alpha.clone()
    if norm(mu) < tol:
        mu = torch.zeros_like(alpha)
        mu[0] = 1.0
    mu = mu / norm(mu)
    for _ in range(max_iter):
        dots = (U @ mu).clamp(-1.0, 1.0)
        phi = torch.arccos(dots)
        g = torch.zeros_like(mu)
        for i in range(len(valid)):
            if float(phi[i]) < tol or float(phi[i]) > math.pi - tol:
                # at the antipode the log map has no direction (u_i - cos(phi) mu = 0, sin(phi) = 0): its term
                # is 0 * inf, so it is skipped like the terms at mu itself
                continue
            e = torch.zeros_like(mu)
            e[i] = 1.0
            g = g + alpha[i] * (phi[i] / torch.sin(phi[i])) * (e - torch.cos(phi[i]) * mu)
        gn = norm(g)
        if gn < tol:
            break
        mu = math.cos(gn) * mu + math.sin(gn) * g / gn
        mu = mu / norm(mu)
    # The scale sums over every input (docs/algorithms.md section 4.3): an input with 0 < n_i <= tol is left out of the
    # direction but still adds a_i n_i; only zero-norm inputs add nothing.
    scale = sum(weights[i] * float(n[i]) for i in range(T)) / total_w
    coef = [0.0] * T
    for j, i in enumerate(valid):
        coef[i] = scale * float(mu[j]) / float(n[i])
    return coef


@algorithm("karcher", space="params", returns="stats", identity={}, paper="Karcher mean on the sphere (mergekit karcher; arXiv:2603.05354)",
           needs_base=False)
def karcher(tasks: Operands, *,
            max_iter: Annotated[int, P("[0,1000]", "Riemannian gradient steps")] = 10,
            tol: Annotated[float, P("(0,1]", "convergence and zero-norm tolerance")] = 1e-5) -> Generator[Any, Any, Rule]:
    """Karcher mean of the weights on the unit sphere, rescaled by their weighted mean norm."""
    from asrmerge.merge.stream import Total

    if tasks.T == 1:
        return lambda c: c.theta(0)
    (g,) = yield [Total(thetas_gram)]
    coef = karcher_coefficients(g, tasks.weights, max_iter, tol)

    def rule(c: Operands) -> Tensor:
        out = coef[0] * c.theta(0)
        for t in range(1, c.T):
            out = out + coef[t] * c.theta(t)
        return out

    return rule
