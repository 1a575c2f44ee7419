"""Conformance with the public implementations: mergekit 0.1.5 and FusionBench 0.2.33 (docs/algorithms.md "Reference").

Each peer runs in its own venv under ``.cache/peers/`` (created on first use, see ``tests/peers/env.py``),
driven on the same safetensors files as asrmerge. All mergekit jobs run in one child process and all
FusionBench jobs in another, so the peers' import cost is paid twice per session. Measured differences
go to ``.cache/peers/conformance.json``; ``tests/peers/CONFORMANCE.md`` lists them with the mapping.

    python -m pytest -m peers
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from asrmerge.merge.api import merge
from tests.conftest import cli
from tests.peers import data
from tests.peers.data import InputSet
from tests.peers.env import CACHE, PeerSetupError, ensure
from tests.peers.run import PeerRun, fusion_bench_job, mergekit_job, run_peer

pytestmark = pytest.mark.peers

W = [1.0, 0.5, 2.0]  # per-task weights w_t (mergekit `weight`, FusionBench per-task `alpha` list)
REPORT: dict[str, Any] = {"cases": {}, "runs": {}, "envs": {}}


# ---------------------------------------------------------------- inputs and peer runs (once per session)

@pytest.fixture(scope="session")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, InputSet]:
    root = tmp_path_factory.mktemp("peer-inputs")
    made = [
        data.dense("dense"),
        data.dense("dense64", dtype=torch.float64),
        data.dense("tiny_tau", scale=1e-4, task_scales=[1.0, 2.0, 4.0]),
        data.dense("r5", shapes={"model.decoder.layers.0.self_attn.q_proj.weight": (5, 5),
                                 "model.decoder.layers.0.self_attn.q_proj.bias": (5,)}, dtype=torch.float64),
        data.opposed("opposed"), data.pole("pole"), data.tied("tied"), data.zero_sign("zero_sign"),
        data.orthogonal_rank1("rank1"), data.disjoint("disjoint"), data.small_norm("small_norm"),
    ]
    return {s.name: s.save(root) for s in made}


def _env(name: str) -> Any:
    try:
        env = ensure(name)
    except PeerSetupError as e:
        pytest.fail(f"peer {name} cannot be installed into .cache/peers/{name}: {e}", pytrace=False)
    REPORT["envs"][name] = {"versions": env.versions, "created_now_s": env.setup_s}
    return env


class Results:
    """The outputs of one batched peer run, by case id."""

    def __init__(self, run: PeerRun, ids: list[str]) -> None:
        self.run = run
        self.by_id = dict(zip(ids, run.jobs, strict=True))

    def error(self, case: str) -> str | None:
        return self.by_id[case].error

    def __getitem__(self, case: str) -> dict[str, torch.Tensor]:
        job = self.by_id[case]
        if job.error is not None:
            pytest.fail(f"{self.run.peer} failed on case {case!r}:\n{job.error}", pytrace=False)
        return load_file(job.out)


def _batch(peer: str, jobs: dict[str, dict[str, Any]]) -> Results:
    env = _env(peer)
    try:
        run = run_peer(peer, list(jobs.values()), env=env)
    except Exception as e:  # noqa: BLE001  (a crashed child must fail every dependent test, loudly)
        pytest.fail(f"{peer} child process failed: {e}", pytrace=False)
    REPORT["runs"][peer] = {"jobs": len(jobs), "wall_s": round(run.wall_s, 2), "import_s": round(run.import_s, 2),
                            "peak_rss_mb": round(run.peak_rss_mb, 1)}
    return Results(run, list(jobs))


# mergekit parity cases: id -> (input set, mergekit method, mergekit parameters, weights, uses base,
#                               asrmerge algorithm, asrmerge parameters)
MK_CASES: dict[str, tuple[str, str, dict[str, Any], list[float] | None, bool, str, dict[str, Any]]] = {
    "soup": ("dense", "linear", {"normalize": True}, W, False, "soup", {}),
    "ta": ("dense", "task_arithmetic", {"lambda": 0.6}, W, True, "ta", {"lam": 0.6}),
    "ta-normalize": ("dense", "task_arithmetic", {"normalize": True}, W, True, "ta", {"lam": 1.0, "normalize": True}),
    "ties": ("dense", "ties", {"density": 0.2}, W, True, "ties", {"density": 0.2}),
    "ties-sum": ("dense", "ties", {"density": 0.3, "normalize": False, "lambda": 0.5}, W, True, "ties",
                 {"density": 0.3, "agg": "dis-sum", "lam": 0.5}),
    "dare-ties-p0": ("dense", "dare_ties", {"density": 1.0}, W, True, "dare-ties",
                     {"drop_rate": 0.0, "rescale": "l1", "agg": "dis-sum"}),
    "dare-linear-p0": ("dense", "dare_linear", {"density": 1.0, "lambda": 0.7}, W, True, "dare-ta",
                       {"drop_rate": 0.0, "rescale": "l1", "lam": 0.7}),
    "model-stock": ("dense", "model_stock", {}, None, True, "model-stock", {"cos_floor": -1.0}),
    "model-stock-default": ("dense", "model_stock", {}, None, True, "model-stock", {}),
    "model-stock-opposed": ("opposed", "model_stock", {}, None, True, "model-stock", {"cos_floor": -1.0}),
    "model-stock-pole": ("pole", "model_stock", {}, None, True, "model-stock", {}),
    "karcher": ("dense", "karcher", {}, None, False, "karcher", {}),
    "karcher-small-norm": ("small_norm", "karcher", {"tol": 0.5}, None, False, "karcher", {"tol": 0.5}),
    "multislerp": ("dense", "multislerp", {}, W, False, "multislerp", {}),
    "multislerp-base": ("dense", "multislerp", {}, W, True, "multislerp", {"use_base": True}),
    "multislerp-antipodal": ("pole", "multislerp", {}, [1.0, 1.0], True, "multislerp", {"use_base": True}),
    "sce": ("dense", "sce", {}, None, True, "sce", {}),
    "sce-topk": ("dense", "sce", {"select_topk": 0.5}, None, True, "sce", {"select_topk": 0.5}),
    "sce-k0": ("dense", "sce", {"select_topk": 0.001}, None, True, "sce", {"select_topk": 0.001}),
}
# Jobs whose comparison is not a plain parity check (deliberate differences, statistics).
MK_EXTRA: dict[str, tuple[str, str, dict[str, Any], list[float] | None, bool]] = {
    "model-stock-filter": ("dense", "model_stock", {"filter_wise": True}, None, True),
    "model-stock-opposed-default": ("opposed", "model_stock", {}, None, True),
    "ties-tied": ("tied", "ties", {"density": 0.2}, [1.0], True),
    "sce-tiny": ("tiny_tau", "sce", {}, None, True),
    "dare-linear": ("disjoint", "dare_linear", {"density": 0.7}, [1.0, 1.0, 1.0], True),
    "dare-ties": ("disjoint", "dare_ties", {"density": 0.7}, [1.0, 1.0, 1.0], True),
    "dare-ties-dense": ("dense", "dare_ties", {"density": 0.5}, [1.0, 1.0, 1.0], True),
}


@pytest.fixture(scope="session")
def mk(sets: dict[str, InputSet], tmp_path_factory: pytest.TempPathFactory) -> Results:
    work = tmp_path_factory.mktemp("mergekit")
    jobs = {}
    for case, (s, method, params, weights, use_base, *_) in [*MK_CASES.items(), *MK_EXTRA.items()]:
        inp = sets[s]
        jobs[case] = mergekit_job(method, inputs=inp.ft_paths, base=inp.base_path if use_base else None,
                                  params=params, weights=weights, out=work / f"{case}.safetensors", workdir=work,
                                  options=["--random-seed", "0"])
    return _batch("mergekit", jobs)


def _fb_tau_params(alphas: list[float] | None, lam: float, **kw: Any) -> dict[str, Any]:
    return {"alphas": alphas, "scaling_factor": lam, **kw}


# FusionBench parity cases: id -> (input set, FusionBench method, driver parameters, asrmerge algorithm,
#                                  asrmerge parameters, weights, relative tolerance)
FB_CASES: dict[str, tuple[str, str, dict[str, Any], str, dict[str, Any], list[float] | None, float]] = {
    "tsvm-fp64": ("dense64", "tsvm", _fb_tau_params(W, 0.8), "tsvm", {"lam": 0.8}, W, 1e-8),
    "tsvm-fp32": ("dense", "tsvm", _fb_tau_params(W, 0.8), "tsvm", {"lam": 0.8}, W, 1e-4),
    "iso-c-fp64": ("dense64", "iso_c", _fb_tau_params(W, 1.2), "iso-c", {"lam": 1.2}, W, 1e-8),
    "iso-c-fp32": ("dense", "iso_c", _fb_tau_params(W, 1.2), "iso-c", {"lam": 1.2}, W, 1e-4),
    "iso-cts-fp64": ("dense64", "iso_cts", _fb_tau_params(W, 1.0, common_space_fraction=0.8), "iso-cts",
                     {"common_frac": 0.8}, W, 1e-8),
    "iso-cts-fp32": ("dense", "iso_cts", _fb_tau_params(W, 1.0, common_space_fraction=0.8), "iso-cts",
                     {"common_frac": 0.8}, W, 1e-4),
    "iso-cts-half-fp64": ("dense64", "iso_cts", _fb_tau_params(None, 0.7, common_space_fraction=0.5), "iso-cts",
                          {"common_frac": 0.5, "lam": 0.7}, None, 1e-8),
    "ties-sum": ("dense", "ties", {"threshold": 0.2, "merge_func": "sum", "scaling_factor": 0.3}, "ties",
                 {"density": 0.2, "k_rule": "ref", "scope": "model", "agg": "dis-sum", "lam": 0.3}, None, 1e-6),
    "ties-mean": ("dense", "ties", {"threshold": 0.1, "merge_func": "mean", "scaling_factor": 1.0}, "ties",
                  {"density": 0.1, "k_rule": "ref", "scope": "model", "agg": "dis-mean", "lam": 1.0}, None, 1e-6),
    "ties-max": ("dense", "ties", {"threshold": 0.3, "merge_func": "max", "scaling_factor": 0.5}, "ties",
                 {"density": 0.3, "k_rule": "ref", "scope": "model", "agg": "dis-max", "lam": 0.5}, None, 1e-6),
}
FB_EXTRA: dict[str, tuple[str, str, dict[str, Any]]] = {
    "tsvm-eigh-fp64": ("dense64", "tsvm_eigh", _fb_tau_params(W, 0.8)),
    "ties-zero-sign": ("zero_sign", "ties", {"threshold": 0.2, "merge_func": "sum", "scaling_factor": 1.0}),
    "tsvm-rank1": ("rank1", "tsvm", _fb_tau_params(None, 1.0)),
    "iso-c-rank1": ("rank1", "iso_c", _fb_tau_params(None, 1.0)),
    "iso-cts-r5": ("r5", "iso_cts", _fb_tau_params(None, 1.0, common_space_fraction=0.0)),
}


@pytest.fixture(scope="session")
def fb(sets: dict[str, InputSet], tmp_path_factory: pytest.TempPathFactory) -> Results:
    work = tmp_path_factory.mktemp("fusion_bench")
    jobs = {}
    for case, (s, method, params, *_) in [*FB_CASES.items(), *FB_EXTRA.items()]:
        inp = sets[s]
        dtype = str(next(iter(inp.base.values())).dtype).removeprefix("torch.")
        extra = {"exclude_keys": data.exclude_keys(inp.base)} if method != "ties" else {}
        jobs[case] = fusion_bench_job(method, base=inp.base_path, inputs=inp.ft_paths, dtype=dtype,
                                      out=work / f"{case}.safetensors", **extra, **params)
    return _batch("fusion_bench", jobs)


@pytest.fixture(scope="session", autouse=True)
def _write_report() -> Any:
    yield
    if REPORT["cases"] or REPORT["runs"]:
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "conformance.json").write_text(json.dumps(REPORT, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------- helpers

def ours(algo: str, s: InputSet, *, params: dict[str, Any] | None = None, weights: list[float] | None = None,
         base: bool = True) -> dict[str, torch.Tensor]:
    """asrmerge's merge of an input set, in the set's dtype (fp64 sets compute in fp64)."""
    fp64 = next(iter(s.base.values())).dtype == torch.float64
    out = merge(algo, s.fts, base=s.base if base else None, params=params, weights=weights,
                compute_dtype=torch.float64 if fp64 else torch.float32)
    assert isinstance(out, dict)
    return out


def compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], ref: dict[str, torch.Tensor] | None,
            keys: list[str] | None = None) -> tuple[float, float, float]:
    """Differences of ``a`` from the peer's ``b``: (max abs, relative to the output, relative to the update).

    Relative to the output is max_k max|a_k - b_k| / max|b_k|, the spec's "<= tol relative". Relative to the
    update divides by max|b_k - ref_k| instead (``ref`` = W_0; None for parameter-space algorithms): stricter,
    but in fp32 bounded below by ulp(W_0) / |update|, so it is recorded, not asserted.
    """
    worst_abs, worst_out, worst_upd = 0.0, 0.0, 0.0
    for k in keys or list(b):
        assert a[k].shape == b[k].shape, k
        d = float((a[k].double() - b[k].double()).abs().max())
        out = float(b[k].double().abs().max())
        upd = float((b[k].double() - (ref[k].double() if ref is not None else 0.0)).abs().max())
        worst_abs = max(worst_abs, d)
        worst_out = max(worst_out, d / out if out > 0 else (0.0 if d == 0 else math.inf))
        worst_upd = max(worst_upd, d / upd if upd > 0 else (0.0 if d == 0 else math.inf))
    return worst_abs, worst_out, worst_upd


def record(case: str, peer: str, diffs: tuple[float, float, float] | None = None, tol: float | None = None,
           **kw: Any) -> None:
    max_abs, rel_out, rel_upd = diffs or (math.nan, math.nan, math.nan)
    REPORT["cases"][f"{peer}:{case}"] = {"max_abs": max_abs, "rel_out": rel_out, "rel_update": rel_upd, "tol": tol,
                                         **kw}


def update(sd: dict[str, torch.Tensor], base: dict[str, torch.Tensor], k: str) -> torch.Tensor:
    return sd[k].double() - base[k].double()


# ---------------------------------------------------------------- environments

def test_peer_versions(mk: Results, fb: Results) -> None:
    """The pinned peers are what runs, on the CPU torch 2.13.0 wheel."""
    assert mk.run.versions["mergekit"] == "0.1.5"
    assert fb.run.versions["fusion-bench"] == "0.2.33"
    for run in (mk.run, fb.run):
        assert run.versions["torch"].split("+")[0] == "2.13.0"
        assert run.versions["torch.cuda"] == "None"
        assert run.peak_rss_mb > 0 and run.wall_s > run.import_s > 0


def test_measure_reports_the_child_peak_rss(tmp_path: Path) -> None:
    """The runner's peak RSS is the child's own: a child that touches 300 MiB reports at least that, and a
    caller that holds 1 GiB itself does not leak its own high-water mark into the child's figure."""
    import sys

    from tests.peers.run import measure

    cmd = [sys.executable, "-c", "b = bytearray(300 * 2**20); print(len(b))"]
    m = measure(cmd, cwd=tmp_path)
    assert m.returncode == 0 and m.stdout.strip() == str(300 * 2**20)
    assert 300 <= m.peak_rss_mb < 600 and m.wall_s > 0
    ballast = b"\x01" * 2**30  # the caller's own resident set grows by 1 GiB
    m = measure(cmd, cwd=tmp_path)
    del ballast
    assert 300 <= m.peak_rss_mb < 600


