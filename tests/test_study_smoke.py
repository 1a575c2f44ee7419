"""The smoke study end to end, as `bin/demo` runs it: real Whisper base, synthetic Portuguese domains, and
only asrmerge commands between the fine-tunes and the table. Checks that the pipeline's outputs are well
formed and that the fine-tuned and merged models beat zero-shot on their own domains.

Needs espeak-ng and sox (bin/bootstrap installs them). Takes about three minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One smoke run from nothing: its own cache (so the fine-tunes are made here), work and results folders."""
    top = tmp_path_factory.mktemp("study")
    env = {**os.environ, "XDG_CACHE_HOME": str(top / "cache"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "tests.bench.study.run", "--work", str(top / "work"), "--results",
                        str(top / "results"), "--seed", "0"], capture_output=True, env=env, cwd=ROOT, timeout=1200)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    results = top / "results"
    return {"results": results, "work": top / "work", "stdout": r.stdout.decode(), "stderr": r.stderr.decode(),
            "table": json.loads((results / "table.json").read_text())}


def test_every_output_is_there_and_well_formed(study: dict[str, Any]) -> None:
    results: Path = study["results"]
    for name in ("results.md", "table.json", "per-domain.jsonl", "chart.png", "svd-inspect.png", "commands.sh"):
        assert (results / name).is_file() and (results / name).stat().st_size > 0, name
    for png in ("chart.png", "svd-inspect.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = study["table"]
    rows = table["rows"]
    assert list(rows)[:3] == ["zero-shot", "ID-FT (each on its own domain)", "full-ft"]
    assert {"ta", "tsvm", "boosted-tsvm"} <= set(rows)
    for name, row in rows.items():
        assert set(row) == {"id", "ood", "pt", "english", "multi"}, name
        assert all(v is None or (isinstance(v, float) and v >= 0) for v in row.values()), (name, row)
    meta = table["meta"]
    assert meta["size"] == "smoke" and meta["seed"] == 0 and meta["times"]["total"] > 0
    assert set(meta["finetunes"]) == {"medicina-tel", "meteo-estudio", "full-ft"}
    records = [json.loads(x) for x in (results / "per-domain.jsonl").read_text().splitlines()]
    systems = {r["system"] for r in records}
    assert {"zero-shot", "full-ft", "ta", "tsvm", "boosted-tsvm", "id-ft:medicina-tel", "id-ft:meteo-estudio"} <= systems
    assert all(r["wer"] >= 0 and r["utterances"] == 4 and r["ref_words"] > 0 for r in records)
    assert {r["domain"] for r in records if r["system"] == "ta"} == {"medicina-tel", "meteo-estudio", "agricultura-campo"}
    # the table on stdout is results.md
    assert study["stdout"].strip() == (results / "results.md").read_text().strip()
    compare = table["compare"]
    assert compare is not None and 0 <= compare["mapsswe"]["p"] <= 1


def test_the_pipeline_is_asrmerge_commands_only(study: dict[str, Any]) -> None:
    """commands.sh is a shell script of asrmerge commands: every verb of the toolchain, nothing else."""
    lines = [x for x in (study["results"] / "commands.sh").read_text().splitlines()
             if x and not x.startswith(("#", "W=", "set "))]
    verbs = {shlex.split(x)[1] for x in lines}
    assert all(shlex.split(x)[0] == "asrmerge" for x in lines)
    assert verbs == {"convert", "taskvec", "merge", "svd-inspect", "transcribe", "wer"}
    assert any("--compare" in x for x in lines) and any("--by domain" in x for x in lines)
    assert subprocess.run(["bash", "-n", str(study["results"] / "commands.sh")]).returncode == 0


def test_fine_tuned_and_merged_models_beat_zero_shot_in_domain(study: dict[str, Any]) -> None:
    """Each ID-FT on its own domain, and every merge on the in-domain average, beat zero-shot. The smoke
    Full-FT (20 steps over 24 utterances of two domains) memorises its few sentences and can fall into
    repetition loops on one domain's held-out words, so it is required to beat zero-shot on one of its
    domains, not on both; the full study compares it properly."""
    rows = study["table"]["rows"]
    zero = rows["zero-shot"]["id"]
    for name in ("ID-FT (each on its own domain)", "ta", "tsvm", "boosted-tsvm"):
        assert rows[name]["id"] < zero, (name, rows[name]["id"], zero)
    records = [json.loads(x) for x in (study["results"] / "per-domain.jsonl").read_text().splitlines()]
    wer = {(r["system"], r["domain"]): r["wer"] for r in records}
    domains = ("medicina-tel", "meteo-estudio")
    for d in domains:  # each ID-FT on its own domain
        assert wer[(f"id-ft:{d}", d)] < wer[("zero-shot", d)], d
    assert any(wer[("full-ft", d)] < wer[("zero-shot", d)] for d in domains)


def test_the_lambda_sweep_picked_the_best_dev_value(study: dict[str, Any]) -> None:
    chosen = json.loads((study["work"] / "merged" / "tsvm.chosen.json").read_text())
    assert set(chosen["dev"]) == {"0.8", "1.2"}
    assert chosen["dev"][f"{chosen['lam']:g}"] == min(chosen["dev"].values())
    kept = {p.name for p in (study["work"] / "merged").glob("tsvm-lam*")}
    assert kept == {f"tsvm-lam{chosen['lam']:g}"}  # the other lambda's model is removed once chosen
