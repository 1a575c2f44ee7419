"""tsvm: truncate each task's SVD, concatenate, orthogonalise, recombine (docs/algorithms.md section 6.3).

4 x 4 hand cases: Hd is the Hadamard matrix (columns h_i), e_i the unit vectors. For overlapping tasks
u = (24/25, 7/25, 0, 0) makes cos(e_1, u) = c = 24/25 with 1 + c = (7/5)^2 and 1 - c = (1/5)^2, so
([e_1, u]^T [e_1, u])^(-1/2) = [[20/7, -15/7], [-15/7, 20/7]] is rational and
polar([e_1, u]) = [e_1, u] [[20/7, -15/7], [-15/7, 20/7]] = [(4/5, -3/5, 0, 0), (3/5, 4/5, 0, 0)].
"""

from __future__ import annotations

import math
from fractions import Fraction as F

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.errors import UsageError
from tests.merge_cases import PROPS, assert_close, exact, generator, hadamard4, merge_one, ns_scalar

HD = hadamard4()
E = torch.eye(4, dtype=torch.float64)
U = exact([F(24, 25), F(7, 25), 0, 0])
Q = exact([[F(4, 5), F(3, 5)], [F(-3, 5), F(4, 5)], [0, 0], [0, 0]])  # polar([e_1, u])


def diag(*s: float) -> torch.Tensor:
    return torch.diag(torch.tensor(s, dtype=torch.float64))


def test_truncation_keeps_each_tasks_top_k_by_hand() -> None:
    """T = 2, r = 4, rank_frac 1/T: k = 2.
    tau_1 = Hd diag(5, 3, 1, 0): keeps (5, h_1, e_1), (3, h_2, e_2); drops (1, h_3, e_3).
    tau_2 = 4 h_3 e_3^T + 2 h_4 e_4^T + h_1 e_1^T: keeps (4, h_3, e_3), (2, h_4, e_4); drops (1, h_1, e_1).
    U-bar = [h_1, h_2, h_3, h_4] and V-bar = I are orthonormal: tau* = Hd diag(5, 3, 4, 2)
    (ta would give Hd diag(6, 3, 5, 2))."""
    taus = [HD @ diag(5, 3, 1, 0), HD @ diag(1, 0, 4, 2)]
    assert_close(merge_one("tsvm", taus), HD @ diag(5, 3, 4, 2))
    assert_close(merge_one("tsvm", taus, params={"orth": "eigh"}), HD @ diag(5, 3, 4, 2))


def test_overlapping_singular_vectors_by_hand() -> None:
    """tau_1 = 3 e_1 e_1^T, tau_2 = 2 u u^T (rank 1 each: k_t = 1 although k = 2).
    U-bar = V-bar = [e_1, u], U_perp = V_perp = Q = [q_1, q_2] (module docstring).
    tau* = 3 q_1 q_1^T + 2 q_2 q_2^T = 3 [[16, -12], [-12, 9]]/25 + 2 [[9, 12], [12, 16]]/25
         = [[66, -12], [-12, 59]]/25 in the top-left block, 0 elsewhere."""
    taus = [3 * torch.outer(E[0], E[0]), 2 * torch.outer(U, U)]
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[:2, :2] = exact([[F(66, 25), F(-12, 25)], [F(-12, 25), F(59, 25)]])
    assert_close(merge_one("tsvm", taus), expected)
    assert_close(merge_one("tsvm", taus, params={"orth": "eigh"}), expected, tol=1e-10)


def test_overlapping_singular_vectors_with_newton_schulz_by_hand() -> None:
    """Same tasks, orth=ns: U-bar = [e_1, u] = P diag(7/5, 1/5) W^T with W = [[1, 1], [1, -1]]/sqrt 2
    (U-bar^T U-bar = [[1, c], [c, 1]] has eigenvalues 1 +- c). |U-bar|_F = sqrt 2, so NS(U-bar) =
    P diag(f(7/5/(sqrt 2 + 1e-7)), f(1/5/(sqrt 2 + 1e-7))) W^T = U-bar W diag(f_i / s_i) W^T (f: the muon map,
    five steps); V-bar = U-bar, so tau* = N diag(3, 2) N^T with N = U-bar W diag(f_i / s_i) W^T."""
    taus = [3 * torch.outer(E[0], E[0]), 2 * torch.outer(U, U)]
    ubar = torch.stack([E[0], U], 1)
    w = exact([[1, 1], [1, -1]]) / math.sqrt(2)
    s = [7 / 5, 1 / 5]
    f = [ns_scalar(si / (math.sqrt(2) + 1e-7)) for si in s]
    n = ubar @ w @ diag(f[0] / s[0], f[1] / s[1]) @ w.T
    assert_close(merge_one("tsvm-ns", taus), n @ diag(3, 2) @ n.T)


