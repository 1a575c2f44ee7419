"""Real checks, offline: converted Whisper weights (tiny.en, base) transcribing real speech, scored by wer.

- tiny.en transcribes the JFK clip word for word (WER 0 with whisper-en), also from FLAC at 44.1 kHz stereo,
  Vorbis at 22.05 kHz, MP3 at 48 kHz and AAC (through ffmpeg); the five LibriVox utterances below 10% WER;
  and 35.7 s of LibriVox + JFK joined (long-form generation) whole, below 10% WER.
- base transcribes pytest-audioeval's Portuguese clips with --language pt.
- wer's figures on these outputs are jiwer's own on the same normalised texts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jiwer
import pytest

from asrmerge.asr.normalizers import get as normalizer
from tests.conftest import AUDIO, ROOT, audioeval, cli

pytestmark = pytest.mark.slow
JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.fixture(scope="module")
def english(real_tiny_en: Path, speech: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One transcribe run of tiny.en over every English check (one process, batches of 4)."""
    records = [json.loads(x) for x in (AUDIO / "english.jsonl").read_text().splitlines()]
    for r in records:
        r["audio"] = str(AUDIO / r["audio"])
    for name in ("flac", "ogg", "mp3", "m4a"):
        records.append({"id": f"jfk-{name}", "audio": str(speech / f"jfk.{name}"), "text": JFK, "set": "formats"})
    records.append({"id": "long", "audio": str(speech / "long.wav"), "text": (speech / "long.txt").read_text(),
                    "set": "long"})
    manifest = tmp_path_factory.mktemp("english") / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    r = cli("transcribe", str(real_tiny_en), str(manifest), "--batch-size", "4", "-q")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [x["id"] for x in records]
    return out


