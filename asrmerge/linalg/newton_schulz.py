"""Newton-Schulz orthogonalisation NS_K (docs/algorithms.md section 3): the coefficient tables and the iteration.

NS_K is a matrix function: after the normalisation X = A / (|A|_F + GUARD) (A's short side first), every
step multiplies X by a polynomial of its Gram matrix G = X X^T, so NS_K(A) = h(G) X for the scalar polynomial
h that the steps build (m <- (a + b g + c g^2) m with g = lambda m^2, from m = 1). On the CPU in fp32 (and
fp16, bf16) :func:`newton_schulz` evaluates it that way: the Gram matrix and its eigendecomposition in fp64,
h on the eigenvalues, one product with X. That costs two products of X's size and an eigendecomposition of the
short side instead of 2K + K/2; it is also closer to the exact NS_K (measured within ~1e-6 relative, where the
K rounded fp32 steps drift by up to ~2e-4). A forward error bound decides per matrix (:func:`spectral_bound`);
where it does not certify 1e-5, and on other devices and in fp64, the K steps run as written.

The tables are plain data, so the algorithm modules take their names (``-p ns_coeffs=``) from here without
importing torch.
"""

from __future__ import annotations

import functools
import math
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

SPECTRAL_TOL = 1e-5  # the spectral route's certified forward error, relative to |NS_K(A)|_F (the fp32 tolerance)
GUARD = 1e-7  # X = A / (|A|_F + GUARD)
_GRID = 1 << 13  # points of [0, 1] on which h's derivative is bounded


def ns_products(p: int, q: int, steps: int, coeffs: str = "muon", *, spectral: bool = False) -> float:
    """Multiply-adds of :func:`newton_schulz` on a p x q matrix, with s = min(p, q) and w = max(p, q), in units
    of an fp32 product, for ``--dry-run``'s estimate. ``spectral``: the device and dtype take the spectral
    route (:func:`uses_spectral`); it is costed where its bound certifies a full-rank matrix a priori
    (:func:`certified` with an output norm of sqrt(s) / 2), else the steps are.

    The K steps: per step the Gram s x s (s^2 w), its square (s^3) and the update's product (s^2 w). The
    spectral route: the fp64 Gram (s^2 w at twice the cost), the eigendecomposition (counted as 6 s^3, its
    time on one core here at s = 640 and 1280), h(G) (s^3 in fp64) and h(G) X (s^2 w)."""
    s, w = min(p, q), max(p, q)
    if spectral and certified(s, w, steps, coeffs, math.sqrt(s) / 2):
        return float(3 * s * s * w + 8 * s**3)
    return float(steps * (2 * s * s * w + s**3))


def _h(lam: Tensor, steps: int, coeffs: str) -> tuple[Tensor, Tensor]:
    """h(lambda) and h'(lambda) of NS_K's scalar polynomial, elementwise (forward-mode derivative)."""
    import torch

    table = NS_COEFFS[coeffs]
    m, dm = torch.ones_like(lam), torch.zeros_like(lam)
    for i in range(1, steps + 1):
        ca, cb, cc = table[min(i, len(table)) - 1]
        g = lam * m * m
        dg = m * m + 2 * lam * m * dm
        p = ca + cb * g + cc * g * g
        m, dm = p * m, (cb + 2 * cc * g) * dg * m + p * dm
    return m, dm


@functools.lru_cache(maxsize=64)
def _h_bounds(steps: int, coeffs: str) -> tuple[float, float]:
    """(max |h|, max |h'|) over lambda in [0, 1 + 1e-6] (a normalised Gram matrix's spectrum), on a fine grid
    with a factor-2 margin for what the grid misses."""
    import torch

    lam = torch.linspace(0.0, 1.0 + 1e-6, _GRID + 1, dtype=torch.float64)
    h, dh = _h(lam, steps, coeffs)
    return 2.0 * float(h.abs().max()), 2.0 * float(dh.abs().max())


