"""Iso-CTS: isotropic merging in common and task-specific subspaces. Marczak et al. 2025, arXiv:2502.04959 (6.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.linalg.newton_schulz import NAMES as NS_COEFFS
from asrmerge.merge.iso_c import RANK_MODES, numerical
from asrmerge.merge.registry import Lam, P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.linalg.core import CoreSpace
    from asrmerge.merge.operands import Operands

ORTHS = ("svd", "ns")


def sizes(r: int, T: int, common_frac: float) -> tuple[int, int]:
    """(k, s): the common-subspace rank and the per-task rank, as the reference code sizes them."""
    k = int(common_frac * r)
    s_tot = round((r - k) / T) * T  # Python rounds half to even, as the reference
    if s_tot > r:
        s_tot = (r // T) * T
    return r - s_tot, s_tot // T


def svd_count(T: int, params: dict[str, Any]) -> int:
    """The sum's SVD, T residual SVDs (none are done where s = 0, but they are counted), and the two polar
    factors' with orth=svd (per matrix)."""
    return 1 + T + (2 if params["orth"] == "svd" else 0)


def products(T: int, params: dict[str, Any], m: int, n: int, spectral_ns: bool = False) -> float:
    """Multiply-adds besides the SVDs: projecting each task out of the common subspace twice (4 m k n per
    task), orthogonalising the m x K and n x K concatenations, and the recombination (m K n)."""
    from asrmerge.linalg.svd import orth_products

    k, s = sizes(min(m, n), T, params["common_frac"])
    K = k + T * s
    orth, ns = params["orth"], (params["ns_steps"], params["ns_coeffs"], spectral_ns)
    total = 4.0 * T * m * k * n if s > 0 else 0.0
    return total + m * K * n + orth_products(m, K, orth, *ns) + orth_products(n, K, orth, *ns)


def _iso_cts_core(space: CoreSpace, *, common_frac: float = 0.8, orth: str = "svd", ns_steps: int = 5,
                  ns_coeffs: str = "muon", rank_mode: str = "numerical") -> Tensor:
    """iso-cts on the cores of LoRA task vectors (docs/algorithms.md section 6.5: exact with rank_mode=numerical)."""
    from asrmerge.linalg import core

    k, s = sizes(min(space.shape), space.T, common_frac)
    return core.iso_cts(space.cores, space.shape, k, s, orth=orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs)


def top_k(T: int, params: dict[str, Any], m: int, n: int) -> tuple[int, bool] | None:
    """(s, False): each task's residual SVD needs its top s triplets only (rank_mode=numerical); None where
    s = 0 or with rank_mode=full (every triplet)."""
    _, s = sizes(min(m, n), T, params["common_frac"])
    return None if s == 0 or params.get("rank_mode", "numerical") == "full" else (s, False)


@algorithm("iso-cts", space="subspace", returns="matrix",
           paper="Marczak et al. 2025, No task left behind (Iso-CTS), arXiv:2502.04959", lam=Lam(1.0), svds=svd_count,
           core=_iso_cts_core, core_exact=numerical, products=products, top_k=top_k)
def iso_cts(tasks: Operands, *,
            common_frac: Annotated[float, P("[0,1]", "fraction of the rank given to the common subspace")] = 0.8,
            orth: Annotated[str, P(ORTHS, "orthogonalise by polar factor (the reference) or Newton-Schulz")] = "svd",
            ns_steps: Annotated[int, P("[1,100]", "Newton-Schulz iterations (orth=ns)")] = 5,
            ns_coeffs: Annotated[str, P(NS_COEFFS, "Newton-Schulz coefficients (orth=ns)")] = "muon",
            rank_mode: Annotated[str, P(RANK_MODES, "drop numerically zero triplets (ours) or keep all (the reference)")] = "numerical") -> Tensor:
    """Iso-CTS: common subspace of the sum plus each task's own residual directions, flattened to one scale."""
    import torch

    from asrmerge.linalg.gram import top_svd
    from asrmerge.linalg.svd import eps_tol, orthogonalise, svd, svdvals

    m, n = tasks.matrix_shape
    r = min(m, n)
    T = tasks.T
    k, s = sizes(r, T, common_frac)
    total = tasks.weighted_sum()
    u, sig, vh = svd(total, name=tasks.name)
    numerical = rank_mode == "numerical"

    def kept(sv: Tensor, sigma1: float, shape: tuple[int, ...]) -> Tensor:
        """Triplets above epsilon_tol of their source matrix (all of them with rank_mode=full)."""
        if not numerical:
            return torch.ones_like(sv, dtype=torch.bool)
        return sv > eps_tol(sigma1, shape, sv.dtype) if sigma1 > 0 else torch.zeros_like(sv, dtype=torch.bool)

    keep_c = kept(sig[:k], float(sig[0]) if sig.numel() else 0.0, total.shape)
    # rank_mode=numerical: the null directions of the sum are arbitrary (LAPACK's choice), so they are neither
    # kept nor projected out of the tasks; rank_mode=full projects onto all k, as the reference
    uc, sc, vc = u[:, :k][:, keep_c], sig[:k][keep_c], vh[:k].mT[:, keep_c]
    blocks_u, blocks_s, blocks_v = [], [], []
    for t in range(T if s > 0 else 0):
        x = tasks.weights[t] * tasks.tau(t)
        resid = x - uc @ (uc.mT @ x)
        resid = resid - uc @ (uc.mT @ resid)  # projecting twice leaves rounding noise of ~2 eps ||x||, not ~10
        if numerical:  # the top s triplets only (the Gram route where it applies, section 3)
            ut, st, vt, _ = top_svd(resid, s, name=tasks.name)
        else:
            ut, st, vth = svd(resid, name=tasks.name)
            vt = vth.mT
        c = min(s, ut.shape[1])
        # a task-specific triplet's source is the task: judged against epsilon_tol(w_t tau_t), a residual that
        # vanishes up to rounding (tau_t inside the common space) adds no noise directions. sigma_1(x) <= |x|_F,
        # so where the smallest kept value clears the threshold at |x|_F, sigma_1(x) is not needed
        bound = float(torch.linalg.vector_norm(x)) if numerical else 0.0
        clear = c > 0 and float(st[c - 1]) > eps_tol(bound, x.shape, x.dtype)
        keep = kept(st[:c], bound if clear or not numerical else float(svdvals(x)[0]), x.shape)
        blocks_u.append(ut[:, :c][:, keep])
        blocks_s.append(st[:c][keep])
        blocks_v.append(vt[:, :c][:, keep])
    blocks_u.append(uc)
    blocks_s.append(sc)
    blocks_v.append(vc)
    ubar, sall, vbar = torch.cat(blocks_u, 1), torch.cat(blocks_s), torch.cat(blocks_v, 1)
    if sall.numel() == 0:
        return total.new_zeros(total.shape)
    u_p = orthogonalise(ubar, orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs, name=tasks.name)
    v_p = orthogonalise(vbar, orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs, name=tasks.name)
    return sall.mean() * (u_p @ v_p.mT)
