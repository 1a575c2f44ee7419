"""The public Python API (asrmerge.taskvec, apply, merge, open_checkpoint, transcribe, wer) against the CLI."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import asrmerge
from asrmerge.errors import InputError, UsageError
from tests.conftest import AUDIO, ROOT, cli
from tests.factory import make_finetune, tensors

PUBLIC = {"apply", "merge", "open_checkpoint", "taskvec", "transcribe", "wer"}
MANIFEST = AUDIO / "english.jsonl"
FAST: dict[str, Any] = {"batch_size": 1, "max_new_tokens": 2, "language": "en"}


def same(a: object, b: object) -> None:
    """Two state dicts, tensor for tensor: the same names, dtypes, shapes and values, bit for bit."""
    assert isinstance(a, dict) and isinstance(b, dict)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name


def run_python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return r.stdout


# --- the package's surface -----------------------------------------------------------------------------------

def test_import_asrmerge_does_not_import_torch() -> None:
    out = run_python("import sys, asrmerge\n"
                     "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
                     "from asrmerge import merge, taskvec, wer\n"  # the names resolve lazily, still without torch
                     "import asrmerge.merge.registry\n"
                     "print('torch' in sys.modules)\n")
    assert out.split() == ["False", "False", "False"]


def test_all_lists_exactly_the_public_names() -> None:
    from asrmerge import api

    assert set(asrmerge.__all__) == PUBLIC and len(asrmerge.__all__) == len(PUBLIC)
    assert set(api.__all__) == PUBLIC
    defined = {n for n, v in vars(api).items() if inspect.isfunction(v) and v.__module__ == api.__name__
               and not n.startswith("_")}
    assert defined == PUBLIC
    for name in PUBLIC - {"merge"}:
        assert getattr(asrmerge, name) is getattr(api, name)
        assert getattr(asrmerge, name).__doc__
    assert set(dir(asrmerge)) >= PUBLIC
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = asrmerge.nope


def test_merge_is_the_function_and_still_the_package() -> None:
    from asrmerge import merge
    from asrmerge.merge.registry import REGISTRY

    assert merge is asrmerge.merge is sys.modules["asrmerge.merge"] and callable(merge)
    assert "ties" in REGISTRY
    # whichever comes first in a fresh interpreter: the attribute, or an import of a module inside the package
    out = run_python("import asrmerge\nm = asrmerge.merge\nfrom asrmerge.merge.registry import REGISTRY\n"
                     "from asrmerge.merge.api import merge as f\nimport asrmerge.merge.plan\n"
                     "print(m is asrmerge.merge, callable(m), callable(f), 'tsvm' in REGISTRY)")
    assert out.split() == ["True"] * 4
    with pytest.raises(UsageError, match="nope"):
        asrmerge.merge("nope", ["a", "b"])
    with pytest.raises(UsageError, match="inputs: is one path, not a list"):
        asrmerge.merge("ties", "ft/")


# --- merge -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("algo", "params"), [("ties", {"density": 0.5}), ("boosted-tsvm", {"beta": 0.3})])
def test_merge_equals_the_cli(algo: str, params: dict[str, float], tiny_base: Path, tiny_fts: list[Path],
                              tmp_path: Path) -> None:
    out = tmp_path / "cli.safetensors"
    p = [x for k, v in params.items() for x in ("-p", f"{k}={v}")]
    r = cli("merge", "--algo", algo, "--base", str(tiny_base), *map(str, tiny_fts), *p, "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    merged = asrmerge.merge(algo, tiny_fts, base=tiny_base, params=params)
    assert isinstance(merged, dict)
    same(merged, tensors(out))
    assert not torch.equal(merged["model.encoder.layers.0.fc1.weight"], tensors(tiny_base)["model.encoder.layers.0.fc1.weight"])
    # written by the API: the same tensors in a folder with the base's config, as -o merged/ writes it
    written = asrmerge.merge(algo, [str(f) for f in tiny_fts], base=str(tiny_base), params=params,
                             output=tmp_path / "api")
    assert written == [str(tmp_path / "api")]
    same(tensors(tmp_path / "api"), tensors(out))
    assert {"config.json", "README.md", "model.safetensors"} <= {f.name for f in (tmp_path / "api").iterdir()}
    with asrmerge.open_checkpoint(tmp_path / "api") as ck:
        assert ck.metadata["asrmerge.algo"] == algo
        assert ck.metadata["asrmerge.command"].startswith(f"python: asrmerge.merge('{algo}', [")


def test_merge_of_task_vectors_with_a_sweep(tiny_base: Path, tiny_tvs: list[str], tmp_path: Path) -> None:
    r = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), *tiny_tvs, "-p", "lam=0.5,1.5",
            "-o", str(tmp_path / "cli-{lam}.safetensors"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    swept = asrmerge.merge("tsvm", tiny_tvs, base=tiny_base, params={"lam": [0.5, 1.5]})
    assert isinstance(swept, list) and [p["lam"] for p, _ in swept] == [0.5, 1.5]
    for (_, sd), lam in zip(swept, ("0.5", "1.5"), strict=True):
        same(sd, tensors(tmp_path / f"cli-{lam}.safetensors"))
    paths = asrmerge.merge("tsvm", tiny_tvs, base=tiny_base, params={"lam": [0.5, 1.5]},
                           output=str(tmp_path / "api-{lam}.safetensors"))
    assert paths == [str(tmp_path / "api-0.5.safetensors"), str(tmp_path / "api-1.5.safetensors")]
    same(tensors(Path(paths[1])), tensors(tmp_path / "cli-1.5.safetensors"))


def test_state_dict_inputs_merge_as_their_files_do(tiny_base: Path, tiny_fts: list[Path], tiny_tvs: list[str]) -> None:
    want = asrmerge.merge("ties", tiny_fts, base=tiny_base, params={"density": 0.5})
    assert isinstance(want, dict)
    base_sd, ft_sds = tensors(tiny_base), [tensors(f) for f in tiny_fts]
    same(asrmerge.merge("ties", ft_sds, base=base_sd, params={"density": 0.5}), want)
    # mixed: a path base, a state dict, a folder
    same(asrmerge.merge("ties", [ft_sds[0], tiny_fts[1], ft_sds[2]], base=str(tiny_base),
                        params={"density": 0.5}), want)
    # task vectors as state dicts need taskvecs=True; without it they would be taken for fine-tuned weights
    tv_sds = [tensors(Path(t)) for t in tiny_tvs]
    same(asrmerge.merge("ties", tv_sds, base=base_sd, taskvecs=True, params={"density": 0.5}), want)
    with pytest.raises(UsageError, match="needs the base model"):
        asrmerge.merge("ties", tv_sds, taskvecs=True)


def test_lora_adapters_as_paths_beside_state_dicts(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    """An adapter folder is read against the base, a path or a state dict, as merge and taskvec read it."""
    from tests.factory import make_lora

    ad = make_lora(tiny_base, tmp_path / "lora", seed=5, r=2, target_modules=["q_proj", "fc1"])
    r = cli("merge", "--algo", "ta", "--base", str(tiny_base), str(tiny_fts[0]), str(ad), "-o",
            str(tmp_path / "cli.st"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    same(asrmerge.merge("ta", [tiny_fts[0], ad], base=tiny_base), tensors(tmp_path / "cli.st"))
    same(asrmerge.merge("ta", [tensors(tiny_fts[0]), ad], base=tensors(tiny_base)), tensors(tmp_path / "cli.st"))
    tau = asrmerge.taskvec(tensors(tiny_base), ad)
    name = "model.encoder.layers.0.fc1.weight"
    with asrmerge.open_checkpoint(tiny_base) as base, asrmerge.open_checkpoint(ad, base=base) as lora:
        f = lora.lora_factors(name)
        assert f is not None and torch.allclose(tau[name], f.scale * f.b @ f.a, atol=1e-7)
    assert torch.count_nonzero(tau["model.encoder.layers.0.fc2.weight"]) == 0  # not a target: tau is zero


# --- taskvec and apply -----------------------------------------------------------------------------------------

def test_taskvec_round_trip(tiny_base: Path, tiny_fts: list[Path], tiny_tvs: list[str], tmp_path: Path) -> None:
    tau = asrmerge.taskvec(tiny_base, tiny_fts[0])
    same(tau, tensors(Path(tiny_tvs[0])))  # what `asrmerge taskvec BASE FT` writes
    assert all(t.dtype == torch.float32 for t in tau.values())
    # to a file, from state dicts: the same tensors, a task vector that records its base
    path = asrmerge.taskvec(tensors(tiny_base), tensors(tiny_fts[0]), tmp_path / "tv.safetensors")
    assert path == str(tmp_path / "tv.safetensors")
    same(tensors(tmp_path / "tv.safetensors"), tau)
    with asrmerge.open_checkpoint(path) as tv, asrmerge.open_checkpoint(tiny_base) as base:
        assert tv.kind == "taskvec" and tv.base_fingerprint() == base.fingerprint()
    # fp64 task vectors give the fine-tune back bit for bit, in memory and through a folder
    ft = {k: v for k, v in tensors(tiny_fts[0]).items() if k != "proj_out.weight"}
    tau64 = asrmerge.taskvec(tiny_base, tiny_fts[0], dtype="fp64")
    assert all(t.dtype == torch.float64 for t in tau64.values())
    same(asrmerge.apply(tiny_base, tau64), ft)
    out = asrmerge.apply(str(tiny_base), asrmerge.taskvec(tiny_base, tiny_fts[0], tmp_path / "tv64.st", dtype="fp64"),
                         tmp_path / "ft/")
    assert out == str(tmp_path / "ft/") and (tmp_path / "ft" / "config.json").is_file()
    same(tensors(tmp_path / "ft"), ft)
    half = asrmerge.apply(tiny_base, tau, scale=0.5)
    r = cli("taskvec", "--apply", "--scale", "0.5", str(tiny_base), tiny_tvs[0], "-o", str(tmp_path / "half.st"))
    assert r.returncode == 0, r.stderr.decode()
    same(half, tensors(tmp_path / "half.st"))


def test_taskvec_errors_are_the_clis(tiny_base: Path, tiny_tvs: list[str], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a task vector, not a model"):
        asrmerge.taskvec(tiny_base, tiny_tvs[0])
    with pytest.raises(UsageError, match="holds a model, not a task vector"):
        asrmerge.apply(tiny_base, tiny_base)
    with pytest.raises(UsageError, match="unknown dtype 'fp8'"):
        asrmerge.taskvec(tiny_base, tiny_base, dtype="fp8")
    with pytest.raises(UsageError, match="not a finite number"):
        asrmerge.apply(tiny_base, tiny_tvs[0], scale=float("nan"))
    (tmp_path / "mine.txt").write_text("not ours")
    with pytest.raises(UsageError):
        asrmerge.taskvec(tensors(tiny_base), tensors(tiny_base), tmp_path / "mine.txt")
    assert (tmp_path / "mine.txt").read_text() == "not ours"
    with pytest.raises(InputError, match="no such file or folder"):
        asrmerge.open_checkpoint(tmp_path / "missing")


# --- transcribe and wer ----------------------------------------------------------------------------------------

def test_transcribe_and_wer_equal_the_cli(tiny_asr: Path, tmp_path: Path) -> None:
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), "--batch-size", "1", "--max-new-tokens", "2",
            "--language", "en", "-q", "-o", str(tmp_path / "hyp.jsonl"))
    assert r.returncode == 0, r.stderr.decode()
    want = [json.loads(x) for x in (tmp_path / "hyp.jsonl").read_text().splitlines()]
    records = asrmerge.transcribe(tiny_asr, MANIFEST, **FAST)
    assert records == want and len(records) == 6 and all(x["hyp"] for x in records)
    r = cli("wer", "--json", "--by", "set", str(tmp_path / "hyp.jsonl"))
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    assert asrmerge.wer(records, by="set") == doc
    assert asrmerge.wer(tmp_path / "hyp.jsonl", by="set") == doc
    assert doc["micro"]["utterances"] == 6 and doc["micro"]["wer"] > 0


def test_transcribe_takes_records_and_audio_paths(tiny_asr: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from asrmerge.asr import model

    w = model.load(str(tiny_asr))
    monkeypatch.chdir(AUDIO)  # records' and bare paths' audio is relative to the working folder
    out = asrmerge.transcribe(w, [{"id": "a", "audio": "jfk.wav", "text": "ask not"}, "jfk.wav",
                                  {"id": "b", "audio": "missing.wav"}], **FAST)
    assert [x.get("id") for x in out] == ["a", None, "b"]
    assert out[0]["text"] == "ask not" and out[0]["hyp"] == out[1]["hyp"] and out[1]["audio"] == "jfk.wav"
    assert out[2]["error"] == "no such audio file" and "hyp" not in out[2]
    one = asrmerge.transcribe(w, AUDIO / "jfk.wav", **FAST)
    assert [x["hyp"] for x in one] == [out[0]["hyp"]]
    with pytest.raises(InputError, match="no such audio file"):
        asrmerge.transcribe(w, ["missing.wav"], strict=True, **FAST)
    doc = asrmerge.wer(out)
    assert doc["excluded"] == {"error": 1, "no_reference": 1, "no_hypothesis": 0}
    assert doc["micro"]["utterances"] == 1 and doc["micro"]["ref_words"] == 2
    assert asrmerge.wer([{"text": "a b c", "hyp": "a x c"}])["micro"]["wer"] == pytest.approx(1 / 3)
    assert asrmerge.wer([{"text": "ab", "hyp": "ax"}], cer=True)["micro"]["cer"] == pytest.approx(1 / 2)
    with pytest.raises(UsageError, match="no record has a reference field \"ref\""):
        asrmerge.wer([{"text": "a", "hyp": "a"}], ref_field="ref")


# --- README ----------------------------------------------------------------------------------------------------

def readme_python() -> str:
    section = (ROOT / "README.md").read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_readme_uses_only_the_public_api() -> None:
    code = readme_python()
    assert 6 <= len(code.strip().splitlines()) <= 12
    assert re.findall(r"^(?:from|import) .*", code, re.M) == ["import asrmerge"]
    assert set(re.findall(r"asrmerge\.(\w+)", code)) <= PUBLIC


def test_readme_example_runs(tiny_asr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """The README's example, in a folder with its base/, ft-news/, ft-kids/ and dev.jsonl (tiny and random)."""
    import shutil

    shutil.copytree(tiny_asr, tmp_path / "base")
    for i, name in enumerate(("ft-news", "ft-kids")):
        make_finetune(tmp_path / "base", tmp_path / name, seed=7 + i)
    records = [{"id": f"u{i}", "audio": str(AUDIO / "jfk.wav"), "text": "ask not", "domain": d}
               for i, d in enumerate(("news", "kids"))]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_python(), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and float(printed[0]) > 0
    assert printed[1].startswith("fp1:") and printed[1].endswith("torch.Size([32, 16])")
    assert {"news-half", "merged", "kids.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    with asrmerge.open_checkpoint("merged/") as ck:
        assert ck.metadata["asrmerge.algo"] == "ties"