def spectral_bound(s: int, w: int, steps: int, coeffs: str) -> float:
    """A bound on |h(G_computed) - h(G)|_F for the spectral route on an s x w normalised X (|X|_F <= 1), hence on
    |NS_K(A)_spectral - NS_K(A)|_F, since |X|_2 <= 1.

    Rounding: the fp64 Gram differs from X X^T by at most w eps |X|_F^2 (Frobenius), the eigendecomposition is
    exact for a matrix within s eps |G|_F (backward stability, constant s), so h moves by at most
    max|h'| (w + s) eps (Daleckii-Krein: a C^1 function of a symmetric matrix is Lipschitz in the Frobenius
    norm with the derivative's bound); forming Q h(Lambda) Q^T adds 2 s eps max|h|.
    """
    import torch

    from asrmerge.linalg.svd import machine_eps

    eps = machine_eps(torch.float64)
    hmax, dmax = _h_bounds(steps, coeffs)
    return dmax * (w + s) * eps + 2 * s * eps * hmax


def certified(s: int, w: int, steps: int, coeffs: str, out_norm: float) -> bool:
    """Whether the spectral route's bound is within :data:`SPECTRAL_TOL` of an output of Frobenius norm
    ``out_norm``. With ``out_norm`` = sqrt(s) / 2 (every normalised singular value mapped to >= 1/2, as muon
    and schedule map the kept spectra of TSV-M's concatenations), it is the dry run's a-priori answer."""
    return spectral_bound(s, w, steps, coeffs) <= SPECTRAL_TOL * out_norm


def _short_side(a: Tensor) -> tuple[Tensor, bool]:
    """A, or its transpose where it has more rows than columns (then True): NS_K works on the short side."""
    tall = a.shape[-2] > a.shape[-1]
    return (a.mT if tall else a), tall


def uses_spectral(device_type: str, dtype_name: str) -> bool:
    """Whether :func:`newton_schulz` tries the spectral route for tensors on this device in this dtype."""
    return device_type == "cpu" and dtype_name in ("float32", "float16", "bfloat16")


def newton_schulz(a: Tensor, steps: int = 5, coeffs: str = "muon") -> Tensor:
    """NS_K(A) in ``a``'s dtype (section 3): by the fp64 spectral route on the CPU in fp32 where its bound
    certifies :data:`SPECTRAL_TOL`, else by ``steps`` iterations as written (:func:`newton_schulz_steps`)."""
    if uses_spectral(a.device.type, str(a.dtype).removeprefix("torch.")):
        out = newton_schulz_spectral(a, steps, coeffs)
        if out is not None:
            return out
    return newton_schulz_steps(a, steps, coeffs)


def newton_schulz_steps(a: Tensor, steps: int = 5, coeffs: str = "muon") -> Tensor:
    """NS_K(A): ``steps`` Newton-Schulz iterations towards polar(A), in ``a``'s dtype, as section 3 writes them."""
    import torch

    table = NS_COEFFS[coeffs]
    x, tall = _short_side(a)
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + GUARD)
    for i in range(1, steps + 1):
        ca, cb, cc = table[min(i, len(table)) - 1]
        g = x @ x.mT
        x = ca * x + (cb * g + cc * (g @ g)) @ x
    return x.mT if tall else x


def newton_schulz_spectral(a: Tensor, steps: int = 5, coeffs: str = "muon") -> Tensor | None:
    """NS_K(A) = h(G) X through the fp64 eigendecomposition of G = X X^T (X the normalised short side of A),
    with the output in ``a``'s dtype; ``None`` where :func:`spectral_bound` does not certify
    :data:`SPECTRAL_TOL` relative to the output's Frobenius norm (for any matrix of a stack), or where the
    eigendecomposition fails. Works on stacks (..., m, n); a zero matrix gives zero."""
    import torch

    x, tall = _short_side(a)
    s, w = x.shape[-2], x.shape[-1]
    x64 = x.double()
    raw = torch.linalg.matrix_norm(x64, keepdim=True)
    norm = raw + GUARD
    xn = x64 / norm
    gram = xn @ xn.mT
    try:
        lam, q = torch.linalg.eigh(gram)
    except (torch.linalg.LinAlgError, RuntimeError):
        return None
    lam = lam.clamp_min(0.0)
    h, _ = _h(lam, steps, coeffs)
    out_norm = (lam * h * h).sum(-1).sqrt()  # |h(G) X|_F = (sum lambda_i h(lambda_i)^2)^(1/2)
    out_norm = torch.where(raw[..., 0, 0] == 0, math.inf, out_norm)  # zero in, zero out: exact
    if not certified(s, w, steps, coeffs, float(out_norm.min())):
        return None
    m = (q * h.unsqueeze(-2)) @ q.mT
    y = m.to(a.dtype) @ (x / norm.to(a.dtype))
    return y.mT if tall else y
