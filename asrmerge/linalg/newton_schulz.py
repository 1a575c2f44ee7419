"""Newton-Schulz orthogonalisation NS_K (docs/algorithms.md section 3): the coefficient tables and the iteration.

The tables are plain data, so the algorithm modules take their names (``-p ns_coeffs=``) from here without
importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


NAMES = tuple(NS_COEFFS)  # the choices of -p ns_coeffs


def ns_products(p: int, q: int, steps: int) -> float:
    """Multiply-adds of :func:`newton_schulz` on a p x q matrix: per step, with s = min(p, q) and w = max(p, q),
    the Gram s x s (s^2 w), its square (s^3) and the update's product (s^2 w). For ``--dry-run``'s estimate."""
    s, w = min(p, q), max(p, q)
    return float(steps * (2 * s * s * w + s**3))


def newton_schulz(a: Tensor, steps: int = 5, coeffs: str = "muon") -> Tensor:
    """NS_K(A): ``steps`` Newton-Schulz iterations towards polar(A), in ``a``'s dtype (section 3)."""
    import torch

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
