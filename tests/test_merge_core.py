"""LoRA inputs merged in the core space of their factors (docs/algorithms.md section 6.5), through the CLI.

Adapters are made by peft on the tiny random Whisper. The reference is the same merge of the adapters' task
vectors written by ``asrmerge taskvec BASE ADAPTER``: dense files, which the engine can only merge in full
space. A spy on the registry shows which rule (the matrix rule on dense task vectors, or the core rule) ran.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from asrmerge.cli.main import app
from asrmerge.merge import registry
from tests.factory import make_lora, tensors
from tests.merge_cases import assert_close

ADAPTERS = {  # R = 7 on q_proj, 5 on fc1, 4 on fc2, 2 or 3 elsewhere: below min(m, n) = 16 of every matrix
    "a": dict(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", "fc1"]),
    "b": dict(r=3, lora_alpha=6, target_modules=["q_proj", "k_proj", "fc1", "fc2"], use_rslora=True),
    "c": dict(r=2, lora_alpha=8, target_modules=["q_proj", "out_proj", "fc2"], rank_pattern={"fc2": 1}),
}
WEIGHTS = "1,0.5,2"
# every algorithm with a core rule, and the parameter settings docs/algorithms.md section 6.5 proves exact
CASES = [
    ("tsvm", []),
    ("tsvm", ["rank_frac=0.5", "orth=eigh"]),
    ("tsvm-ns", []),
    ("boosted-tsvm", []),
    ("boosted-tsvm", ["beta=0.5", "orth=svd", "boost_scope=full"]),
    ("iso-c", []),
    ("iso-cts", []),
    ("iso-cts", ["orth=ns"]),
]
SVD = "model.encoder.layers.0.fc1.weight"


def invoke(*args: str) -> None:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, (r.stderr, r.exception)


@pytest.fixture(scope="module")
def loras(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("core-loras")
    return {k: make_lora(tiny_base, root / k, seed=20 + i, **cfg) for i, (k, cfg) in enumerate(ADAPTERS.items())}


@pytest.fixture(scope="module")
def dense(tiny_base: Path, loras: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The adapters' task vectors as files (no factors: the full-space reference)."""
    root = tmp_path_factory.mktemp("core-dense")
    out = {}
    for k, path in loras.items():
        out[k] = root / f"{k}.safetensors"
        invoke("taskvec", str(tiny_base), str(path), "-o", str(out[k]), "-q")
    return out


def merge(base: Path, inputs: list[Path], out: Path, algo: str, params: list[str], *extra: str) -> dict[str, torch.Tensor]:
    invoke("merge", "--algo", algo, "--base", str(base), *map(str, inputs), "--weights", WEIGHTS,
           *[a for p in params for a in ("-p", p)], "-o", str(out), "-q", *extra)
    return tensors(out)