def test_rank_frac_one_on_square_full_rank_tasks_is_the_mean_by_hand() -> None:
    """2 x 2 tasks tau_1 = diag(2, 1), tau_2 = R diag(3, 1) (R a rotation by 90 degrees), rank_frac 1:
    U-bar = [I, R] (2 x 4, wide) has U-bar U-bar^T = 2I, so polar(U-bar) = U-bar / sqrt 2 (orthonormal rows);
    V-bar = [I, I] likewise. tau* = U-bar diag(2, 1, 3, 1) V-bar^T / 2 = (tau_1 + tau_2) / 2."""
    r = exact([[0, -1], [1, 0]])
    taus = [diag(2, 1), r @ diag(3, 1)]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 1.0}), (taus[0] + taus[1]) / 2)


@PROPS
@given(n=st.integers(2, 8), T=st.integers(2, 4), seed=st.integers(0, 2**31 - 1))
def test_rank_frac_one_on_square_full_rank_tasks_is_the_mean(n: int, T: int, seed: int) -> None:
    """The hand case in general: with m = n and full-rank tasks U-bar U-bar^T = T I, so tau* = (1/T) sum_t tau_t."""
    g = generator(seed)
    taus = [torch.randn(n, n, generator=g, dtype=torch.float64) for _ in range(T)]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 1.0}), sum(taus) / T, tol=1e-9)


def test_zero_tasks_give_k_zero_and_w0() -> None:
    """K = 0: every tau_t is 0, tau* = 0 and W* = W_0; a zero task among others adds no triplets."""
    base = HD.clone()
    assert torch.equal(merge_one("tsvm", [torch.zeros(4, 4, dtype=torch.float64)] * 3, base), base)
    taus = [HD @ diag(5, 3, 1, 0), torch.zeros(4, 4, dtype=torch.float64)]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 0.5}), HD @ diag(5, 3, 0, 0))


def test_eigh_with_more_columns_than_min_m_n_is_a_usage_error() -> None:
    """orth=eigh is only valid for K <= min(m, n): two full-rank 3 x 3 tasks with rank_frac 1 give K = 6 > 3.
    orth=svd handles the wide U-bar (orthonormal rows)."""
    g = generator(0)
    taus = [torch.randn(3, 3, generator=g, dtype=torch.float64) for _ in range(2)]
    with pytest.raises(UsageError, match="eigh"):
        merge_one("tsvm", taus, params={"orth": "eigh", "rank_frac": 1.0})
    assert bool(torch.isfinite(merge_one("tsvm", taus, params={"rank_frac": 1.0})).all())


# -- rank_mode: numerical (ours) and full (the reference) -------------------------------------------------

def reference_tsvm(taus: list[torch.Tensor], k: int, lift: object = None) -> torch.Tensor:
    """TSV-M as the reference code writes it, in plain torch: every task's top-k SVD triplets (numerically zero
    ones included), concatenated, U_perp = P Q^T of svd(U-bar) with every pair, V likewise, recombined.
    ``lift(sigma_k)`` may replace a task's kept values (boosted-tsvm). The null triplets are LAPACK's choice,
    so the inputs must reach LAPACK as the same matrices: square or tall tasks, and K = T k <= min(m, n)."""
    us, ss, vs = [], [], []
    for x in taus:
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        us.append(u[:, :k])
        ss.append(s[:k] if lift is None else lift(s[:k]))  # type: ignore[operator]
        vs.append(vh[:k].mT)

    def polar(a: torch.Tensor) -> torch.Tensor:
        p, _, qh = torch.linalg.svd(a, full_matrices=False)
        return p @ qh

    return polar(torch.cat(us, 1)) @ torch.diag(torch.cat(ss)) @ polar(torch.cat(vs, 1)).mT


def rank_deficient_task_sets() -> dict[str, tuple[list[torch.Tensor], float]]:
    """Two task sets (with rank_frac) on which the rules differ: a duplicated full-rank 8 x 8 task (U-bar =
    [U_:4, U_:4] has rank 4 of 8: the full polar factor completes it with 4 arbitrary pairs), and two rank-1
    10 x 8 tasks with k = 4 (3 numerically zero triplets per task move the full polar factor)."""
    g = generator(3)
    dup = torch.randn(8, 8, generator=g, dtype=torch.float64)
    ones = [torch.outer(torch.randn(10, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64))
            for _ in range(2)]
    return {"duplicated": ([dup, dup.clone()], 0.5), "rank1": (ones, 0.5)}


@PROPS
@given(m=st.integers(2, 8), n=st.integers(2, 8), T=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       algo=st.sampled_from(["tsvm", "tsvm-ns"]), rank_frac=st.sampled_from([None, 0.5, 1.0]))
def test_rank_mode_full_equals_numerical_on_full_rank_tasks(m: int, n: int, T: int, seed: int, algo: str,
                                                            rank_frac: float | None) -> None:
    """Random tasks have full rank, so k_t = k in both modes and U-bar, V-bar have full rank: the rules agree."""
    g = generator(seed)
    taus = [torch.randn(m, n, generator=g, dtype=torch.float64) for _ in range(T)]
    params = {} if rank_frac is None else {"rank_frac": rank_frac}
    assert_close(merge_one(algo, taus, params={**params, "rank_mode": "full"}), merge_one(algo, taus, params=params))


