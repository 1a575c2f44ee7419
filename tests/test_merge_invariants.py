"""The cross-algorithm invariants of docs/algorithms.md section 7, as hypothesis property tests in fp32 and fp64.

Items covered here: 1 (one task), 2 (zero task vectors, equal inputs), 3 (permutation), 4 (homogeneity),
5 (identities), 6 (flat spectrum), 8 (SVD gauge), 12 (well-formed output), 13 (policy). The items that
concern one algorithm or kernel live next to it: 7 in test_linalg_svd.py, 9 in test_merge_boosted_tsvm.py,
10 in test_merge_ties.py, 11 in test_merge_dare.py.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from asrmerge.merge.api import merge
from asrmerge.merge.iso_cts import sizes
from asrmerge.merge.registry import REGISTRY
from tests.conftest import ROOT
from tests.merge_cases import (
    ALGOS,
    BIAS,
    CONV,
    DETERMINISTIC,
    FEW,
    FP,
    INT,
    KINDS,
    PARAM_SPACE,
    PROPS,
    SUBSPACE,
    SVD,
    TAU_SPACE,
    TOL,
    Case,
    assert_close,
    cases,
    fp32_resolves,
    from_svd,
    generator,
    numerical_rank,
    orthonormal,
    run,
    run_ids,
    run_state,
    state,
)

# -- 1. One task, neutral parameters, returns W_1 ----------------------------------------------------------

# the parameters each algorithm declares (registry.algorithm(identity=...)) make it the identity on one task
NEUTRAL = {a: REGISTRY[a].identity for a in ALGOS if REGISTRY[a].identity is not None}


def test_the_identity_declarations_are_the_specs() -> None:
    """Section 7.1 of docs/algorithms.md names who is the identity on one task (then, after "Not the
    identity", who is not): the registry's declarations are those names, and every algorithm is in one list.
    Each algorithm's own test file checks the parameter values (test_one_task_with_neutral_parameters_returns_w1
    below runs them)."""
    doc = (ROOT / "docs" / "algorithms.md").read_text()
    item = re.search(r"^1\. \*\*One task with neutral parameters.*?(?=^2\. )", doc, re.S | re.M)
    assert item is not None
    yes, _, no = item.group(0).partition("Not the identity")
    named = lambda text: {w for w in re.findall(r"[a-z][a-z-]*[a-z]", text) if w in REGISTRY}  # noqa: E731
    assert set(NEUTRAL) == named(yes) - {"tsvm-ns"}
    assert named(yes) | named(no) >= set(ALGOS) - {"tsvm-ns"}, set(ALGOS) - named(yes) - named(no)


@pytest.mark.parametrize("algo", list(NEUTRAL))
@PROPS
@given(case=cases(tasks=(1, 1), weighted=False))
def test_one_task_with_neutral_parameters_returns_w1(algo: str, case: Case) -> None:
    """Section 7.1, on every tensor class (svd, mean, base) and every task structure."""
    base, out = run_state(algo, case, params=NEUTRAL[algo])
    w1 = state(case.base + case.taus[0])
    for name in (n for n in base if n != INT):
        assert_close(out[name], w1[name], case.dtype, scale=case.scale(), what=f"{algo} {case.kind} {name}")
    assert torch.equal(out[INT], base[INT])


# -- 2. Zero task vectors return exactly W_0; equal inputs return themselves -------------------------------

ZERO_RUNS = [(a, {}) for a in TAU_SPACE + SUBSPACE] + [
    ("ta", {"normalize": True}),
    ("ties", {"density": 0.5, "agg": "dis-max", "k_rule": "ref"}), ("ties", {"agg": "dis-sum"}),
    ("dare-ta", {"rescale": "l1"}), ("dare-ties", {"density": 0.5, "rescale": "l1"}),
    ("pcb", {"clip": 0.2, "ratio": 0.5}), ("sce", {"select_topk": 0.5}),
    ("iso-c", {"rank_mode": "full"}), ("iso-cts", {"orth": "ns", "common_frac": 0.3}), ("iso-cts", {"rank_mode": "full"}),
    ("tsvm", {"orth": "eigh"}), ("tsvm", {"rank_frac": 1.0}), ("tsvm", {"rank_mode": "full"}),
    ("boosted-tsvm", {"orth": "svd", "beta": 0.1, "boost_scope": "full"}), ("boosted-tsvm", {"rank_mode": "full"}),
]


@pytest.mark.parametrize("algo,params", ZERO_RUNS, ids=run_ids(ZERO_RUNS))
@FEW
@given(case=cases(kinds=("zero",)))
def test_zero_task_vectors_return_exactly_w0(algo: str, params: dict, case: Case) -> None:
    """Section 7.2: every 0/0 guard holds; the output is W_0 bit for bit, in every tensor class."""
    base, out = run_state(algo, case, params=params)
    for name in base:
        assert torch.equal(out[name], base[name]), f"{algo} {params} {name}"


@pytest.mark.parametrize("algo", PARAM_SPACE)
@PROPS
@given(case=cases(kinds=("random", "tiny", "zero"), tasks=(2, 4), weighted=True),
       x_is=st.sampled_from(["random", "base", "zero"]))
def test_equal_inputs_return_themselves(algo: str, case: Case, x_is: str) -> None:
    """Section 7.2: if every theta_t = x, soup, karcher, multislerp and model-stock return x.

    Where a guard of the algorithm's own section is active the spec decides otherwise, and those inputs are
    left to the algorithm's file: karcher drops inputs with norm <= tol (4.3; all dropped gives 0), model-stock
    divides by max(|d_i| |d_j|, 1e-6) (4.2; q -> 0 as |x - W_0| -> 0), and in fp32 the squared norm of
    a tensor below ~1e-19 underflows to 0 (multislerp and karcher then see a zero input).
    """
    x = {"random": case.base + case.taus[0], "base": case.base, "zero": torch.zeros_like(case.base)}[x_is]
    norm = float(x.double().norm())
    if algo == "karcher":
        assume(norm == 0 or norm > 1e-5)
    if algo == "model-stock":
        d = float((x - case.base).double().norm())
        assume(d == 0 or d * d >= 1e-6)
    if algo in ("karcher", "multislerp"):
        assume(norm == 0 or float(x.norm()) ** 2 > torch.finfo(case.dtype).tiny)
    tasks = Case(case.base, [x - case.base] * case.T, case.weights, case.kind, case.dtype, case.seed)
    base, out = run_state(algo, tasks, models=True)
    expected = state(x)
    for name in (n for n in base if n != INT):
        assert_close(out[name], expected[name], case.dtype, scale=float(x.abs().max()), what=f"{algo} x={x_is} {name}")


# -- 3. Permutation of the tasks with their weights ---------------------------------------------------------

PERMUTED = [(a, {}) for a in DETERMINISTIC] + [
    ("model-stock", {"filter_wise": True, "cos_floor": -0.3}), ("multislerp", {"use_base": True}),
    ("ties", {"density": 0.6, "agg": "dis-max"}), ("dare-ta", {"drop_rate": 0.0}),
    ("dare-ties", {"drop_rate": 0.0, "density": 0.5}), ("pcb", {"ratio": 0.5, "clip": 0.1}),
    ("sce", {"select_topk": 0.5}), ("iso-c", {"rank_mode": "full"}), ("iso-cts", {"common_frac": 0.5, "orth": "ns"}),
    ("tsvm", {"rank_frac": 1.0}), ("tsvm", {"orth": "eigh"}), ("tsvm", {"rank_mode": "full"}),
    ("boosted-tsvm", {"orth": "svd", "beta": 0.5, "rank_frac": 0.75}),
]


def _karcher_tie(case: Case) -> bool:
    """Two exactly antipodal inputs of equal weight: the Karcher mean is undefined (see the test below)."""
    return case.kind == "antiparallel" and case.T == 2 and not bool(case.base.any()) and len(set(case.w())) == 1


def kinds_for(params: dict) -> tuple[str, ...]:
    """rank_mode=full (the reference's) lifts arbitrary null directions of rank-deficient sums by design (6.1-6.4)."""
    return ("random",) if params.get("rank_mode") == "full" else KINDS


@pytest.mark.parametrize("algo,params", PERMUTED, ids=run_ids(PERMUTED))
@PROPS
@given(data=st.data())
def test_reordering_tasks_with_their_weights_changes_nothing(algo: str, params: dict, data) -> None:
    """Section 7.3 (DARE with p > 0 is invariant only in distribution and is left out; p = 0 is in)."""
    case = data.draw(cases(tasks=(2, 4), kinds=kinds_for(params)))
    if algo == "karcher":
        assume(not _karcher_tie(case))
    if algo in ("multislerp", "karcher", "model-stock") and case.kind == "tiny":
        assume(bool(case.base.any()))  # inputs below karcher's tol are dropped: covered by the hand cases
    if params.get("orth") == "eigh":
        assume(min(case.base.shape) >= case.T)  # K = T floor(r/T) > min(m, n) is a usage error (6.3)
        # eigh orthogonalises through the Gram matrix: its rounding error is kappa(U-bar)^2 eps, which fp32
        # cannot hold to 1e-5 on ill-conditioned concatenations, and (U-bar^T U-bar)^(-1/2) does not exist
        # for duplicated or antiparallel tasks (1e-12 only keeps it finite): a property of the method
        assume(case.dtype == torch.float64 and case.kind in ("random", "lowrank", "rank1", "tiny"))
    perm = data.draw(st.permutations(range(case.T)))
    if algo in SUBSPACE:
        assume(fp32_resolves(algo, case, params=params))
        assume(fp32_resolves(algo, case, params=params, taus=[case.taus[i] for i in perm],
                             weights=[case.w()[i] for i in perm]))
    models = algo in PARAM_SPACE and not params.get("use_base")
    a = run(algo, case, params=params, models=models)
    b = run(algo, case, params=params, models=models, taus=[case.taus[i] for i in perm],
            weights=[case.w()[i] for i in perm])
    assert_close(b, a, case.dtype, scale=case.scale(), what=f"{algo} {case.kind} perm={perm}")


# -- 4. Homogeneity -------------------------------------------------------------------------------------

LAMBDA_ALGOS = [a for a in TAU_SPACE + SUBSPACE]


@pytest.mark.parametrize("algo", LAMBDA_ALGOS)
@PROPS
@given(case=cases(), lams=st.tuples(st.sampled_from([0.1, 0.3, 0.7, 1.0]), st.sampled_from([1.3, 2.0, 3.0])))
def test_output_minus_w0_is_linear_in_lambda(algo: str, case: Case, lams: tuple[float, float]) -> None:
    """Section 7.4: W*(lam) - W_0 = lam * tau*, so (W*(a) - W_0) / a = (W*(b) - W_0) / b."""
    a, b = lams
    ua = (run(algo, case, params={"lam": a}).double() - case.base.double()) / a
    ub = (run(algo, case, params={"lam": b}).double() - case.base.double()) / b
    assert_close(ua, ub, case.dtype, scale=case.scale() / a, what=f"{algo} {case.kind}")


HOMOGENEOUS = [
    ("ta", {}), ("ties", {}), ("ties", {"density": 0.5, "agg": "dis-max"}),
    ("iso-c", {}), ("iso-c", {"rank_mode": "full"}), ("iso-cts", {}), ("iso-cts", {"common_frac": 0.4}),
    ("tsvm", {"orth": "svd"}), ("tsvm", {"orth": "svd", "rank_frac": 1.0}),
    ("boosted-tsvm", {}), ("boosted-tsvm", {"orth": "svd", "beta": 0.2}),
    ("boosted-tsvm", {"beta": 0.6, "boost_energy": "sigma2", "boost_scope": "full"}),
    ("tsvm", {"rank_mode": "full"}), ("boosted-tsvm", {"orth": "svd", "beta": 0.3, "rank_mode": "full"}),
]


@pytest.mark.parametrize("algo,params", HOMOGENEOUS, ids=run_ids(HOMOGENEOUS))
@PROPS
@given(data=st.data(), a=st.sampled_from([1e-3, 0.37, 2.5, 1e3]))
def test_scaling_every_task_vector_scales_tau_star(algo: str, params: dict, data, a: float) -> None:
    """Section 7.4: tau_t -> a tau_t (a > 0) gives tau* -> a tau* (W_0 = 0, so W* = lam tau*)."""
    case = data.draw(cases(kinds=kinds_for(params), zero_base=True))
    if algo in SUBSPACE:
        assume(fp32_resolves(algo, case, params=params))
    one = run(algo, case, params=params)
    scaled = run(algo, case, params=params, taus=[a * t for t in case.taus])
    assert_close(scaled, a * one.double(), case.dtype, scale=a * case.scale(), what=f"{algo} {case.kind} a={a}")


# -- 5. Identities ------------------------------------------------------------------------------------

@PROPS
@given(case=cases(weighted=False))
def test_soup_is_ta_with_lambda_one_over_t(case: Case) -> None:
    soup = run("soup", case, models=True)
    ta = run("ta", case, params={"lam": 1.0 / case.T})
    assert_close(soup, ta, case.dtype, scale=case.scale())


@PROPS
@given(case=cases(kinds=("random", "lowrank", "rank1", "duplicated", "antiparallel", "cancel"), zero_base=False))
def test_multislerp_is_karcher_with_no_iterations(case: Case) -> None:
    """Section 7.5: multislerp = karcher(max_iter=0), the closed form of section 4.4, for inputs of norm > tol."""
    multi = run("multislerp", case, models=True)
    karcher = run("karcher", case, params={"max_iter": 0}, models=True)
    assert_close(multi, karcher, case.dtype, scale=case.scale())


@pytest.mark.parametrize("rank_mode", ["numerical", "full"])
@PROPS
@given(case=cases(kinds=("random", "lowrank", "rank1", "duplicated", "antiparallel", "zero", "cancel")))
def test_iso_cts_with_common_frac_one_is_iso_c(rank_mode: str, case: Case) -> None:
    cts = run("iso-cts", case, params={"common_frac": 1.0, "rank_mode": rank_mode})
    iso = run("iso-c", case, params={"rank_mode": rank_mode})
    assert_close(cts, iso, case.dtype, scale=case.scale())


@st.composite
def orthogonal_tasks(draw) -> tuple[Case, list[int]]:
    """Mutually orthogonal tasks (U_i^T U_j = 0, V_i^T V_j = 0), tau_t = U_t diag(s_t) V_t^T of rank r_t."""
    dtype = draw(st.sampled_from(FP))
    m, n = draw(st.integers(2, 12)), draw(st.integers(2, 12))
    r = min(m, n)
    T = draw(st.integers(1, min(4, r)))
    ranks = draw(st.lists(st.integers(1, max(1, r // T)), min_size=T, max_size=T))
    seed = draw(st.integers(0, 2**31 - 1))
    g = generator(seed)
    u, v = orthonormal(m, sum(ranks), g), orthonormal(n, sum(ranks), g)
    taus, at = [], 0
    for rt in ranks:
        s = torch.rand(rt, generator=g, dtype=torch.float64) * 3 + 0.1
        taus.append(from_svd(u[:, at:at + rt], s, v[:, at:at + rt]).to(dtype))
        at += rt
    weights = draw(st.one_of(st.none(), st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=T, max_size=T)))
    base = torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
    return Case(base, taus, weights, "orthogonal", dtype, seed), ranks


@st.composite
def conditioned_tasks(draw) -> Case:
    """Full-rank, well-conditioned tasks: r = T k, tau_t = U_t diag(s_t) V_t^T + sum_{j != t} U_j diag(d_tj) V_j^T
    with s in [1, 2] and d in [0.01, 0.1] on mutually orthogonal blocks U_j, V_j. Each task's top k is its own
    block (so U-bar of tsvm is orthonormal), and the sum has singular values in [1, 2.3]."""
    T, k = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r = T * k
    m, n = sorted([r, draw(st.integers(r, 12))], reverse=draw(st.booleans()))
    seed = draw(st.integers(0, 2**31 - 1))
    g = generator(seed)
    u, v = orthonormal(m, r, g), orthonormal(n, r, g)
    taus = []
    for t in range(T):
        s = torch.rand(r, generator=g, dtype=torch.float64) * 0.09 + 0.01
        s[t * k:(t + 1) * k] = torch.rand(k, generator=g, dtype=torch.float64) + 1
        taus.append(from_svd(u, s, v))
    base = torch.randn(m, n, generator=g, dtype=torch.float64)
    weights = draw(st.one_of(st.none(), st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=T, max_size=T)))
    return Case(base, taus, weights, "conditioned", torch.float64, seed)


def iso_cts_gaps(case: Case, common_frac: float = 0.8) -> float:
    """The smallest relative spectral gap at iso-cts's truncations (k of the sum, s of each residual): the
    conditioning of its subspaces. A split inside a near-repeated value is ill-posed at any precision."""
    m, n = case.base.shape
    k, s = sizes(min(m, n), case.T, common_frac)
    taus = [w * t for w, t in zip(case.w(), case.taus, strict=True)]
    u, sig, _ = torch.linalg.svd(sum(taus), full_matrices=False)
    gaps = [float(sig[k - 1] - sig[k]) if 0 < k < sig.numel() else float(sig[0])]
    uc = u[:, :k]
    for t in taus:
        rs = torch.linalg.svdvals(t - uc @ (uc.T @ t))
        if 0 < s < rs.numel():
            gaps.append(float(rs[s - 1] - rs[s]))
    return min(gaps) / float(sig[0])


@pytest.mark.parametrize("algo", ALGOS)
@FEW
@given(case=conditioned_tasks())
def test_fp32_agrees_with_fp64_on_well_conditioned_inputs(algo: str, case: Case) -> None:
    """Section 3: the compute dtype only changes rounding. On full-rank, well-conditioned tasks the fp32 merge
    is within the fp32 tolerance of the fp64 merge of the same values (what fp32_resolves filters out
    elsewhere is ill-conditioning, not fp32 arithmetic)."""
    if algo == "model-stock":
        assume(case.T >= 2)
    if algo == "iso-cts":
        assume(iso_cts_gaps(case) >= 0.05)
    c32 = Case(case.base.float(), [t.float() for t in case.taus], case.weights, case.kind, torch.float32, case.seed)
    c64 = Case(c32.base.double(), [t.double() for t in c32.taus], case.weights, case.kind, torch.float64, case.seed)
    models = algo in PARAM_SPACE
    assert_close(run(algo, c32, models=models), run(algo, c64, models=models), torch.float32, scale=c64.scale())


@PROPS
@given(data=orthogonal_tasks(), full=st.booleans())
def test_tsvm_is_ta_on_mutually_orthogonal_tasks(data: tuple[Case, list[int]], full: bool) -> None:
    """Section 7.5: tsvm(orth=svd, lam=1) = ta(lam=1) when rho(tau_t) <= k, at the smallest such k and at p = 1."""
    case, ranks = data
    r = min(case.base.shape)
    rank_frac = 1.0 if full else max(ranks) / r  # k = floor(p r) = max rho(tau_t)
    tsvm = run("tsvm", case, params={"orth": "svd", "lam": 1.0, "rank_frac": rank_frac})
    ta = run("ta", case, params={"lam": 1.0})
    assert_close(tsvm, ta, case.dtype, scale=case.scale())


@PROPS
@given(case=cases(), rank_frac=st.sampled_from([None, 0.3, 0.5, 1.0]), steps=st.integers(1, 8),
       coeffs=st.sampled_from(["muon", "schedule", "cubic"]))
def test_boosted_tsvm_with_beta_one_is_tsvm(case: Case, rank_frac: float | None, steps: int, coeffs: str) -> None:
    """Section 7.5: boosted-tsvm(beta=1) == tsvm(orth=ns) bit for bit; with orth=svd it equals tsvm."""
    common = {"ns_steps": steps, "ns_coeffs": coeffs, **({"rank_frac": rank_frac} if rank_frac else {})}
    boosted = run("boosted-tsvm", case, params={**common, "beta": 1.0})
    assert torch.equal(boosted, run("tsvm", case, params={**common, "orth": "ns"}))
    assert torch.equal(boosted, run("tsvm-ns", case, params=common))
    with_svd = run("boosted-tsvm", case, params={**common, "beta": 1.0, "orth": "svd"})
    assert_close(with_svd, run("tsvm", case, params={**common, "orth": "svd"}), case.dtype, scale=case.scale())


def zero_padded_tsvm(taus: list[torch.Tensor]) -> torch.Tensor:
    """The reference's tau* (TSVM_utils.compute_and_sum_svd_mem_reduction), written out.

    Each task's top k = floor(r/T) triplets go into an r-wide buffer that is zero elsewhere:
    U_pad (m x r), s_pad (r), Vh_pad (r x n). Then U_pad = P diag(.) Q^T and Vh_pad = P' diag(.) Q'^T by
    full thin SVDs (no rank cut), and tau* = (P Q^T) diag(s_pad) (P' Q'^T).
    """
    m, n = taus[0].shape
    r, T = min(m, n), len(taus)
    k = r // T
    u_pad = torch.zeros(m, r, dtype=taus[0].dtype)
    s_pad = torch.zeros(r, dtype=taus[0].dtype)
    vh_pad = torch.zeros(r, n, dtype=taus[0].dtype)
    for t, tau in enumerate(taus):
        u, s, vh = torch.linalg.svd(tau, full_matrices=False)
        u_pad[:, t * k:(t + 1) * k] = u[:, :k]
        s_pad[t * k:(t + 1) * k] = s[:k]
        vh_pad[t * k:(t + 1) * k, :] = vh[:k, :]
    p, _, qh = torch.linalg.svd(u_pad, full_matrices=False)
    p2, _, qh2 = torch.linalg.svd(vh_pad, full_matrices=False)
    return (p @ qh) @ torch.diag(s_pad) @ (p2 @ qh2)


@PROPS
@given(case=cases(kinds=("random",), tasks=(1, 4), weighted=False, zero_base=True, rows=(4, 12), cols=(4, 12)))
def test_tsvm_compact_equals_the_zero_padded_reference(case: Case) -> None:
    """Section 7.5 (and 6.3): on full-rank tasks with p = 1/T the compact concatenation equals the reference."""
    assume(min(case.base.shape) >= case.T)
    ours = run("tsvm", case, params={"orth": "svd", "lam": 1.0})
    ref = zero_padded_tsvm(case.taus)
    assert_close(ours, ref, case.dtype, scale=case.scale())


@pytest.mark.parametrize("rescale", ["inv", "l1", "none"])
@PROPS
@given(case=cases(), density=st.sampled_from([1.0, 0.5, 0.2]), agg=st.sampled_from(["dis-mean", "dis-sum", "dis-max"]))
def test_dare_with_drop_rate_zero_is_ta_and_ties(rescale: str, case: Case, density: float, agg: str) -> None:
    """Section 7.5: dare-ta(p=0) = ta; dare-ties(p=0) = ties(density 1) (and = ties at any density: trim first)."""
    dare = run("dare-ta", case, params={"drop_rate": 0.0, "rescale": rescale})
    assert_close(dare, run("ta", case), case.dtype, scale=case.scale())
    dt = run("dare-ties", case, params={"drop_rate": 0.0, "rescale": rescale, "density": density, "agg": agg})
    assert_close(dt, run("ties", case, params={"density": density, "agg": agg}), case.dtype, scale=case.scale())


# -- 6. Flat spectrum ----------------------------------------------------------------------------------

@PROPS
@given(case=cases(kinds=("random", "lowrank", "rank1", "duplicated", "antiparallel", "cancel", "zero"), zero_base=True))
def test_iso_c_spectrum_is_flat_with_rho_of_delta_values(case: Case) -> None:
    """Section 7.6: the values of Delta_iso above eps_tol all equal sigma-bar, and there are rho(Delta) of them."""
    delta = case.w()[0] * case.taus[0]
    for w, t in zip(case.w()[1:], case.taus[1:], strict=True):
        delta = delta + w * t
    rho = numerical_rank(delta)
    out = run("iso-c", case, params={"lam": 1.0})  # W_0 = 0: W* = Delta_iso exactly
    assert numerical_rank(out) == rho
    if rho:
        sigma_bar = float(torch.linalg.svdvals(delta)[:rho].double().mean())
        s = torch.linalg.svdvals(out).double()[:rho]
        assert_close(s, torch.full_like(s, sigma_bar), case.dtype, what="flat spectrum")


@PROPS
@given(case=cases(kinds=("random",), zero_base=True), frac=st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]))
def test_iso_cts_spectrum_is_flat_on_full_rank_inputs(case: Case, frac: float) -> None:
    """Section 7.6: with orth=svd and full-rank inputs all r singular values of the update equal sigma-bar."""
    out = run("iso-cts", case, params={"lam": 1.0, "common_frac": frac, "orth": "svd"})
    s = torch.linalg.svdvals(out).double()
    assert_close(s, torch.full_like(s, float(s.mean())), case.dtype, what=f"common_frac={frac}")


# -- 8. SVD gauge -------------------------------------------------------------------------------------

GAUGED = [
    ("tsvm", {"orth": "svd"}), ("tsvm", {"orth": "svd", "rank_frac": 1.0}), ("tsvm-ns", {"rank_frac": 1.0}),
    ("boosted-tsvm", {"rank_frac": 1.0}), ("boosted-tsvm", {"orth": "svd", "beta": 0.4, "rank_frac": 0.5}),
    ("iso-c", {}), ("iso-c", {"rank_mode": "full"}), ("iso-cts", {}), ("iso-cts", {"common_frac": 0.5}),
]


@st.composite
def gauged_tasks(draw, full_rank: bool = False) -> tuple[Case, list[torch.Tensor]]:
    """Operands tau_t = U diag(s) V^T built from explicit factors, and the same tasks from perturbed factors.

    s has a repeated top pair (s_1 = s_2) above distinct values, so every truncation the algorithms make
    (k >= 2 for tsvm, the common and task-specific ranks of iso-cts) keeps or drops the pair whole. The
    perturbation flips the signs of random (u_i, v_i) pairs and rotates (u_1, u_2), (v_1, v_2) together by
    one angle: the matrices are equal, only their rounding differs.
    """
    dtype = draw(st.sampled_from(FP))
    m, n = draw(st.integers(4, 10)), draw(st.integers(4, 10))
    r = min(m, n)
    T = draw(st.integers(1, min(3, r // 2)))  # k = floor(r/T) >= 2 keeps the repeated pair whole
    seed = draw(st.integers(0, 2**31 - 1))
    rank = r if full_rank else draw(st.sampled_from([r, r - 1, 3]))
    g = generator(seed)
    taus, other = [], []
    for _ in range(T):
        u, v = orthonormal(m, rank, g), orthonormal(n, rank, g)
        tail = torch.sort(torch.rand(rank - 2, generator=g, dtype=torch.float64) * 2 + 0.5, descending=True).values
        top = float(tail[0]) + 0.5 + float(torch.rand(1, generator=g, dtype=torch.float64)) if rank > 2 else 2.0
        s = torch.cat([torch.tensor([top, top], dtype=torch.float64), tail])
        taus.append(from_svd(u, s, v).to(dtype))
        flips = torch.where(torch.rand(rank, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
        angle = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * math.pi
        rot = torch.eye(rank, dtype=torch.float64)
        rot[:2, :2] = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                                    dtype=torch.float64)
        other.append(from_svd(u @ rot * flips, s, v @ rot * flips).to(dtype))
    base = torch.zeros(m, n, dtype=dtype)
    return Case(base, taus, None, "gauge", dtype, seed), other


@pytest.mark.parametrize("algo,params", GAUGED, ids=run_ids(GAUGED))
@PROPS
@given(data=st.data())
def test_svd_sign_flips_and_rotations_in_repeated_values_change_nothing(algo: str, params: dict, data) -> None:
    """Section 7.8, for tsvm, boosted-tsvm, iso-c and iso-cts (rank_mode=full: on full-rank tasks, see 6.1)."""
    case, other = data.draw(gauged_tasks(full_rank=params.get("rank_mode") == "full"))
    assume(fp32_resolves(algo, case, params=params))
    a = run(algo, case, params=params)
    b = run(algo, case, params=params, taus=other)
    assert_close(b, a, case.dtype, scale=case.scale(), what=f"{algo} {params}")


# -- 12. Well-formed output ------------------------------------------------------------------------------

WELL_FORMED = [(a, {}) for a in ALGOS] + [
    ("ties", {"density": 0.3, "agg": "dis-max"}), ("dare-ties", {"density": 0.5, "rescale": "l1"}),
    ("dare-ta", {"rescale": "l1", "drop_rate": 0.9}), ("pcb", {"clip": 0.3, "ratio": 0.3}), ("sce", {"select_topk": 0.3}),
    ("iso-c", {"rank_mode": "full"}), ("iso-cts", {"orth": "ns", "common_frac": 0.2}), ("iso-cts", {"rank_mode": "full"}),
    ("tsvm", {"rank_frac": 1.0}), ("tsvm", {"orth": "eigh"}), ("boosted-tsvm", {"beta": 0.05, "rank_frac": 1.0}),
    ("tsvm", {"rank_mode": "full", "rank_frac": 0.5}), ("boosted-tsvm", {"beta": 0.05, "rank_mode": "full"}),
    ("model-stock", {"filter_wise": True}), ("karcher", {"max_iter": 50}), ("multislerp", {"use_base": True}),
]
STORED = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@pytest.mark.parametrize("algo,params", WELL_FORMED, ids=run_ids(WELL_FORMED))
@PROPS
@given(case=cases(), stored=st.sampled_from(STORED), compute=st.sampled_from(FP),
       out_dtype=st.sampled_from([None, "F16", "BF16", "F32", "F64"]))
def test_outputs_are_finite_and_keep_names_shapes_order_and_dtype(algo: str, params: dict, case: Case,
                                                                  stored: torch.dtype, compute: torch.dtype,
                                                                  out_dtype: str | None) -> None:
    """Section 7.12: no NaN/Inf for zero, rank-1, duplicated, antiparallel, cancelling and tiny inputs; the
    base's names, shapes and order; the base's dtype (fp16/bf16 inputs too) or out_dtype."""
    if algo == "model-stock":
        assume(case.T >= 2)  # T = 1 is a usage error (7.1)
    if params.get("orth") == "eigh":
        assume(min(case.base.shape) >= case.T)  # K > min(m, n) is a usage error (6.3)
    stored_case = Case(case.base.to(stored), [t.to(stored) for t in case.taus], case.weights, case.kind, stored,
                       case.seed)
    base, out = run_state(algo, stored_case, params=params, out_dtype=out_dtype, compute_dtype=compute,
                          models=algo in PARAM_SPACE and not params.get("use_base"))
    assert list(out) == list(base)
    want = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}.get(out_dtype or "")
    for name, w0 in base.items():
        assert out[name].shape == w0.shape, name
        assert bool(torch.isfinite(out[name].double()).all()), f"{algo} {case.kind} {name}"
        if w0.is_floating_point():
            assert out[name].dtype == (want or stored), name
        else:
            assert torch.equal(out[name], w0)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 5), (5, 1)])
def test_one_element_and_single_row_or_column_tensors_merge(algo: str, shape: tuple[int, ...]) -> None:
    """Section 7.12 at the smallest shapes: a 1-element bias, a 1 x 1 matrix, one row, one column (r = 1)."""
    name = SVD if len(shape) == 2 else BIAS
    g = generator(len(shape) * 10 + shape[0])
    base = torch.randn(shape, generator=g)
    fts = [base + torch.randn(shape, generator=g) for _ in range(3)]
    out = merge(algo, [{name: f} for f in fts], base={name: base})
    assert isinstance(out, dict)
    assert out[name].shape == shape and out[name].dtype == torch.float32
    assert bool(torch.isfinite(out[name]).all())


@pytest.mark.parametrize("algo", ["ta", "ties", "tsvm", "soup"])
@FEW
@given(case=cases(kinds=("random", "lowrank")), out_dtype=st.sampled_from(["F16", "BF16"]))
def test_casting_rounds_the_compute_dtype_result_to_nearest_even(algo: str, case: Case, out_dtype: str) -> None:
    """Section 3: compute, then cast to the output dtype once (torch's cast rounds to nearest even)."""
    models = algo in PARAM_SPACE
    _, wide = run_state(algo, case, out_dtype="F64", models=models)
    _, narrow = run_state(algo, case, out_dtype=out_dtype, models=models)
    for name, value in narrow.items():
        if value.is_floating_point():
            assert torch.equal(value, wide[name].to(value.dtype)), name


# -- 13. Policy -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ALGOS)
@FEW
@given(case=cases(kinds=("random", "rank1", "antiparallel"), tasks=(2, 3)))
def test_class_base_is_bit_identical_to_w0(algo: str, case: Case) -> None:
    """Section 7.13 with a policy rule making the svd matrix and the conv kernel class base."""
    base, out = run_state(algo, case, policy=f"{SVD}=base;{CONV}=base", models=algo in PARAM_SPACE)
    assert torch.equal(out[SVD], base[SVD])
    assert torch.equal(out[CONV], base[CONV])


@pytest.mark.parametrize("algo", SUBSPACE)
@PROPS
@given(case=cases(), lam=st.sampled_from([0.3, 1.0, 2.0]), mean_scale=st.sampled_from(["lam", "1"]))
def test_class_mean_is_w0_plus_lambda_times_the_mean_task_vector(algo: str, case: Case, lam: float,
                                                               mean_scale: str) -> None:
    """Section 7.13 (and 2): class mean under a subspace algorithm: W_0 + lam (1/T) sum_t w_t tau_t."""
    base, out = run_state(algo, case, params={"lam": lam, "mean_scale": mean_scale})
    factor = lam if mean_scale == "lam" else 1.0
    tau_states = [state(t) for t in case.taus]
    for name in (n for n in base if n not in (SVD, INT)):
        mean = sum(w * s[name].double() for w, s in zip(case.w(), tau_states, strict=True)) / case.T
        assert_close(out[name], base[name].double() + factor * mean, case.dtype, scale=case.scale(), what=name)


@pytest.mark.parametrize("algo", PARAM_SPACE + TAU_SPACE)
@FEW
@given(case=cases(kinds=("random", "lowrank", "duplicated"), tasks=(2, 3)))
def test_class_mean_and_svd_are_the_same_for_the_other_algorithms(algo: str, case: Case) -> None:
    """Section 2: outside the subspace algorithms, svd and mean tensors are merged normally (the same way)."""
    models = algo in PARAM_SPACE
    _, as_svd = run_state(algo, case, models=models)
    _, as_mean = run_state(algo, case, policy=f"{SVD}=mean", models=models)
    assert torch.equal(as_svd[SVD], as_mean[SVD])


def test_tolerances_are_the_specs() -> None:
    assert {torch.float64: 1e-10, torch.float32: 1e-5} == TOL
    assert set(KINDS) >= {"zero", "rank1", "duplicated", "antiparallel", "tiny"}