class Spy:
    """Counts, per tensor, the calls of an algorithm's matrix rule and of its core rule (registry entries
    replaced for the test, presets included)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full: list[str] = []
        self.core: list[tuple[int, ...]] = []
        for name, algo in list(registry.REGISTRY.items()):
            if algo.core is None:
                continue
            monkeypatch.setitem(registry.REGISTRY, name, dataclasses.replace(
                algo, fn=self._wrap_full(algo.fn), core=self._wrap_core(algo.core)))

    def _wrap_full(self, fn: Any) -> Any:
        def full(tasks: Any, **kw: Any) -> Any:
            self.full.append(tasks.name)
            return fn(tasks, **kw)
        return full

    def _wrap_core(self, fn: Any) -> Any:
        def core(space: Any, **kw: Any) -> Any:
            self.core.append(tuple(space.cores[0].shape))
            return fn(space, **kw)
        return core


@pytest.mark.parametrize(("algo", "params"), CASES, ids=lambda c: c if isinstance(c, str) else ",".join(c) or "default")
def test_lora_inputs_merged_in_core_space_equal_the_full_space_merge(algo: str, params: list[str], tiny_base: Path,
                                                                     loras: dict[str, Path], dense: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    """Every tensor of the merge of three adapters (weighted, ranks 1-3, rsLoRA and rank patterns) equals the
    same merge of their dense task vectors: W* - W_0 to 1e-5 relative (fp32), tensor by tensor."""
    w0 = tensors(tiny_base / "model.safetensors")
    core = merge(tiny_base, list(loras.values()), tmp_path / "core.safetensors", algo, params)
    full = merge(tiny_base, list(dense.values()), tmp_path / "full.safetensors", algo, params)
    assert core.keys() == full.keys() == w0.keys()
    changed = 0
    for name, w in w0.items():
        d_core, d_full = core[name].double() - w.double(), full[name].double() - w.double()
        assert_close(d_core, d_full, torch.float32, what=f"{algo} {params} {name}")
        changed += bool(d_full.abs().max() > 0)
    assert changed >= 16  # the 16 matrices the adapters touch, and some class-mean tensors


def test_iso_cts_with_more_columns_than_core_dimensions_stays_exact_in_core_space(tiny_base: Path,
                                                                                 loras: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    """common_frac=0.1 keeps more singular vectors than the adapters span (K > R): the full-space concatenation is
    rank-deficient, and its null singular values are rounding noise near the polar factor's epsilon_tol, so the
    full space may keep a noise direction (docs/algorithms.md section 6.5). The core has no null directions: the
    result stays in span(B) x span(A), as every task vector does, and fp32 agrees with fp64."""
    from asrmerge.io.checkpoint import open_checkpoint
    from asrmerge.linalg import core as kernels

    w0 = tensors(tiny_base / "model.safetensors")
    out32 = merge(tiny_base, list(loras.values()), tmp_path / "c32.safetensors", "iso-cts", ["common_frac=0.1"])
    out64 = merge(tiny_base, list(loras.values()), tmp_path / "c64.safetensors", "iso-cts", ["common_frac=0.1"],
                  "--compute-dtype", "fp64")
    weights = [float(x) for x in WEIGHTS.split(",")]
    with open_checkpoint(str(tiny_base)) as base:
        opened = [open_checkpoint(str(p), base=base) for p in loras.values()]
        try:
            for name in ("model.encoder.layers.0.fc2.weight", "model.decoder.layers.0.self_attn.q_proj.weight"):
                fs = [c.lora_factors(name) for c in opened]
                assert all(f is not None for f in fs)
                qb, qa = kernels.bases([w * f.scale * f.b.double() for w, f in zip(weights, fs, strict=True)],
                                       [f.a.double() for f in fs])
                d32, d64 = out32[name].double() - w0[name].double(), out64[name].double() - w0[name].double()
                assert_close(d32, d64, torch.float32, what=name)
                inside = qb @ (qb.mT @ d32 @ qa) @ qa.mT
                assert_close(inside, d32, torch.float32, what=f"{name} outside span(B) x span(A)")
        finally:
            for c in opened:
                c.close()


def test_the_engine_takes_the_core_path_only_where_it_is_exact(tiny_base: Path, loras: dict[str, Path],
                                                                dense: dict[str, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    adapters = list(loras.values())
    merge(tiny_base, adapters, tmp_path / "core.safetensors", "boosted-tsvm", [])
    # all 16 matrices in core space (R x R cores): no dense matrix rule
    assert spy.full == [] and len(spy.core) == 16
    assert sorted({s[0] for s in spy.core}) == [2, 3, 4, 5, 7] and all(s[0] == s[1] for s in spy.core)

    r = CliRunner().invoke(app, ["merge", "--algo", "iso-c", "--base", str(tiny_base), *map(str, adapters),
                                 "-o", str(tmp_path / "noted.safetensors")])
    assert r.exit_code == 0 and "16 matrices merged in the core space of the LoRA inputs' factors" in r.stderr

    spy.core.clear()
    merge(tiny_base, adapters, tmp_path / "full-mode.safetensors", "iso-c", ["rank_mode=full"])
    assert spy.core == [] and len(spy.full) == 16  # rank_mode=full has no core: the matrix rule runs

    spy.full.clear()
    mixed = [loras["a"], loras["b"], dense["c"]]  # a dense task vector among the inputs: no common factors
    r = CliRunner().invoke(app, ["merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, mixed), "--weights",
                                 WEIGHTS, "-o", str(tmp_path / "mixed.safetensors")])
    assert r.exit_code == 0 and spy.core == [] and len(spy.full) == 16 and "core space" not in r.stderr

    spy.full.clear()
    invoke("merge", "--algo", "iso-c", "--base", str(tiny_base), *map(str, adapters), "-p", "rank_mode=numerical,full",
           "-o", str(tmp_path / "sweep-{rank_mode}.safetensors"), "-q")
    assert len(spy.core) == 16 and len(spy.full) == 16  # per combination: core for numerical, dense for full


@pytest.mark.parametrize("algo", ["tsvm", "tsvm-ns", "boosted-tsvm"])
def test_tsvm_rank_mode_full_runs_in_full_space(algo: str, tiny_base: Path, loras: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """rank_mode=full keeps each task's k triplets, null ones included (docs/algorithms.md section 6.3): no core
    holds those, so every matrix takes the matrix rule; in a sweep numerical still goes to the cores."""
    spy = Spy(monkeypatch)
    adapters = list(loras.values())
    w0 = tensors(tiny_base / "model.safetensors")
    out = merge(tiny_base, adapters, tmp_path / "full-mode.safetensors", algo, ["rank_mode=full"])
    assert spy.core == [] and len(spy.full) == 16
    assert all(bool(torch.isfinite(v.double()).all()) for v in out.values()) and not torch.equal(out[SVD], w0[SVD])
    spy.full.clear()
    invoke("merge", "--algo", algo, "--base", str(tiny_base), *map(str, adapters), "-p", "rank_mode=numerical,full",
           "-o", str(tmp_path / "sweep-{rank_mode}.safetensors"), "-q")
    assert len(spy.core) == 16 and len(spy.full) == 16  # per combination: core for numerical, dense for full
    numerical = tensors(tmp_path / "sweep-numerical.safetensors")
    # adapters of rank 0-3 per matrix, k = floor(16/3) = 5: null triplets move the polar factor (boosted-tsvm lifts them)
    assert not torch.allclose(numerical[SVD], tensors(tmp_path / "sweep-full.safetensors")[SVD], rtol=1e-4, atol=1e-6)


def test_matrices_no_adapter_changes_stay_the_base_without_a_decomposition(tiny_base: Path, loras: dict[str, Path],
                                                                           tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapters a and c leave k_proj alone (R = 0): its tau* is zero, W* = W_0 bit for bit, and neither rule runs."""
    spy = Spy(monkeypatch)
    out = merge(tiny_base, [loras["a"], loras["c"], loras["a"]], tmp_path / "m.safetensors", "tsvm", [])
    w0 = tensors(tiny_base / "model.safetensors")
    for name in [n for n in w0 if n.endswith("k_proj.weight")]:
        assert torch.equal(out[name], w0[name]), name
    assert spy.full == [] and len(spy.core) == 16 - 3  # 3 k_proj matrices (two self-attentions, cross-attention)
    assert not torch.equal(out[SVD], w0[SVD])