def test_rank_mode_full_halves_orthogonal_rank_one_tasks_by_hand() -> None:
    """tau_1 = 3 e_1 e_1^T, tau_2 = 2 e_2 e_2^T, rank_frac 1 (k = 4). numerical: k_t = 1, U-bar = [e_1, e_2] is
    orthonormal and tau* = tau_1 + tau_2 (ta). full: each task adds 3 null vectors completing its own vector
    to an orthonormal basis, so U-bar U-bar^T = 2I (4 x 8, wide), U_perp = U-bar / sqrt 2, V likewise, and
    tau* = (tau_1 + tau_2) / 2 whichever null vectors the SVD chose."""
    taus = [3 * torch.outer(E[0], E[0]), 2 * torch.outer(E[1], E[1])]
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 1.0}), taus[0] + taus[1])
    assert_close(merge_one("tsvm", taus, params={"rank_frac": 1.0, "rank_mode": "full"}), (taus[0] + taus[1]) / 2)


@pytest.mark.parametrize("which", ["duplicated", "rank1"])
def test_rank_mode_full_is_the_reference_on_rank_deficient_tasks(which: str) -> None:
    """Section 6.3: rank_mode=full keeps k triplets per task and P Q^T (the reference); numerical differs."""
    taus, p = rank_deficient_task_sets()[which]
    k = math.floor(p * min(taus[0].shape))
    full = merge_one("tsvm", taus, params={"rank_frac": p, "rank_mode": "full"})
    ours = merge_one("tsvm", taus, params={"rank_frac": p})
    assert_close(full, reference_tsvm(taus, k))
    assert float((full - ours).abs().max()) > 0.1 * float(ours.abs().max())
    if which == "rank1":  # ours: the two rank-1 directions only (section 6.3's rank rule)
        assert int(torch.linalg.matrix_rank(ours)) == 2
    else:  # ours: polar([U, U]) = [U, U]/sqrt 2, so tau* = U_:4 diag(s_:4) V_:4^T, the task's own top 4
        u, s, vh = torch.linalg.svd(taus[0])
        assert_close(ours, u[:, :4] @ torch.diag(s[:4]) @ vh[:4])


def test_rank_mode_full_keeps_the_null_triplets_for_newton_schulz_too() -> None:
    """orth=ns: rank_mode only decides k_t there (NS has no rank cut). Rank-1 tasks: full passes the 3 null
    triplets of each task to NS, numerical does not, and the results differ; both are finite."""
    taus, p = rank_deficient_task_sets()["rank1"]
    full = merge_one("tsvm-ns", taus, params={"rank_frac": p, "rank_mode": "full"})
    ours = merge_one("tsvm-ns", taus, params={"rank_frac": p})
    assert bool(torch.isfinite(full).all()) and float((full - ours).abs().max()) > 0.1 * float(ours.abs().max())


def test_the_batched_path_leaves_rank_mode_full_to_the_per_matrix_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batched rule returns None for rank_mode=full (the arbitrary null pairs then come from one path
    whatever --batch is); through the engine, --batch 4 gives the --batch 1 result without a batched call."""
    import asrmerge.merge.boosted_tsvm as boosted_module
    import asrmerge.merge.tsvm as tsvm_module
    from asrmerge.merge.api import merge
    from asrmerge.merge.registry import REGISTRY

    for algo in ("tsvm", "tsvm-ns", "boosted-tsvm"):
        assert REGISTRY[algo].call_batched([], {"rank_frac": 0.5, "rank_mode": "full"}) is None
    calls = []
    real = tsvm_module.tsv_merge_batch
    for module in (tsvm_module, boosted_module):
        monkeypatch.setattr(module, "tsv_merge_batch", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    g = generator(5)
    names = [f"model.decoder.layers.0.self_attn.{p}_proj.weight" for p in "qkvo"]
    base = {n: torch.randn(6, 6, generator=g) for n in names}
    rank1 = [{n: torch.outer(torch.randn(6, generator=g), torch.randn(6, generator=g)) for n in names} for _ in range(2)]
    for algo in ("tsvm", "boosted-tsvm"):
        params = {"rank_frac": 0.5, "rank_mode": "full"}
        one = merge(algo, rank1, base=base, taskvecs=True, params=params, batch=1)
        many = merge(algo, rank1, base=base, taskvecs=True, params=params, batch=4)
        assert isinstance(one, dict) and isinstance(many, dict)
        assert calls == [] and all(torch.equal(one[n], many[n]) for n in names)
        merge(algo, rank1, base=base, taskvecs=True, params={"rank_frac": 0.5}, batch=4)
        assert calls == [1]  # rank_mode=numerical is batched
        calls.clear()
