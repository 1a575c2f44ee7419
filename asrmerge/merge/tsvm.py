"""TSV-M: task singular vectors merging. Gargiulo et al. 2025, arXiv:2412.00081 (docs/algorithms.md section 6.3).

``tsvm-ns`` is TSV-M with Newton-Schulz orthogonalisation, the paper's "TSV-M w/ NS". Each task's
truncated SVD is kept in the tensor's memo, so a sweep over orth, lambda or BoostedTSV-M's beta
decomposes every task once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from asrmerge.linalg.newton_schulz import NAMES as NS_COEFFS
from asrmerge.merge.iso_c import RANK_MODES, numerical
from asrmerge.merge.registry import Lam, P, algorithm

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.linalg.core import CoreSpace
    from asrmerge.merge.operands import Operands

ORTHS = ("svd", "ns", "eigh")


def task_svd(tasks: Operands, t: int, k: int | None = None, *,
             spectrum: bool = True) -> tuple[Tensor, Tensor, Tensor, int]:
    """(U, sigma, V, rho) of w_t tau_t, computed once per tensor, with rho its numerical rank.

    ``k`` None: the thin SVD (every triplet). Else U and V hold at least the top min(k, rho) singular vectors,
    by the fp64 Gram route where it applies (docs/algorithms.md section 3, top-k triplets), and rho may be
    returned as min(rho, the columns held). ``spectrum``: sigma is the whole spectrum; otherwise it may be
    the top values only."""
    key = ("tsvd", t)
    hit = tasks.memo.get(key)
    if hit is None or not _covers(hit, k, spectrum):
        from asrmerge.linalg.gram import top_svd
        from asrmerge.linalg.svd import numerical_rank, svd

        x = tasks.weights[t] * tasks.tau(t)
        if k is None:
            u, s, vh = svd(x, name=tasks.name)
            hit = (u, s, vh.mT, numerical_rank(s, x.shape, x.dtype))
        else:
            hit = top_svd(x, k, name=tasks.name, spectrum=spectrum)
        tasks.memo[key] = hit
    u, s, v, rho = hit
    return u, s, v, (rho if rho is not None else u.shape[1])


def _covers(hit: tuple[Tensor, Tensor, Tensor, int | None], k: int | None, spectrum: bool) -> bool:
    """Whether a kept decomposition serves a request for the top ``k`` triplets (None: every triplet), and
    with ``spectrum`` the whole spectrum."""
    u, s, v, rho = hit
    r = min(u.shape[0], v.shape[0])
    if k is None:
        return u.shape[1] == r
    if spectrum and (rho is None or s.shape[0] < r):
        return False
    return u.shape[1] >= (k if rho is None else min(k, rho))


def truncation(tasks: Operands, rank_frac: float) -> int:
    """k = max(1, floor(p r))."""
    import math

    return max(1, math.floor(rank_frac * min(tasks.matrix_shape)))


def tsv_merge(tasks: Operands, rank_frac: float, orth: str, ns_steps: int, ns_coeffs: str,
              boost: object = None, rank_mode: str = "numerical", spectrum: bool = False) -> Tensor:
    """TSV-M steps 1-4; ``boost(sigma_kept, sigma_full)`` may replace each task's kept singular values
    (``spectrum``: it reads sigma_full, so each task's whole spectrum is computed; otherwise it may hold the
    top values only).

    ``rank_mode=full`` (the reference): every task keeps k triplets, its numerically zero ones included, and
    orth=svd takes the full polar factor P Q^T (docs/algorithms.md section 6.3).
    """
    import torch

    from asrmerge.errors import UsageError
    from asrmerge.linalg.svd import orthogonalise

    k = truncation(tasks, rank_frac)
    full = rank_mode == "full"
    us, ss, vs = [], [], []
    for t in range(tasks.T):
        u, s, v, rho = task_svd(tasks, t, None if full else k, spectrum=spectrum)
        kt = k if full else min(k, rho)
        sk = s[:kt]
        if boost is not None and kt > 0:
            sk = boost(sk, s)  # type: ignore[operator]
        us.append(u[:, :kt])
        ss.append(sk)
        vs.append(v[:, :kt])
    ubar, scat, vbar = torch.cat(us, 1), torch.cat(ss), torch.cat(vs, 1)
    m, n = tasks.matrix_shape
    if scat.numel() == 0:
        return torch.zeros((m, n), dtype=tasks.dtype, device=tasks.device)
    if orth == "eigh" and scat.numel() > min(m, n):
        raise UsageError(f"orth=eigh needs K <= min(m, n), but K = {scat.numel()} for {tasks.name}", subject="-p",
                         hint="lower rank_frac to at most 1/T, or use orth=svd or ns")
    u_p = orthogonalise(ubar, orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs, name=tasks.name, full=full)
    v_p = orthogonalise(vbar, orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs, name=tasks.name, full=full)
    return (u_p * scat) @ v_p.mT


def _tsvm_batched(batch: list[Operands], *, rank_frac: float | None = None, orth: str = "svd", ns_steps: int = 5,
                  ns_coeffs: str = "muon", rank_mode: str = "numerical") -> list[Tensor] | None:
    """tsvm over same-shape matrices at once; ``None`` where only the per-matrix path applies (orth=eigh, and
    rank_mode=full, whose null pairs are the SVD's arbitrary choice: one path keeps them the same for every --batch)."""
    if orth == "eigh" or rank_mode == "full":
        return None
    assert rank_frac is not None
    return tsv_merge_batch(batch, rank_frac, orth, ns_steps, ns_coeffs)


def _tsvm_core(space: CoreSpace, *, rank_frac: float | None = None, orth: str = "svd", ns_steps: int = 5,
               ns_coeffs: str = "muon", rank_mode: str = "numerical") -> Tensor:
    """tsvm on the cores of LoRA task vectors (docs/algorithms.md section 6.5: exact for every orth with
    rank_mode=numerical; ``core_exact`` keeps rank_mode=full in full space)."""
    from asrmerge.linalg import core

    assert rank_frac is not None
    k = core.truncation(space.shape, rank_frac)
    return core.tsv(space.cores, space.shape, k, orth=orth, ns_steps=ns_steps, ns_coeffs=ns_coeffs)


def svd_count(T: int, params: dict[str, Any]) -> int:
    """T task SVDs, plus the two polar factors' with orth=svd (per matrix)."""
    return T + (2 if params["orth"] == "svd" else 0)


def products(T: int, params: dict[str, Any], m: int, n: int, spectral_ns: bool = False) -> float:
    """Multiply-adds besides the SVDs, for K = T k kept triplets: orthogonalising the m x K and n x K
    concatenations (Newton-Schulz, by its steps or its spectral route, or the polar factors' P Q^T) and the
    recombination (m K n)."""
    import math

    from asrmerge.linalg.svd import orth_products

    r = min(m, n)
    K = T * min(r, max(1, math.floor(params["rank_frac"] * r)))
    orth, ns = params["orth"], (params["ns_steps"], params["ns_coeffs"], spectral_ns)
    return m * K * n + orth_products(m, K, orth, *ns) + orth_products(n, K, orth, *ns)


def top_k(T: int, params: dict[str, Any], m: int, n: int) -> tuple[int, bool] | None:
    """(k, False): each task SVD needs its top k triplets only, not the whole spectrum (rank_mode=numerical);
    the reference mode needs every triplet (None)."""
    from asrmerge.linalg import core

    if params.get("rank_mode", "numerical") == "full":
        return None
    return core.truncation((m, n), params["rank_frac"]), False


def one_over_t(T: int) -> float:
    return 1.0 / T


@algorithm("tsvm", space="subspace", returns="matrix", paper="Gargiulo et al. 2025, Task Singular Vectors, arXiv:2412.00081",
           lam=Lam(1.0, "scaling factor lambda (the TSV code tunes it over (0, 3])"), svds=svd_count,
           presets={"tsvm-ns": {"orth": "ns"}}, batched=_tsvm_batched, core=_tsvm_core, core_exact=numerical,
           products=products, top_k=top_k,
           identity={"orth": "svd", "rank_frac": 1.0, "lam": 1.0})
def tsvm(tasks: Operands, *,
         rank_frac: Annotated[float | None, P("(0,1]", "fraction p of each task's rank kept", default="1/T", resolve=one_over_t)] = None,
         orth: Annotated[str, P(ORTHS, "orthogonalise the concatenated singular vectors: polar factor, Newton-Schulz, or eigh")] = "svd",
         ns_steps: Annotated[int, P("[1,100]", "Newton-Schulz iterations (orth=ns)")] = 5,
         ns_coeffs: Annotated[str, P(NS_COEFFS, "Newton-Schulz coefficients: Muon's quintic, modded-nanogpt's schedule, or cubic")] = "muon",
         rank_mode: Annotated[str, P(RANK_MODES, "drop numerically zero triplets and polar pairs (ours) or keep all k and P Q^T (the reference)")] = "numerical") -> Tensor:
    """TSV-M: keep each task's top singular triplets, decorrelate their singular vectors, recombine."""
    assert rank_frac is not None  # resolved to 1/T by the planner
    return tsv_merge(tasks, rank_frac, orth, ns_steps, ns_coeffs, rank_mode=rank_mode)


def tsv_merge_batch(batch: list[Operands], rank_frac: float, orth: str, ns_steps: int, ns_coeffs: str,
                    boost: object = None) -> list[Tensor]:
    """TSV-M of same-shape matrices in batched calls (one SVD call per stage, for GPUs).

    ``boost(sigma_kept, sigma_full, keep)`` may lift the kept values of every (matrix, task) row at once.

    Dropped triplets (beyond k, or numerically zero) are zero-padded instead of cut, which leaves the polar
    factor and Newton-Schulz unchanged (zero columns map to zero columns), so the result equals the
    per-matrix one (docs/algorithms.md section 3: to 1e-5 relative in fp32).
    """
    import math

    import torch

    from asrmerge.linalg.newton_schulz import newton_schulz
    from asrmerge.linalg.svd import batched_polar, batched_svd, rank_mask

    first = batch[0]
    T, (m, n) = first.T, first.shape[:2]
    wide = m < n
    stack = torch.stack([torch.stack([b.weights[t] * b.tau(t) for t in range(T)]) for b in batch])  # B,T,m,n
    if wide:
        stack = stack.mT
    B, _, mm, nn = stack.shape
    r = min(m, n)
    k = max(1, math.floor(rank_frac * r))
    u, s, vh = batched_svd(stack.reshape(B * T, mm, nn), name=first.name)
    kk = min(k, r)
    keep = rank_mask(s, (mm, nn), stack.dtype)[:, :kk]
    sk = s[:, :kk] * keep
    if boost is not None:
        sk = boost(sk, s, keep)  # type: ignore[operator]
    uk = u[:, :, :kk] * keep.unsqueeze(1)
    vk = vh[:, :kk, :].mT * keep.unsqueeze(1)
    ubar = uk.reshape(B, T, mm, kk).permute(0, 2, 1, 3).reshape(B, mm, T * kk)
    vbar = vk.reshape(B, T, nn, kk).permute(0, 2, 1, 3).reshape(B, nn, T * kk)
    scat = sk.reshape(B, T * kk)
    if orth == "svd":
        u_p, v_p = batched_polar(ubar, name=first.name), batched_polar(vbar, name=first.name)
    else:
        u_p, v_p = newton_schulz(ubar, ns_steps, ns_coeffs), newton_schulz(vbar, ns_steps, ns_coeffs)
    out = (u_p * scat.unsqueeze(1)) @ v_p.mT
    if wide:
        out = out.mT
    return list(out.unbind(0))