def test_dry_run_costs_core_space_svds(tiny_base: Path, loras: dict[str, Path], dense: dict[str, Path]) -> None:
    """--dry-run counts the same SVDs per matrix, but costs them as R x R ones plus the two QR bases, and says
    which tensors go to core space and at what R."""
    from asrmerge.merge.plan import MergeSpec, dry_run, make_plan, svd_units

    reports = {}
    for kind, inputs in (("core", loras), ("full", dense)):
        plan = make_plan(MergeSpec(algo="tsvm", inputs=[str(p) for p in inputs.values()], base=str(tiny_base),
                                   device="cpu", workers=1, check_outputs=False))
        try:
            reports[kind] = dry_run(plan, svd_rate=1e-9, io_rate=1e12)
        finally:
            plan.close()
    core, full = reports["core"], reports["full"]
    assert core["svds"] == full["svds"] == 16 * (3 + 2)
    ranks = {t["tensor"]: t["core_rank"] for t in core["tensors"]}
    assert ranks["model.encoder.layers.0.self_attn.q_proj.weight"] == 7 and ranks[SVD] == 5
    assert ranks["model.encoder.layers.0.fc1.bias"] is None and all(t["core_rank"] is None for t in full["tensors"])
    assert core["core_tensors"] == 16 and full["core_tensors"] == 0
    expected = 0.0
    for t in core["tensors"]:
        if t["core_rank"] is not None:
            r, (m, n) = t["core_rank"], (t["shape"][0], math.prod(t["shape"][1:]))
            expected += 1e-9 * (t["svds"] * svd_units(r, r) + svd_units(m, r) + svd_units(n, r))
    assert core["svd_seconds_estimate"] == pytest.approx(expected, rel=1e-9)
    assert core["svd_seconds_estimate"] < full["svd_seconds_estimate"] / 5
    text = CliRunner().invoke(app, ["merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, loras.values()),
                                    "--dry-run", "-v"]).stdout
    assert "SVDs: 80, on LoRA cores for 16 matrices" in text
    assert json.dumps(core)  # serialisable as --json prints it


def test_every_core_rule_is_compared_with_its_matrix_rule() -> None:
    """An algorithm that declares a core rule joins the comparison above (registry.algorithm's contract)."""
    with_core = {n for n in registry.names() if registry.REGISTRY[n].core is not None}
    assert with_core == {a for a, _ in CASES} == {"iso-c", "iso-cts", "tsvm", "tsvm-ns", "boosted-tsvm"}
    assert not registry.get("iso-c").in_core({"rank_mode": "full"}) and registry.get("iso-cts").in_core(
        {"rank_mode": "numerical", "orth": "ns"})
    for algo in ("tsvm", "tsvm-ns", "boosted-tsvm"):
        combo = registry.get(algo).defaults()
        assert registry.get(algo).in_core(combo) and not registry.get(algo).in_core({**combo, "rank_mode": "full"})
