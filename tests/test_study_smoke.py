"""The smoke study end to end, as `bin/demo` runs it: real Whisper base, synthetic Portuguese domains, the
fine-tunes, then `asrmerge study` on them. Checks that its outputs are well formed, that the fine-tuned and
merged models beat zero-shot on their own domains, and that commands.sh replays the study by itself.

Needs espeak-ng and sox (bin/bootstrap installs them). Takes about three minutes on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
OWN = "fine-tunes (own domain)"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One smoke run from nothing: its own cache (so the fine-tunes are made here), work and results folders."""
    top = tmp_path_factory.mktemp("study")
    env = {**os.environ, "XDG_CACHE_HOME": str(top / "cache"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "tests.bench.study.run", "--work", str(top / "work"), "--results",
                        str(top / "results"), "--seed", "0"], capture_output=True, env=env, cwd=ROOT, timeout=2400)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    results = top / "results"
    return {"results": results, "work": top / "work", "study": top / "work" / "study", "stdout": r.stdout.decode(),
            "stderr": r.stderr.decode(), "table": json.loads((results / "table.json").read_text())}


def test_every_output_is_there_and_well_formed(study: dict[str, Any]) -> None:
    results: Path = study["results"]
    for name in ("results.md", "table.json", "per-domain.jsonl", "chart.png", "svd-inspect.png", "svd-summary.json",
                 "commands.sh"):
        assert (results / name).is_file() and (results / name).stat().st_size > 0, name
    for png in ("chart.png", "svd-inspect.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = study["table"]
    assert table["columns"] == ["id", "ood", "all", "english", "multilingual"]
    rows = table["rows"]
    assert list(rows)[:3] == ["zero-shot", OWN, "joint"]
    assert list(rows)[3:] == ["ta", "tsvm", "boosted-tsvm"]
    for name, row in rows.items():
        assert set(row) == set(table["columns"]), name
        assert all(v is None or (isinstance(v, float | int) and v >= 0) for v in row.values()), (name, row)
    records = [json.loads(x) for x in (results / "per-domain.jsonl").read_text().splitlines()]
    systems = {r["system"] for r in records}
    assert systems == {"zero-shot", "joint", "ta", "tsvm", "boosted-tsvm", "fine-tune:medicina-tel",
                       "fine-tune:meteo-estudio"}
    assert all(r["wer"] >= 0 and r["utterances"] == 4 and r["ref_words"] > 0 for r in records)
    assert {r["domain"] for r in records if r["system"] == "ta"} == {"medicina-tel", "meteo-estudio", "agricultura-campo"}
    assert study["stdout"].strip() == (results / "results.md").read_text().strip()  # the table on stdout
    assert "## The demo's data and fine-tunes" in study["stdout"]
    assert set(table["compare"]) >= {"joint"} and all(0 <= d["mapsswe"]["p"] <= 1 for d in table["compare"].values())
    for name in ("results.md", "table.json", "per-domain.jsonl", "svd-summary.json", "commands.sh"):
        assert str(study["work"]) not in (results / name).read_text(), name  # no absolute path of this machine


def test_the_pipeline_is_asrmerge_commands_only(study: dict[str, Any]) -> None:
    """commands.sh is a shell script of asrmerge commands (some with the thread count they ran with): the
    verbs of the toolchain; besides them only the inputs' variables, the folder made and entered."""
    lines = [x for x in (study["results"] / "commands.sh").read_text().splitlines()
             if x and not x.startswith(("#", "set ", "HERE=", "mkdir "))]
    commands = [[w for w in shlex.split(x) if not w.startswith(("OMP_NUM_THREADS=", "MKL_NUM_THREADS="))]
                for x in lines if "=${" not in x.split()[0]]
    assert all(w[0] == "asrmerge" for w in commands)
    assert {w[1] for w in commands} == {"taskvec", "merge", "svd-inspect", "transcribe", "wer"}
    assert any("--compare" in x for x in lines) and any("--by domain" in x for x in lines)
    assert subprocess.run(["bash", "-n", str(study["results"] / "commands.sh")]).returncode == 0


def test_fine_tuned_and_merged_models_beat_zero_shot_in_domain(study: dict[str, Any]) -> None:
    """Each ID-FT on its own domain, the joint fine-tune and every merge on the in-domain average beat
    zero-shot: the first table a newcomer sees makes sense (the fine-tunes stop early on their dev loss; without
    that the joint fine-tune memorised its 24 utterances, looped, and lost to zero-shot)."""
    rows = study["table"]["rows"]
    zero = rows["zero-shot"]["id"]
    for name in (OWN, "joint", "ta", "tsvm", "boosted-tsvm"):
        assert rows[name]["id"] < zero, (name, rows[name]["id"], zero)
    records = [json.loads(x) for x in (study["results"] / "per-domain.jsonl").read_text().splitlines()]
    wer = {(r["system"], r["domain"]): r["wer"] for r in records}
    domains = ("medicina-tel", "meteo-estudio")
    for d in domains:  # each ID-FT on its own domain
        assert wer[(f"fine-tune:{d}", d)] < wer[("zero-shot", d)], d
    assert "Step kept (of the steps run)" in study["stdout"]  # which step each fine-tune kept


def test_the_lambda_sweep_picked_the_best_dev_value(study: dict[str, Any]) -> None:
    lam = study["table"]["lambda"]["tsvm"]
    assert set(lam["dev"]) == {"0.8", "1.2"}
    assert lam["dev"][f"{lam['chosen']:g}"] == min(lam["dev"].values())
    kept = {p.name for p in (study["study"] / "merged").glob("tsvm-lam*")}
    assert kept == {f"tsvm-lam{lam['chosen']:g}"}  # the other lambda's model is removed once chosen


def _records(path: Path, study: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` without the model a transcript names (the replay names its inputs through
    the study folder), paths through the study folder written relative to it."""
    out = []
    for x in path.read_text().splitlines():
        r = json.loads(x.replace(str(study) + "/", ""))
        r.pop("model", None)
        out.append(r)
    return out


def test_commands_sh_replays_in_a_fresh_shell(study: dict[str, Any], tmp_path: Path) -> None:
    """commands.sh, run by bash with a bare environment into a new folder (O=NEW), remakes the task vectors
    and merges tensor for tensor, every transcript word for word, and the svd-inspect records."""
    import torch
    from safetensors.torch import load_file

    new, old = tmp_path / "replay", study["study"]
    (tmp_path / "bin").mkdir()
    shim = tmp_path / "bin" / "asrmerge"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)} -m asrmerge \"$@\"\n")
    shim.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), "O": str(new),
           "NO_COLOR": "1"}
    r = subprocess.run(["bash", str(old / "commands.sh")], env=env, capture_output=True, timeout=3000)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    for tv in sorted((old / "tv").glob("*.safetensors")):
        a, b = load_file(tv), load_file(new / "tv" / tv.name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), tv.name
    merged = sorted(p for p in (old / "merged").iterdir() if (p / "model.safetensors").is_file())
    assert len(merged) == 3  # ta, the chosen tsvm lambda, boosted-tsvm
    for m in merged:
        a, b = load_file(m / "model.safetensors"), load_file(new / "merged" / m.name / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), m.name
    hyps = sorted(old.glob("hyp/*/*.jsonl"))
    assert len(hyps) == 2 + 5 * 3 + 2  # the dev sweep; test, english, multilingual per system; the fine-tunes
    for h in hyps:
        assert _records(new / h.relative_to(old), old) == _records(h, old), h
    assert _records(new / "svd-summary.json", old) == _records(old / "svd-summary.json", old)
    assert (new / "svd-inspect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_transcribe_line_on_a_merge_stays_bounded(study: dict[str, Any]) -> None:
    """README's `asrmerge transcribe merged/ dev.jsonl --language pt`, literally (30 s window, no token limit
    given), on the smoke study's BoostedTSV-M merge: the merge loops on some utterances ("todem todem ...",
    hundreds of words before the default limit came from the audio), so each hypothesis must stop within the
    batch's token limit, and one that reaches it is marked."""
    from asrmerge.asr.runaway import token_budget

    dev = study["work"] / "data" / "dev.jsonl"
    r = subprocess.run([sys.executable, "-m", "asrmerge", "transcribe", str(study["study"] / "merged" / "boosted-tsvm"),
                        str(dev), "--language", "pt"], capture_output=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}, timeout=1200)
    assert r.returncode == 0, r.stderr.decode()
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    limit = token_budget(max(rec["seconds"] for rec in out), 444)
    assert limit == math.ceil(12 * max(rec["seconds"] for rec in out)) + 16
    for rec in out:
        assert rec["hyp_language"] == "pt"
        assert len(rec["hyp"].split()) <= limit, rec["hyp"]
        if len(rec["hyp"].split()) > 3 * len(rec["text"].split()):
            assert rec.get("truncated") or rec.get("repetition"), rec["hyp"]
