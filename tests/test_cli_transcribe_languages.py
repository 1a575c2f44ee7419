"""transcribe --language-field: one run over a multilingual manifest, each utterance decoded in its own language."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import cli


def test_each_record_is_decoded_in_its_own_language(real_base: Path, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("pytest_audioeval")
    assert spec is not None and spec.submodule_search_locations, "pytest-audioeval is a test dependency"
    samples = Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio"
    rows = []
    for lang, stem in (("pt", "contagem"), ("fr", "bonjour_monde"), ("pt", "ola_mundo")):
        shutil.copy(samples / lang / f"{stem}.wav", tmp_path / f"{lang}-{stem}.wav")
        rows.append({"id": f"{lang}-{stem}", "audio": f"{lang}-{stem}.wav", "lang": lang})
    rows.append({"id": "default", "audio": "pt-contagem.wav"})  # no field: --language applies
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli("transcribe", str(real_base), str(tmp_path / "m.jsonl"), "--language-field", "lang", "--language", "pt",
            "--max-new-tokens", "40", "-q", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    out = {x["id"]: x["hyp"].lower() for x in map(json.loads, r.stdout.decode().splitlines())}
    assert list(out) == [x["id"] for x in rows]  # input order, although batched per language
    assert "bonjour" in out["fr-bonjour_monde"]
    assert "dois" in out["pt-contagem"] and "dois" in out["default"]
    assert "olá" in out["pt-ola_mundo"]
    bad = cli("transcribe", str(real_base), str(tmp_path / "m.jsonl"), "--language-field", "lang", "--language", "xx",
              "-q", "--device", "cpu")
    assert bad.returncode == 2 and b"xx" in bad.stderr
