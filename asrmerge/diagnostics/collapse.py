"""The merged update M = W* - W_0 against its inputs: rank collapse and retention (docs/algorithms.md section 8.3).

Our definitions, after the stable-rank collapse of Subspace Boosting (Skorobogat et al. 2025,
arXiv:2506.16506), which BoostedTSV-M (Carvalho et al. 2026, arXiv:2603.05354) counters per task:

    kappa_s = srank(M) / max_t srank(tau_t)
    kappa_e = erank(M) / erank_cat,   erank_cat = erank of the pooled spectra {sigma_{t,i}}
    collapse = kappa_s < gamma_c      (kappa_s within COLLAPSE_RTOL of gamma_c counts as equal)
    ret_t = ||U_M^T tau_{t,k} V_M||_F^2 / ||tau_{t,k}||_F^2,  U_M, V_M: the top rank99(M) singular vectors of M
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from asrmerge.diagnostics.interference import Triplets
from asrmerge.diagnostics.spectra import effective_rank

if TYPE_CHECKING:
    from torch import Tensor

# An fp32 SVD perturbs srank by ~1e-6 relative: task arithmetic on identical tasks (kappa_s = 1 exactly in
# real arithmetic) must not be flagged at the default gamma_c = 1 because of it.
COLLAPSE_RTOL = 1e-4


def pooled_erank(spectra: list[Tensor]) -> float:
    """erank_cat: the effective rank of every task's singular values pooled into one spectrum.

    Args:
        spectra: each task's singular values above its epsilon_tol.
    Returns:
        what erank(M) would be if the tasks' subspaces were mutually orthogonal and summed; 0 if all are zero.
    Paper: docs/algorithms.md section 8.3; effective rank: Roy & Vetterli, EUSIPCO 2007.
    """
    pooled = torch.cat([s.to("cpu", torch.float64) for s in spectra]) if spectra else torch.zeros(0)
    pooled, _ = torch.sort(pooled, descending=True)
    return effective_rank(pooled)


def ratios(srank_m: float, erank_m: float, sranks: list[float], erank_cat: float,
           threshold: float = 1.0) -> dict[str, Any]:
    """kappa_s, kappa_e and the collapse flag of one tensor.

    Args:
        srank_m, erank_m: stable and effective rank of M.
        sranks: srank(tau_t) of every input.
        erank_cat: :func:`pooled_erank` of the inputs.
        threshold: gamma_c (``--collapse-threshold``).
    Returns:
        ``kappa_s``, ``kappa_e`` (None where the denominator is zero) and ``collapse`` (None with kappa_s).
    Paper: docs/algorithms.md section 8.3, after Subspace Boosting, arXiv:2506.16506.
    """
    top = max(sranks, default=0.0)
    kappa_s = srank_m / top if top > 0 else None
    kappa_e = erank_m / erank_cat if erank_cat > 0 else None
    flag = None if kappa_s is None else bool(kappa_s < threshold * (1.0 - COLLAPSE_RTOL))
    return {"kappa_s": kappa_s, "kappa_e": kappa_e, "gamma_c": threshold, "collapse": flag}


def retention(u_m: Tensor, v_m: Tensor, tasks: list[Triplets]) -> list[float | None]:
    """ret_t: the share of each task's top-k energy inside the merged update's principal subspaces.

    Args:
        u_m, v_m: the top rank99(M) left and right singular vectors of M (m x q, n x q).
        tasks: each task's kept triplets tau_{t,k} = U_t diag(sigma_t) V_t^T.
    Returns:
        ret_t in [0, 1] per task; None for a task whose kept part is zero.
    Paper: docs/algorithms.md section 8.3.
    """
    out: list[float | None] = []
    for t in tasks:
        den = float((t.s.to(torch.float64) ** 2).sum()) if t.k else 0.0
        if den == 0.0:
            out.append(None)
            continue
        core = ((u_m.mT @ t.u) * t.s) @ (t.v.mT @ v_m)
        out.append(float((core.to(torch.float64) ** 2).sum()) / den)
    return out