def wer_of(records: list[dict[str, Any]], *args: str) -> dict[str, Any]:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    r = subprocess.run([sys.executable, "-m", "asrmerge", "wer", *args], input=data, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr.decode()
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_tiny_en_on_jfk_librivox_formats_and_long_form(english: list[dict[str, Any]]) -> None:
    doc = wer_of(english, "--by", "set", "--normalizer", "whisper-en")
    groups = doc["groups"]
    assert groups["jfk"]["wer"] == 0.0, english[0]["hyp"]
    assert groups["formats"]["wer"] == 0.0 and groups["formats"]["utterances"] == 4, [r["hyp"] for r in english[6:10]]
    assert groups["librivox"]["wer"] < 0.10 and groups["librivox"]["utterances"] == 5
    assert groups["long"]["wer"] < 0.10, english[-1]["hyp"]


def test_long_form_covers_the_whole_recording(english: list[dict[str, Any]]) -> None:
    """35.7 s is more than Whisper's 30 s window: the hypothesis must run from the first to the last clip."""
    norm = normalizer("whisper-en")
    hyp = norm(english[-1]["hyp"]).split()
    ref = norm(english[-1]["text"]).split()
    assert hyp[:4] == ["and", "mister", "john", "dashwood"]          # the first LibriVox utterance ...
    assert hyp[-6:] == ref[-6:] == ["you", "can", "do", "for", "your", "country"]  # ... to JFK's last words
    assert abs(len(hyp) - len(ref)) <= 3


def test_wer_is_jiwers_on_real_output(english: list[dict[str, Any]]) -> None:
    norm = normalizer("whisper-en")
    ref = jiwer.process_words([norm(r["text"]) for r in english], [norm(r["hyp"]) for r in english])
    micro = wer_of(english, "--normalizer", "whisper-en")["micro"]
    assert (micro["substitutions"], micro["deletions"], micro["insertions"], micro["hits"]) == (
        ref.substitutions, ref.deletions, ref.insertions, ref.hits)
    assert micro["wer"] == pytest.approx(ref.wer)
    basic = normalizer("basic")
    cer = jiwer.cer([basic(r["text"]).strip() for r in english], [basic(r["hyp"]).strip() for r in english])
    assert wer_of(english, "--cer")["micro"]["cer"] == pytest.approx(cer)


def test_a_10_s_window_on_real_speech(real_tiny_en: Path, english: list[dict[str, Any]], tmp_path: Path) -> None:
    """--chunk-length 10 on the LibriVox clips (3-7 s): the encoder does a third of the work and the
    transcripts stay within a few words of the 30 s window's; JFK (11 s) goes the long-form way, whole."""
    records = [json.loads(x) for x in (AUDIO / "english.jsonl").read_text().splitlines()]
    for r in records:
        r["audio"] = str(AUDIO / r["audio"])
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    r = cli("transcribe", str(real_tiny_en), str(tmp_path / "m.jsonl"), "--chunk-length", "10", "-q")
    assert r.returncode == 0, r.stderr.decode()
    short = [json.loads(x) for x in r.stdout.decode().splitlines()]
    at30 = wer_of(english[: len(records)], "--normalizer", "whisper-en")["micro"]["wer"]
    at10 = wer_of(short, "--normalizer", "whisper-en")["micro"]["wer"]
    assert at10 < 0.15 and abs(at10 - at30) < 0.08, [x["hyp"] for x in short]
    norm = normalizer("whisper-en")
    assert norm(short[0]["hyp"]).split()[-4:] == ["do", "for", "your", "country"]


def test_an_english_only_model_refuses_other_languages(real_tiny_en: Path) -> None:
    r = cli("transcribe", str(real_tiny_en), str(AUDIO / "english.jsonl"), "--language", "pt")
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.decode().strip().splitlines() == [
        f"asrmerge transcribe: error: {real_tiny_en}: is an English-only model: it cannot transcribe 'pt'; "
        "use a multilingual Whisper model, or leave out --language"]


def test_english_only_model_options_and_fast_suppression(real_tiny_en: Path) -> None:
    """Suppressing tokens by index (asrmerge.asr.suppress) picks exactly transformers' tokens."""
    from asrmerge.asr import audio
    from asrmerge.asr import decoding as tr
    from asrmerge.asr import model as md
    from asrmerge.errors import UsageError

    w = md.load(str(real_tiny_en))
    assert not w.multilingual and md.generation_options(w, "en", "transcribe") == {}
    with pytest.raises(UsageError, match="cannot translate"):
        md.generation_options(w, None, "translate")
    assert len(w.gen_long.suppress_tokens) > 80 and w.gen_short.suppress_tokens is None
    clips = [audio.load(p) for p in sorted(AUDIO.glob("*.wav"))[:3]]
    opts = tr.check_settings(w, tr.Settings())
    assert tr.generate(w, clips, opts, fast_suppress=True) == tr.generate(w, clips, opts, fast_suppress=False)


def test_base_transcribes_portuguese(real_base: Path, tmp_path: Path) -> None:
    """Whisper base with --language pt: counting and the pangram word for word, "Olá mundo" as "Olá, mundos!"."""
    pt = audioeval("pt")
    records = [{"id": w.stem, "audio": str(w), "text": w.with_suffix(".txt").read_text().strip(), "domain": "pt"}
               for w in sorted(pt.glob("*.wav"))]
    assert [r["id"] for r in records] == ["contagem", "ola_mundo", "pangrama"]
    (tmp_path / "pt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    r = cli("transcribe", str(real_base), str(tmp_path / "pt.jsonl"), "--language", "pt", "-q")
    assert r.returncode == 0, r.stderr.decode()
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    basic = normalizer("basic")
    assert basic(out[0]["hyp"]).split() == "um dois três quatro cinco seis sete oito nove dez".split()
    assert basic(out[2]["hyp"]).split() == "a rápida raposa marrom salta sobre o cachorro preguiçoso".split()
    assert basic(out[1]["hyp"]).split()[0] == "olá" and basic(out[1]["hyp"]).split()[1].startswith("mundo")
    assert all(o["hyp_language"] == "pt" and "truncated" not in o and "repetition" not in o for o in out)
    doc = wer_of(out, "--normalizer", "basic")
    assert doc["micro"]["wer"] <= 1 / 21 and doc["micro"]["ref_words"] == 21


def test_base_detects_the_language(real_base: Path) -> None:
    """Without --language, multilingual Whisper detects it; the prompt must still say <|transcribe|>.

    (transformers 5 leaves the task token out after detecting the language unless the task is named, and base
    then repeats "Americans" to the token limit.)
    """
    from asrmerge.asr import decoding as tr
    from asrmerge.asr import manifest as mf
    from asrmerge.asr import model as md

    w = md.load(str(real_base))
    utts = mf.read_manifest(str(AUDIO / "english.jsonl"))[:2]
    out = [r.record["hyp"] for r in tr.transcribe(w, utts, tr.Settings(batch_size=2, max_new_tokens=60))]
    norm = normalizer("whisper-en")
    assert norm(out[0]) == norm(JFK)
    assert norm(out[1]).split()[:4] == ["and", "mister", "john", "dashwood"]
    # the default token budget, and the language detected, reach the records; nothing ran away
    records = [r.record for r in tr.transcribe(w, utts, tr.Settings(batch_size=2))]
    assert [r["hyp"] for r in records] == out
    assert [r["hyp_language"] for r in records] == ["en", "en"]
    assert not any("truncated" in r or "repetition" in r for r in records)