def test_measure_kills_a_command_past_its_timeout(tmp_path: Path) -> None:
    import sys

    from tests.peers.run import PeerRunError, measure

    with pytest.raises(PeerRunError, match="timed out"):
        measure([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path, timeout=1)


# ---------------------------------------------------------------- mergekit parity

@pytest.mark.parametrize("case", list(MK_CASES))
def test_mergekit_parity(case: str, sets: dict[str, InputSet], mk: Results) -> None:
    """docs/algorithms.md section 4.1-4.4, 5.1-5.3, 5.5: <= 1e-6 relative in fp32 with the mapped parameters."""
    s, _, _, weights, use_base, algo, params = MK_CASES[case]
    inp = sets[s]
    peer = mk[case]
    mine = ours(algo, inp, params=params, weights=weights, base=use_base)
    diffs = compare(mine, peer, inp.base if use_base else None)
    # Extrapolation (eta < 0 or > 1) multiplies fp32 rounding by |eta| in both implementations alike.
    tol = 1e-6 * (max(1.0, _eta_max(inp)) if algo == "model-stock" else 1.0)
    record(case, "mergekit", diffs, tol, algo=algo, params=params)
    assert diffs[1] <= tol, f"{case}: max |ours - mergekit| = {diffs[0]:.3g}, relative {diffs[1]:.3g} > {tol:.3g}"


def _eta_max(inp: InputSet) -> float:
    """max over tensors of |eta| of Model Stock without a cos floor (mergekit's), in fp64."""
    worst = 0.0
    for k in inp.base:
        d = [tau[k].reshape(-1).double() for tau in inp.taus]
        T = len(d)
        q = sum(float(d[i] @ d[j] / (d[i].norm() * d[j].norm())) for i in range(T) for j in range(i + 1, T))
        q /= T * (T - 1) / 2
        den = 1 + (T - 1) * q
        worst = max(worst, abs(T * q / den) if abs(den) >= 1e-6 else 0.0)
    return worst


def test_model_stock_default_needs_nonnegative_cosines(sets: dict[str, InputSet]) -> None:
    """The 'model-stock-default' case is a parity case only because every q >= 0 there (4.2 Reference)."""
    inp = sets["dense"]
    for k in inp.base:
        d = [tau[k].reshape(-1).double() for tau in inp.taus]
        q = sum(float(d[i] @ d[j] / (d[i].norm() * d[j].norm())) for i in range(3) for j in range(i + 1, 3)) / 3
        assert q >= 0, k


# ---------------------------------------------------------------- FusionBench parity

@pytest.mark.parametrize("case", list(FB_CASES))
def test_fusion_bench_parity(case: str, sets: dict[str, InputSet], fb: Results) -> None:
    """docs/algorithms.md section 6.1-6.3 (full-rank inputs, p = 1/T, orth=svd) and 5.2 (whole-model TIES, k_rule=ref)."""
    s, _, _, algo, params, weights, tol = FB_CASES[case]
    inp = sets[s]
    peer = fb[case]
    mine = ours(algo, inp, params=params, weights=weights)
    diffs = compare(mine, peer, inp.base)
    record(case, "fusion_bench", diffs, tol, algo=algo, params=params)
    assert diffs[1] <= tol, f"{case}: max |ours - FusionBench| = {diffs[0]:.3g}, relative {diffs[1]:.3g} > {tol:g}"


def test_fusion_bench_tsvm_eigh(sets: dict[str, InputSet], fb: Results) -> None:
    """6.3 orth=eigh is the TSV repository's compute_and_sum_svd_mem_reduction_2 (FusionBench ships it too).

    That function has no exclude_keys and decomposes the 2-D mean tensors as well, so those are not compared.
    """
    inp = sets["dense64"]
    mine = ours("tsvm", inp, params={"orth": "eigh", "lam": 0.8}, weights=W)
    keys = [k for k in inp.base if not (inp.base[k].dim() == 2 and k in data.exclude_keys(inp.base))]
    diffs = compare(mine, fb["tsvm-eigh-fp64"], inp.base, keys)
    record("tsvm-eigh-fp64", "fusion_bench", diffs, 1e-8, algo="tsvm", params={"orth": "eigh", "lam": 0.8},
           note="2-D mean tensors excluded (the function decomposes them)")
    assert diffs[1] <= 1e-8, diffs


def test_fusion_bench_exclude_keys_are_the_2d_mean_tensors(sets: dict[str, InputSet]) -> None:
    """Section 2: for FusionBench parity pass as exclude_keys every 2-D key not of class svd."""
    assert data.exclude_keys(sets["dense"].base) == ["model.decoder.embed_positions.weight",
                                                     "model.decoder.embed_tokens.weight"]


# ---------------------------------------------------------------- the CLI on the same files

def test_cli_soup_file_matches_mergekit(sets: dict[str, InputSet], mk: Results, tmp_path: Path) -> None:
    """``asrmerge merge`` writes the same tensors as mergekit-pytorch's linear merge, from the same files."""
    inp = sets["dense"]
    out = tmp_path / "soup.safetensors"
    r = cli("merge", "--algo", "soup", "--weights", ",".join(map(str, W)), *map(str, inp.ft_paths), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    diffs = compare(load_file(out), mk["soup"], None)
    assert diffs[1] <= 1e-6, diffs


def test_cli_tsvm_file_matches_fusion_bench(sets: dict[str, InputSet], fb: Results, tmp_path: Path) -> None:
    inp = sets["dense64"]
    out = tmp_path / "tsvm.safetensors"
    r = cli("merge", "--algo", "tsvm", "--base", str(inp.base_path), *map(str, inp.ft_paths), "--weights",
            ",".join(map(str, W)), "-p", "lam=0.8", "--compute-dtype", "fp64", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    diffs = compare(load_file(out), fb["tsvm-fp64"], inp.base)
    assert diffs[1] <= 1e-8, diffs


# ---------------------------------------------------------------- deliberate differences: mergekit

def test_ties_keeps_every_magnitude_tied_at_the_threshold(sets: dict[str, InputSet], mk: Results) -> None:
    """5.2: the keep mask is |x| >= t_k, so all tied entries stay; mergekit keeps exactly floor(rho n) by argsort."""
    inp = sets["tied"]
    peer, mine = mk["ties-tied"], ours("ties", inp, params={"density": 0.2})
    for k in inp.base:
        n = inp.base[k].numel()
        assert int((update(mine, inp.base, k) != 0).sum()) == n  # every |tau| = 1/8 ties at t_k
        assert int((update(peer, inp.base, k) != 0).sum()) == max(1, int(0.2 * n))
    record("ties-tied", "mergekit", note="kept all n tied entries vs exactly floor(rho n)")


def test_model_stock_cos_floor_stops_extrapolation(sets: dict[str, InputSet], mk: Results) -> None:
    """4.2: cos_floor = 0 (ours) keeps eta in [0, 1]; with q < 0 mergekit (cos_floor = -1) extrapolates past W_0."""
    inp = sets["opposed"]
    peer, mine = mk["model-stock-opposed-default"], ours("model-stock", inp)
    for k in inp.base:
        assert torch.equal(mine[k], inp.base[k])  # q < 0 -> eta = 0 -> W* = W_0
        mean_tau = sum(tau[k].double() for tau in inp.taus) / 2
        d = [tau[k].reshape(-1).double() for tau in inp.taus]
        q = float(d[0] @ d[1] / (d[0].norm() * d[1].norm()))
        assert q < -0.9
        eta = 2 * q / (1 + q)  # mergekit's eta, about -60: the update points against the mean task vector
        torch.testing.assert_close(update(peer, inp.base, k), eta * mean_tau, rtol=1e-3, atol=1e-4)


def test_model_stock_filter_wise_rows_of_dim0(sets: dict[str, InputSet], mk: Results) -> None:
    """4.2: filter_wise gives one q per row of dim 0. mergekit agrees on 1-D and 2-D tensors; on the 3-D conv
    kernel it takes one q per fibre of the last dimension."""
    inp = sets["dense"]
    peer = mk["model-stock-filter"]
    mine = ours("model-stock", inp, params={"filter_wise": True, "cos_floor": -1.0})
    flat = [k for k in inp.base if inp.base[k].dim() <= 2]
    assert compare(mine, peer, inp.base, flat)[1] <= 1e-6
    k = "model.encoder.conv1.weight"
    d = torch.stack([tau[k].double() for tau in inp.taus])  # T, 8, 4, 3
    rows = d.reshape(3, 8, -1)
    cos = [(rows[i] * rows[j]).sum(-1) / (rows[i].norm(dim=-1) * rows[j].norm(dim=-1))
           for i in range(3) for j in range(i + 1, 3)]
    q = torch.stack(cos).mean(0)
    eta = (3 * q / (1 + 2 * q)).reshape(8, 1, 1)
    torch.testing.assert_close(update(mine, inp.base, k), eta * d.mean(0), rtol=1e-5, atol=1e-6)
    assert float((update(peer, inp.base, k) - update(mine, inp.base, k)).abs().max()) > 1e-4
    record("model-stock-filter", "mergekit", compare(mine, peer, inp.base, flat), 1e-6,
           note="1-D/2-D tensors; the 3-D conv kernel differs by design")


def _sce_rule(taus: list[torch.Tensor], w: list[float]) -> torch.Tensor:
    """SCE steps 3-4 (select_topk = 1) with given task weights."""
    x = torch.stack(taus)
    gamma = torch.where(x.sum(0) >= 0, 1.0, -1.0).double()
    m = (torch.sign(x) == gamma).double()
    wt = torch.tensor(w, dtype=torch.float64).reshape(-1, *([1] * (x.dim() - 1)))
    den = (wt * m).sum(0)
    return (wt * m * x).sum(0) / torch.where(den == 0, 1.0, den)


def test_sce_weights_of_tiny_task_vectors(sets: dict[str, InputSet], mk: Results) -> None:
    """5.5 step 2: w_t = mean(tau_t^2) / sum, uniform only if the sum is 0. mergekit switches to uniform weights
    whenever the sum is below 1e-6, which fine-tuning deltas of size ~1e-4 always are."""
    inp = sets["tiny_tau"]
    peer, mine = mk["sce-tiny"], ours("sce", inp)
    for k in inp.base:
        taus = [tau[k].double() for tau in inp.taus]
        energy = [float(t.pow(2).mean()) for t in taus]
        assert sum(energy) < 1e-6
        ours_w = [e / sum(energy) for e in energy]
        torch.testing.assert_close(update(mine, inp.base, k), _sce_rule(taus, ours_w), rtol=1e-3, atol=2e-7)
        torch.testing.assert_close(update(peer, inp.base, k), _sce_rule(taus, [1 / 3] * 3), rtol=1e-3, atol=2e-7)
    record("sce-tiny", "mergekit", compare(mine, peer, inp.base),
           note="mergekit uses uniform weights when sum_t mean(tau_t^2) < 1e-6")


# ---------------------------------------------------------------- DARE: statistics only (random streams differ)

def _binomial_ok(kept: int, n: int, p_keep: float) -> bool:
    return abs(kept - n * p_keep) <= 4 * math.sqrt(n * p_keep * (1 - p_keep))


@pytest.mark.parametrize(("case", "algo", "params"), [
    ("dare-linear", "dare-ta", {"drop_rate": 0.3, "rescale": "l1", "lam": 1.0}),
    ("dare-ties", "dare-ties", {"drop_rate": 0.3, "rescale": "l1", "agg": "dis-sum"}),
])
def test_dare_statistics(case: str, algo: str, params: dict[str, Any], sets: dict[str, InputSet], mk: Results) -> None:
    """5.3: kept fraction within 4 sigma of 1 - p, and the L1 rescale keeps ||tau_t||_1 (rtol 1e-5), for us and
    mergekit alike. Task supports are disjoint, so the merged update shows each task's mask and scale."""
    inp = sets["disjoint"]
    results = {"mergekit": mk[case], "asrmerge": ours(algo, inp, params=params)}
    counts = {who: [0, 0] for who in results}  # kept, support size
    for who, out in results.items():
        for k in inp.base:
            upd = update(out, inp.base, k)
            for t, tau in enumerate(inp.taus):
                support = tau[k] != 0
                n, kept = int(support.sum()), int(((upd != 0) & support).sum())
                counts[who][0] += kept
                counts[who][1] += n
                assert _binomial_ok(kept, n, 0.7), (who, k, t, kept, n)
                l1 = float(tau[k].double().abs().sum())
                assert abs(float(upd[support].abs().sum()) - l1) <= 1e-5 * l1, (who, k, t)
                kept_mask = support & (upd != 0)
                s_t = float(upd[kept_mask].abs().sum()) / float(tau[k].double()[kept_mask].abs().sum())
                # one scale s_t per task and tensor, up to the fp32 rounding of W_0 + s_t tau_t (|W| < 8)
                assert float((upd[kept_mask] - s_t * tau[k].double()[kept_mask]).abs().max()) <= 1e-6, (who, k, t)
    record(case, "mergekit", note="statistical", kept_fraction={w: c[0] / c[1] for w, c in counts.items()})


def test_dare_ties_nonzero_fraction(sets: dict[str, InputSet], mk: Results) -> None:
    """5.3 dare-ties on overlapping dense tasks: an entry of tau* is nonzero iff some task kept it, 1 - p^T."""
    inp = sets["dense"]
    mine = ours("dare-ties", inp, params={"drop_rate": 0.5, "rescale": "l1", "agg": "dis-sum"})
    n = sum(v.numel() for v in inp.base.values())
    for out in (mk["dare-ties-dense"], mine):
        nz = sum(int((update(out, inp.base, k) != 0).sum()) for k in inp.base)
        assert _binomial_ok(nz, n, 1 - 0.5 ** 3), (nz, n)


# ---------------------------------------------------------------- deliberate differences: FusionBench

def test_ties_zero_elected_sign(sets: dict[str, InputSet], fb: Results) -> None:
    """5.2 step 2: gamma = +1 where sum_t tau_t = 0 exactly; FusionBench takes the model-wide majority sign."""
    inp = sets["zero_sign"]
    peer = fb["ties-zero-sign"]
    mine = ours("ties", inp, params={"density": 0.2, "k_rule": "ref", "scope": "model", "agg": "dis-sum", "lam": 1.0})
    for k in inp.base:
        cancel = (inp.taus[0][k] == 1.0) & (inp.taus[1][k] == -1.0)
        assert torch.equal(update(mine, inp.base, k)[cancel], torch.ones(int(cancel.sum()), dtype=torch.float64))
        assert torch.equal(update(peer, inp.base, k)[cancel], -torch.ones(int(cancel.sum()), dtype=torch.float64))
        assert torch.equal(mine[k][~cancel], peer[k][~cancel])
    record("ties-zero-sign", "fusion_bench", note="differs only where sum_t tau_t = 0 exactly")


def _svd_keys(inp: InputSet) -> list[str]:
    cls = data.classes(list(inp.base))
    return [k for k in inp.base if cls[k] == "svd"]


def test_tsvm_rank_deficient_tasks(sets: dict[str, InputSet], fb: Results) -> None:
    """6.3 / 7.5: zero-sigma triplets are dropped, so tsvm (lam 1) == ta (lam 1) for mutually orthogonal rank-1
    tasks; FusionBench keeps the null triplets' arbitrary vectors in the polar factor and misses it."""
    inp = sets["rank1"]
    peer, mine = fb["tsvm-rank1"], ours("tsvm", inp, params={"lam": 1.0})
    keys = _svd_keys(inp)
    target = {k: sum(tau[k] for tau in inp.taus) for k in keys}
    rel_ours = compare(mine, target, None, keys)[1]
    rel_peer = compare(peer, target, None, keys)[1]
    assert rel_ours <= 1e-10
    assert rel_peer > 1e-3
    record("tsvm-rank1", "fusion_bench", compare(mine, peer, inp.base, keys),
           note=f"rank-1 orthogonal tasks: ours == ta to {rel_ours:.1g}, FusionBench off by {rel_peer:.2g}")


def test_iso_c_rank_deficient_sum(sets: dict[str, InputSet], fb: Results) -> None:
    """6.1: on a rank-deficient Delta we flatten its rho nonzero singular values; the reference averages all r
    (zeros included) and spreads them over null directions too."""
    inp = sets["rank1"]
    peer, mine = fb["iso-c-rank1"], ours("iso-c", inp)
    for k in _svd_keys(inp):
        delta = sum(tau[k] for tau in inp.taus)
        sig = torch.linalg.svdvals(delta)
        r = sig.numel()
        s_mine = torch.linalg.svdvals(mine[k] - inp.base[k])
        s_peer = torch.linalg.svdvals(peer[k] - inp.base[k])
        torch.testing.assert_close(s_mine[:3], sig[:3].mean().expand(3))
        assert float(s_mine[3:].max()) < 1e-12
        torch.testing.assert_close(s_peer, (sig.sum() / r).expand(r))
    record("iso-c-rank1", "fusion_bench", compare(mine, peer, inp.base, _svd_keys(inp)),
           note="rank(Delta) = 3 < r: ours keeps 3 directions, FusionBench r")


def test_iso_cts_sizes_when_rounding_overflows(sets: dict[str, InputSet], fb: Results) -> None:
    """6.2 step 1: if s_tot > r use floor(r/T) T. With r = 5, T = 3, common_frac = 0 the reference computes
    k = -1 and fails; we use k = 2, s = 1 and the spectrum is flat over all r directions."""
    err = fb.error("iso-cts-r5")
    assert err is not None and "RuntimeError" in err, err
    inp = sets["r5"]
    mine = ours("iso-cts", inp, params={"common_frac": 0.0})
    k = "model.decoder.layers.0.self_attn.q_proj.weight"
    s = torch.linalg.svdvals(mine[k] - inp.base[k])
    assert float(s.max() - s.min()) <= 1e-10 * float(s.max())
    record("iso-cts-r5", "fusion_bench", note="FusionBench raises: " + err.strip().splitlines()[-1])
