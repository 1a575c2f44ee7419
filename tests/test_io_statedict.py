"""Task vectors written by other tools: plain safetensors and pickled state dicts, declared with --tau."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from asrmerge.cli.main import app
from tests.conftest import cli
from tests.factory import tensors


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def one_line(err: str, cmd: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"asrmerge {cmd}: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def foreign(tiny_base: Path, tiny_fts: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The task vectors of two fine-tunes as asrmerge writes them, as a bare safetensors file (no metadata, as
    another tool writes them), and as a pickled state dict (torch.save, as the reference code does)."""
    root = tmp_path_factory.mktemp("foreign")
    base = tensors(tiny_base)
    out: dict[str, Path] = {}
    for i, ft in enumerate(tiny_fts[:2]):
        r = cli("taskvec", str(tiny_base), str(ft), "-o", str(root / f"ours{i}.safetensors"))
        assert r.returncode == 0, r.stderr.decode()
        taus = {n: (t - base[n]).contiguous() for n, t in tensors(ft).items()}
        save_file(taus, root / f"bare{i}.safetensors")
        torch.save({"state_dict": taus}, root / f"pickled{i}.pt")
        out[f"ours{i}"], out[f"bare{i}"], out[f"pickled{i}"] = (root / f"ours{i}.safetensors",
                                                               root / f"bare{i}.safetensors", root / f"pickled{i}.pt")
    return out


def test_svd_inspect_names_tau_and_reads_foreign_task_vectors_with_it(foreign: dict[str, Path]) -> None:
    code, _, err = invoke("svd-inspect", str(foreign["bare0"]), str(foreign["bare1"]))
    assert code == 2
    one_line(err, "svd-inspect", "is a model, not a task vector", "--tau")
    code, _, err = invoke("svd-inspect", str(foreign["pickled0"]), str(foreign["bare1"]))
    assert code == 3
    one_line(err, "svd-inspect", "pickle", "--tau", "weights_only=True")
    results = {}
    for kind, args in {"ours": ["ours0", "ours1"], "bare": ["--tau", "bare0", "bare1"],
                       "pickled": ["--tau", "pickled0", "bare1"]}.items():
        paths = [a if a.startswith("--") else str(foreign[a]) for a in args]
        code, out, err = invoke("svd-inspect", *paths, "--no-pairs")
        assert code == 0, err
        results[kind] = [(x["tensor"], x["kind"], round(x["fro"], 6)) for x in map(json.loads, out.splitlines())]
    assert results["bare"] == results["ours"] and results["pickled"] == results["ours"]
    assert len(results["ours"]) > 10


def test_merge_with_tau_equals_merging_asrmerge_task_vectors(foreign: dict[str, Path], tiny_base: Path,
                                                            tmp_path: Path) -> None:
    code, _, err = invoke("merge", "--algo", "tsvm", "--base", str(tiny_base), str(foreign["ours0"]),
                          str(foreign["ours1"]), "-o", str(tmp_path / "ours.st"))
    assert code == 0, err
    code, _, err = invoke("merge", "--algo", "tsvm", "--base", str(tiny_base), "--tau", str(foreign["pickled0"]),
                          str(foreign["bare1"]), "-o", str(tmp_path / "theirs.st"))
    assert code == 0, err
    ours, theirs = load_file(tmp_path / "ours.st"), load_file(tmp_path / "theirs.st")
    assert all(torch.equal(ours[n], theirs[n]) for n in ours)


def test_a_task_vector_taken_for_a_model_is_caught(foreign: dict[str, Path], tiny_base: Path, tiny_fts: list[Path],
                                                   tmp_path: Path) -> None:
    """Without --tau, a bare task vector with --base would be read as a fine-tune (tau = file - base): refused,
    naming --tau. With --tau, a file that holds a model is refused too; folders stay models."""
    code, _, err = invoke("merge", "--algo", "ta", "--base", str(tiny_base), str(foreign["bare0"]), str(tiny_fts[1]),
                          "-o", str(tmp_path / "m.st"))
    assert code == 2
    one_line(err, "merge", "holds task vectors, not a model", "pass --tau")
    code, _, err = invoke("svd-inspect", "--base", str(tiny_base), str(foreign["bare0"]))
    assert code == 2
    one_line(err, "svd-inspect", "holds task vectors", "--tau")
    code, _, err = invoke("taskvec", str(tiny_base), str(foreign["bare0"]), "-o", str(tmp_path / "t.st"))
    assert code == 2
    one_line(err, "taskvec", "holds task vectors", "--tau")
    model_file = tmp_path / "model.safetensors"
    save_file(tensors(tiny_fts[0]), model_file)
    code, _, err = invoke("merge", "--algo", "ta", "--tau", "--base", str(tiny_base), str(model_file),
                          str(foreign["bare1"]), "-o", str(tmp_path / "m.st"))
    assert code == 2
    one_line(err, "merge", "holds a model, not a task vector")
    code, _, err = invoke("merge", "--algo", "ta", "--tau", "--base", str(tiny_base), str(tiny_fts[0]),
                          str(foreign["bare1"]), "-o", str(tmp_path / "m.st"))
    assert code == 0, err  # a fine-tune folder stays a model under --tau
    assert not (tmp_path / "t.st").exists()


def test_apply_with_tau_reads_a_pickled_task_vector(foreign: dict[str, Path], tiny_base: Path, tiny_fts: list[Path],
                                                    tmp_path: Path) -> None:
    code, _, err = invoke("taskvec", "--apply", str(tiny_base), str(foreign["pickled0"]), "-o", str(tmp_path / "a.st"))
    assert code == 3
    one_line(err, "taskvec", "--tau")
    code, _, err = invoke("taskvec", "--apply", "--tau", str(tiny_base), str(foreign["pickled0"]),
                          "-o", str(tmp_path / "a.st"))
    assert code == 0, err
    got, ft = load_file(tmp_path / "a.st"), tensors(tiny_fts[0])
    assert all(torch.allclose(got[n], ft[n], rtol=0, atol=1e-6) for n in ft)
    code, _, err = invoke("taskvec", "--tau", str(tiny_base), str(tiny_fts[0]))
    assert code == 2
    one_line(err, "taskvec", "--tau goes with --apply")


def test_openai_named_state_dicts_are_mapped(foreign: dict[str, Path], tmp_path: Path) -> None:
    from asrmerge.io.openai import hf_to_openai

    sd = load_file(foreign["ours0"])
    torch.save({hf_to_openai(n): t for n, t in sd.items()}, tmp_path / "openai.pt")
    code, out, err = invoke("taskvec", "--stats", "--tau", str(tmp_path / "openai.pt"))
    assert code == 0, err
    assert {json.loads(x)["tensor"] for x in out.splitlines()} == set(sd)


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(foreign: dict[str, Path], tmp_path: Path) -> None:
    """torch.load(weights_only=True) refuses any object but tensors and plain containers: the payload's
    os.system never runs, and the error is one line (exit 3)."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"w": Payload()}, tmp_path / "evil.pt")
    r = cli("svd-inspect", "--tau", str(tmp_path / "evil.pt"), str(foreign["bare1"]))
    assert r.returncode == 3 and not marker.exists()
    one_line(r.stderr.decode(), "svd-inspect", "not a plain state dict", "weights_only=True")
    torch.save({"w": torch.zeros(2), "step": 3}, tmp_path / "mixed.pt")
    code, _, err = invoke("svd-inspect", "--tau", str(tmp_path / "mixed.pt"))
    assert code == 3
    one_line(err, "svd-inspect", "entry 'step'", "not a tensor")
