"""The top-k singular triplets through the fp64 Gram matrix and dsyevr (docs/algorithms.md section 3, #gram-route)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.linalg import gram, lapack
from asrmerge.linalg.gram import GRAM_TOL, eigh_units, gram_products, gram_svd, top_svd, uses_gram
from asrmerge.linalg.svd import svd
from tests.merge_cases import PROPS, assert_close, from_svd, generator, merge_one, orthonormal


def decaying(m: int, n: int, seed: int, power: float = 0.7, rank: int | None = None) -> torch.Tensor:
    """An fp32 m x n matrix with singular values i^-power (distinct, no gap anywhere) and random vectors."""
    g = generator(seed)
    r = min(m, n) if rank is None else rank
    s = torch.arange(1, r + 1, dtype=torch.float64) ** -power
    return from_svd(orthonormal(m, r, g), s, orthonormal(n, r, g)).float()


def truncation(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor, k: int) -> torch.Tensor:
    return from_svd(u[:, :k].double(), s[:k].double(), v[:, :k].double())


def exact(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
    return u, s, vh.mT


def rel_fro(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(actual.double() - expected) / torch.linalg.vector_norm(expected))


@pytest.mark.parametrize("spectrum", [False, True])
@pytest.mark.parametrize(("m", "n", "k"), [(2048, 512, 51), (512, 2048, 102), (1280, 448, 44), (300, 60, 12),
                                           (512, 512, 51), (400, 300, 30)])
def test_route_gives_the_top_k_triplets_of_the_exact_svd(m: int, n: int, k: int, spectrum: bool) -> None:
    """Long, wide and square matrices (the FFN, attention, conv shapes): the rank-k truncation within 1e-6 of
    the fp64 SVD's (the fp32 thin SVD is ~1e-6 off), the singular values returned within 1e-7 sigma_1, the
    vectors orthonormal and the route taken (k columns, not r). Without ``spectrum``, dsyevr's top k values
    and rho unknown (at least k); with it, every value and rho, and square matrices keep the thin SVD."""
    a = decaying(m, n, seed=m + n)
    if spectrum and max(m, n) < 2 * min(m, n):
        assert not uses_gram(m, n, k, "cpu", "float32", spectrum=True)
        return
    assert uses_gram(m, n, k, "cpu", "float32", spectrum=spectrum)
    u, s, v, rho = top_svd(a, k, spectrum=spectrum)
    assert u.shape == (m, k) and v.shape == (n, k) and u.dtype == torch.float32
    assert (s.shape, rho) == (((min(m, n),), min(m, n)) if spectrum else ((k,), None))
    eu, es, ev = exact(a)
    assert rel_fro(truncation(u, s, v, k), truncation(eu, es, ev, k)) < 1e-6
    assert float((s.double() - es[: s.shape[0]]).abs().max()) < 1e-7 * float(es[0])
    for q in (u, v):
        assert_close(q.double().mT @ q.double(), torch.eye(k, dtype=torch.float64), tol=1e-6)
    fu, fs, fvh = torch.linalg.svd(a, full_matrices=False)  # the fp32 thin SVD it replaces, for scale
    assert rel_fro(truncation(fu, fs, fvh.mT, k), truncation(eu, es, ev, k)) > 1e-7


@PROPS
@given(m=st.integers(40, 400), n=st.integers(5, 120), seed=st.integers(0, 2**16), power=st.floats(0.2, 3.0),
       wide=st.booleans())
def test_route_matches_the_exact_truncation_on_any_long_matrix(m: int, n: int, seed: int, power: float,
                                                               wide: bool) -> None:
    """Any shape the route takes and any decay of the spectrum (down to sigma_r / sigma_1 = r^-3): the kept
    triplets give the exact truncation to 1e-5, and sigma is the whole spectrum."""
    n = min(n, m // 2)
    k = max(1, n // 5)
    a = decaying(m, n, seed, power)
    a = a.mT if wide else a
    assert uses_gram(*a.shape, k, "cpu", "float32", spectrum=True)
    for spectrum in (False, True):
        u, s, v, _ = top_svd(a, k, spectrum=spectrum)
        eu, es, ev = exact(a)
        assert u.shape[1] == k
        assert rel_fro(truncation(u, s, v, k), truncation(eu, es, ev, k)) < 1e-5
        assert float((s.double() - es[: s.shape[0]]).abs().max()) <= 1e-6 * float(es[0])


def test_rank_deficient_returns_only_the_numerical_rank() -> None:
    """A rank-3 tall matrix asked for 8 triplets: 3 columns come back (the numerically zero ones are never
    used by TSV-M's numerical rank mode), the zero matrix takes the SVD's exact zero path."""
    a = decaying(400, 40, seed=5, rank=3)
    for spectrum in (False, True):
        u, s, v, rho = top_svd(a, 8, spectrum=spectrum)
        assert u.shape == (400, 3) and v.shape == (40, 3) and rho == 3
        eu, es, ev = exact(a)
        assert rel_fro(truncation(u, s, v, 3), truncation(eu, es, ev, 3)) < 1e-6
    z = torch.zeros(400, 40)
    assert gram_svd(z, 8) is None
    u, s, v, rho = top_svd(z, 8)
    assert float(s.abs().max()) == 0.0 and u.shape == (400, 40) and rho == 0


def test_fallback_is_the_thin_svd_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the check does not certify the tolerance (here a tolerance of 0, which no rounded result meets)
    or the eigendecomposition fails, top_svd returns exactly what the thin SVD returns."""
    a = decaying(600, 100, seed=7)
    eu, es, evh = svd(a)
    want = (eu, es, evh.mT)
    for spectrum in (False, True):
        assert gram_svd(a, 20, tol=0.0, spectrum=spectrum) is None
        *got, rho = top_svd(a, 20, tol=0.0, spectrum=spectrum)
        assert rho == 100 and all(torch.equal(x, y) for x, y in zip(got, want, strict=True))

    def broken(_: torch.Tensor) -> None:
        raise torch.linalg.LinAlgError("failed to converge")

    monkeypatch.setattr(gram.torch.linalg, "eigh", broken)
    monkeypatch.setattr(lapack, "top_eigh", lambda g, k: None)  # dsyevr reporting a failure
    assert gram_svd(a, 20) is None
    *got, _ = top_svd(a, 20)
    assert all(torch.equal(x, y) for x, y in zip(got, want, strict=True))


def test_the_check_measures_the_backward_error() -> None:
    """The certificate is not vacuous: triplets of a perturbed matrix fail it. The route's own backward error
    on a 2048 x 512 matrix is ~1e-14 of |A|_F, so GRAM_TOL (1e-7) holds with room; the same U_k, sigma_k, V_k
    checked against A + E with |E|_F = 1e-6 |A|_F exceed it."""
    a = decaying(2048, 512, seed=11)
    x = a.double()
    u, s, v, _ = gram_svd(a, 60)
    assert u.shape[1] == 60

    def backward(x: torch.Tensor) -> float:
        r = x.mT @ u.double() - v.double() * s[:60].double()
        return float(torch.linalg.vector_norm(r) / torch.linalg.vector_norm(x))

    assert backward(x) < 1e-6  # fp32 storage of the triplets; in fp64 the route's is ~1e-14
    e = torch.randn(x.shape, generator=generator(1), dtype=torch.float64)
    e *= 1e-3 * float(torch.linalg.vector_norm(x)) / float(torch.linalg.vector_norm(e))
    assert backward(x + e) > 10 * GRAM_TOL


def test_where_the_route_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU in fp32 with k at most a fifth of the short side; square matrices only with dsyevr and without
    the whole spectrum; fp64, CUDA and large k keep the thin SVD (every triplet comes back)."""
    assert lapack.available()  # numpy's wheel bundles it on this platform
    assert uses_gram(5120, 1280, 128, "cpu", "float32") and uses_gram(512, 2048, 102, "cpu", "float32")
    assert uses_gram(1280, 1280, 128, "cpu", "float32")
    assert not uses_gram(1280, 1280, 128, "cpu", "float32", spectrum=True)
    assert uses_gram(5120, 1280, 128, "cpu", "float32", spectrum=True)
    assert not uses_gram(5120, 1280, 257, "cpu", "float32")
    assert not uses_gram(5120, 1280, 128, "cuda", "float32")
    assert not uses_gram(5120, 1280, 128, "cpu", "float64")
    a = decaying(300, 60, seed=3)
    u, _, v, rho = top_svd(a.double(), 12)
    assert u.shape == (300, 60) and v.shape == (60, 60) and rho == 60
    monkeypatch.setattr(lapack, "_library", lambda: None)  # a numpy without the bundled LAPACK
    assert not lapack.available() and lapack.top_eigh(torch.eye(3, dtype=torch.float64), 1) is None
    assert not uses_gram(1280, 1280, 128, "cpu", "float32") and uses_gram(5120, 1280, 128, "cpu", "float32")
    u, s, v, rho = top_svd(decaying(300, 60, seed=3), 12)  # the route with torch's full eigh
    assert u.shape == (300, 12) and s.shape == (60,) and rho == 60


@pytest.mark.parametrize(("n", "k"), [(1, 1), (7, 3), (64, 5), (300, 60), (300, 300)])
def test_dsyevr_gives_the_top_eigenpairs(n: int, k: int) -> None:
    """lapack.top_eigh against torch's full eigh: the k largest eigenvalues (descending) to 1e-13 of the
    largest, eigenvectors with residual and orthogonality at rounding level; the input is left as it was."""
    a = torch.randn(n, n, generator=generator(n), dtype=torch.float64)
    g = a.mT @ a
    before = g.clone()
    lam, w = lapack.top_eigh(g, k)
    assert torch.equal(g, before) and lam.shape == (k,) and w.shape == (n, k)
    full = torch.linalg.eigh(g).eigenvalues.flip(0)
    scale = float(full[0])
    assert float((lam - full[:k]).abs().max()) <= 1e-13 * scale
    assert float(torch.linalg.vector_norm(g @ w - w * lam)) <= 1e-12 * scale
    assert_close(w.mT @ w, torch.eye(k, dtype=torch.float64), tol=1e-12)


@pytest.mark.parametrize(("m", "n"), [(1, 1), (7, 3), (3, 7), (300, 60), (51, 200)])
def test_dsyrk_gives_the_gram_matrix(m: int, n: int) -> None:
    """lapack.gram against the matrix product X^T X: symmetric exactly (one triangle mirrored), equal to
    rounding level, the input left as it was."""
    x = torch.randn(m, n, generator=generator(m * n), dtype=torch.float64)
    before = x.clone()
    g = lapack.gram(x)
    assert g is not None and g.shape == (n, n) and torch.equal(x, before)
    assert torch.equal(g, g.mT)
    want = x.mT @ x
    assert float((g - want).abs().max()) <= 1e-13 * float(want.abs().max())
    assert lapack.gram(x.mT) is not None and torch.allclose(lapack.gram(x.mT), x @ x.mT, rtol=0, atol=1e-12 * m * n)


def test_without_dsyrk_the_route_multiplies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library with dsyevr but no dsyrk: gram returns None, and the route's triplets are the same to
    rounding level."""
    a = decaying(300, 60, seed=6)
    u1, s1, v1, _ = top_svd(a, 12)
    real = lapack._library()
    assert real is not None
    monkeypatch.setattr(lapack, "_library", lambda: (real[0], None, real[2]))
    assert lapack.available() and not lapack.syrk_available() and lapack.gram(a.double()) is None
    u2, s2, v2, _ = top_svd(a, 12)
    assert_close(s2[:12], s1[:12], tol=1e-6)
    assert_close(u2 @ torch.diag(s2[:12]) @ v2.mT, u1 @ torch.diag(s1[:12]) @ v1.mT, tol=1e-6)


def test_dsyevr_runs_beside_other_threads() -> None:
    """Two threads calling dsyevr at once (as two merge workers do; ctypes releases the GIL, which this test
    does not time) get exactly the results one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    gs = []
    for i in range(4):
        a = torch.randn(200, 200, generator=generator(i), dtype=torch.float64)
        gs.append(a.mT @ a)
    alone = [lapack.top_eigh(g, 20) for g in gs]
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda g: lapack.top_eigh(g, 20), gs))
    for (l1, w1), (l2, w2) in zip(alone, both, strict=True):
        assert torch.equal(l1, l2) and torch.equal(w1, w2)


def test_dry_run_cost_of_the_route_is_what_it_multiplies(monkeypatch: pytest.MonkeyPatch) -> None:
    """gram_products: the fp64 Gram (m n^2; at gram.SYRK where dsyrk forms it), U_k (m n k), the residual
    (m n k) and U_k^T U_k (m k^2), fp64 counted twice; torch's flop counter sees exactly these products
    where the Gram is a matrix product, and all of them but the Gram where dsyrk forms it."""
    from torch.utils.flop_counter import FlopCounterMode

    from asrmerge.linalg import gram as gram_module

    m, n, k = 300, 60, 12
    a = decaying(m, n, seed=4)
    for spectrum in (False, True):
        counter = FlopCounterMode(display=False)
        with counter:
            assert gram_svd(a, k, spectrum=spectrum) is not None
        syrk = gram_products(m, n, k, syrk=True)
        assert syrk == gram_products(n, m, k, syrk=True) == gram_products(m, n, k)  # dsyrk is here
        assert counter.get_total_flops() == pytest.approx(syrk - 2 * gram_module.SYRK * m * n * n, rel=1e-12)
        with monkeypatch.context() as mp:
            mp.setattr(lapack, "gram", lambda x: None)  # a library without dsyrk: the matrix product
            counter = FlopCounterMode(display=False)
            with counter:
                assert gram_svd(a, k, spectrum=spectrum) is not None
        assert counter.get_total_flops() == gram_products(m, n, k, syrk=False) == gram_products(n, m, k, syrk=False)
    assert eigh_units(1280, 128, spectrum=True) == 0.75 * 1280**3
    assert eigh_units(1280, 128, spectrum=False) == pytest.approx(0.4 * 1280**3)


@pytest.mark.parametrize("algo", ["tsvm", "tsvm-ns", "boosted-tsvm", "iso-cts"])
@pytest.mark.parametrize("T", [5, 8])
def test_merges_through_the_route_agree_with_the_exact_merge(algo: str, T: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """TSV-M, TSV-M w/ NS, BoostedTSV-M (each task's top k) and Iso-CTS (each task's residual's top s) of T
    long (T = 5) or square (T = 8) task vectors in fp32, which take the route for every task, against the same
    merge in fp64 (thin SVDs, the steps): within 1e-5 relative."""
    calls = []
    original = gram.gram_svd

    def spy(a: torch.Tensor, k: int, tol: float = GRAM_TOL, *, spectrum: bool = False) -> object:
        out = original(a, k, tol, spectrum=spectrum)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(gram, "gram_svd", spy)
    m, n = (640, 100) if T == 5 else (200, 200)
    taus = [decaying(m, n, seed=100 + t, power=0.5 + 0.1 * t).double() for t in range(T)]
    got = merge_one(algo, [t.float() for t in taus], dtype=torch.float32)
    assert calls == [True] * T
    want = merge_one(algo, taus, dtype=torch.float64)
    assert rel_fro(got, want) < 1e-5


def test_a_sweep_decomposes_again_only_for_more_triplets() -> None:
    """task_svd keeps its result per tensor: a smaller k reuses it; a larger k, the whole spectrum
    (boost_scope=full) or rank_mode=full (every triplet) decomposes again, and a thin SVD serves every later
    request."""
    from asrmerge.merge.tsvm import task_svd

    class Tasks:
        name, T, weights, matrix_shape = "w", 1, [1.0], (600, 100)
        memo: dict[object, object] = {}
        reads = 0

        def tau(self, t: int) -> torch.Tensor:
            Tasks.reads += 1
            return decaying(600, 100, seed=9)

    tasks = Tasks()

    def call(k: int | None, spectrum: bool = False) -> tuple[int, int, int]:
        u, s, _, rho = task_svd(tasks, 0, k, spectrum=spectrum)  # type: ignore[arg-type]
        return u.shape[1], s.shape[0], rho

    assert call(10) == (10, 10, 10) and Tasks.reads == 1  # dsyevr's top 10: rho at least 10
    assert call(5) == (10, 10, 10) and Tasks.reads == 1
    assert call(20) == (20, 20, 20) and Tasks.reads == 2
    assert call(20, spectrum=True) == (20, 100, 100) and Tasks.reads == 3  # torch's full eigh: rho known
    assert call(15, spectrum=True) == (20, 100, 100) and call(15) == (20, 100, 100) and Tasks.reads == 3
    assert call(None) == (100, 100, 100) and Tasks.reads == 4
    assert call(20) == call(20, spectrum=True) == (100, 100, 100) and Tasks.reads == 4


def test_iso_cts_keeps_what_the_thin_svd_keeps_on_rank_deficient_residuals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Iso-CTS judges each residual triplet against epsilon_tol of the task itself (skipping sigma_1 of the
    task where the smallest kept value clears the threshold at its Frobenius norm): with a rank-2 task whose
    residual is tiny and a rank-3 one, the route keeps what the fp32 thin SVD keeps: the two merges agree to
    1e-4 (measured 1.2e-5, the fp32 SVD's own error), where one direction kept or dropped moves this isotropic
    merge by about 25 %. (fp64 keeps the rank-2 task's tiny residual directions, which its smaller epsilon
    clears, so it is not the reference here.)"""
    g = generator(21)
    taus = [decaying(300, 120, seed=400 + t) for t in range(4)]
    taus.append(from_svd(orthonormal(300, 3, g), torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64),
                         orthonormal(120, 3, g)).float())
    taus.append(decaying(300, 120, seed=499, rank=2))
    got = merge_one("iso-cts", taus, dtype=torch.float32)
    monkeypatch.setattr(gram, "uses_gram", lambda *a, **k: False)
    thin = merge_one("iso-cts", taus, dtype=torch.float32)
    assert rel_fro(got, thin.double()) < 1e-4


def test_boost_scope_full_reads_the_whole_spectrum() -> None:
    """boosted-tsvm with boost_scope=full divides by the whole spectrum's energy, so its task SVDs keep every
    singular value: on square task vectors (where dsyevr would give only the top k) it still agrees with the
    fp64 merge to 1e-5, and differs from boost_scope=kept."""
    taus = [decaying(200, 200, seed=300 + t, power=0.4 + 0.2 * t).double() for t in range(8)]
    params = {"boost_scope": "full", "beta": 0.5}
    got = merge_one("boosted-tsvm", [t.float() for t in taus], dtype=torch.float32, params=params)
    want = merge_one("boosted-tsvm", taus, dtype=torch.float64, params=params)
    assert rel_fro(got, want) < 1e-5
    kept = merge_one("boosted-tsvm", taus, dtype=torch.float64, params={"beta": 0.5})
    assert rel_fro(kept, want) > 1e-3


def test_dry_run_costs_the_route(tiny_base: Path, tiny_fts: list[Path]) -> None:
    """merge --dry-run with rank_frac 0.1 on the tiny Whisper (d_model 16: k = 1): each task SVD costs the
    route's eigendecomposition (dsyevr's top k, or torch's full one with boost_scope=full, where square
    matrices keep the SVD) and gram_products, every other decomposition the thin SVD's units; ties and
    rank_mode=full have no route."""
    from asrmerge.merge.plan import MergeSpec, dry_run, make_plan, svd_units
    from asrmerge.merge.registry import get

    assert get("tsvm").task_top_k(10, {"rank_frac": 0.1, "rank_mode": "numerical"}, 5120, 1280) == (128, False)
    assert get("tsvm").task_top_k(10, {"rank_frac": 0.1, "rank_mode": "full"}, 5120, 1280) is None
    full = {"rank_frac": 0.1, "rank_mode": "numerical", "beta": 0.3, "boost_scope": "full"}
    assert get("boosted-tsvm").task_top_k(10, full, 1280, 1280) == (128, True)
    assert get("iso-cts").task_top_k(10, {"common_frac": 0.8, "rank_mode": "numerical"}, 5120, 1280) == (26, False)
    assert get("iso-cts").task_top_k(10, {"common_frac": 1.0, "rank_mode": "numerical"}, 5120, 1280) is None
    assert get("iso-cts").task_top_k(10, {"common_frac": 0.8, "rank_mode": "full"}, 5120, 1280) is None
    assert get("ties").task_top_k(10, {}, 5120, 1280) is None
    T, k, rate, mm = len(tiny_fts), 1, 1e-9, 1e-11
    runs = {"tsvm": ["rank_mode=numerical"], "full": ["rank_mode=full"], "boosted": ["boost_scope=full"]}
    reports = {}
    for key, params in runs.items():
        plan = make_plan(MergeSpec(algo="boosted-tsvm" if key == "boosted" else "tsvm", inputs=[str(p) for p in tiny_fts],
                                   base=str(tiny_base), device="cpu", workers=1, check_outputs=False,
                                   params=["rank_frac=0.1", *params]))
        try:
            reports[key] = dry_run(plan, svd_rate=rate, io_rate=1e12, matmul_rate=mm, element_rate=(0.0, 0.0))
        finally:
            plan.close()
    for key, spectrum in (("tsvm", False), ("boosted", True)):
        svd_s, routed = 0.0, 0
        for t in reports[key]["tensors"]:
            if not t["svds"]:
                continue
            m, n = t["shape"][0], math.prod(t["shape"][1:])
            if uses_gram(m, n, k, "cpu", "float32", spectrum=spectrum):
                routed += 1
                svd_s += rate * (T * eigh_units(min(m, n), k, spectrum) + (t["svds"] - T) * svd_units(m, n))
            else:
                svd_s += rate * t["svds"] * svd_units(m, n)
        assert routed >= (3 if spectrum else 10)
        assert reports[key]["svd_seconds_estimate"] == pytest.approx(svd_s, rel=1e-9)
        assert reports[key]["svd_seconds_estimate"] < reports["full"]["svd_seconds_estimate"]
        assert reports[key]["products"] > reports["full"]["products"]
