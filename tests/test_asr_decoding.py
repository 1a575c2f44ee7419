"""Transcription in process, on a tiny random Whisper: batching, order, errors, statistics, model loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from asrmerge.asr import decoding as tr
from asrmerge.asr import manifest as mf
from asrmerge.asr import model as md
from asrmerge.errors import InputError, UsageError
from tests.conftest import AUDIO
from tests.factory import tensors

SHORT = tr.SHORT


@pytest.fixture(scope="module")
def tiny(tiny_asr: Path) -> md.Whisper:
    return md.load(str(tiny_asr))


@given(st.lists(st.integers(1, 3 * SHORT), max_size=40), st.integers(1, 7))
def test_batches_sort_by_length_and_keep_long_form_apart(lengths: list[int], size: int) -> None:
    out = tr.batches(lengths, size)
    flat = [i for b in out for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert all(1 <= len(b) <= size for b in out)
    assert all(len({lengths[i] > SHORT for i in b}) == 1 for b in out)
    assert sum(len(b) < size for b in out) <= 2  # only the last short and the last long batch may be partial


def test_order_and_records_do_not_depend_on_windows(tiny: md.Whisper) -> None:
    utts = mf.read_manifest(str(AUDIO / "english.jsonl"))
    a = list(tr.transcribe(tiny, utts, tr.Settings(batch_size=1, window=1, max_new_tokens=2, language="en")))
    b = list(tr.transcribe(tiny, utts, tr.Settings(batch_size=1, window=100, max_new_tokens=2, language="en",
                                                    workers=1)))
    assert [r.record for r in a] == [r.record for r in b]
    assert [r.record["id"] for r in a] == [u.record["id"] for u in utts]
    for r, u in zip(a, utts, strict=True):
        assert r.error is None and set(r.record) - {"truncated", "repetition"} == {*u.record, "hyp", "hyp_language",
                                                                                      "model"}
        assert r.record["hyp_language"] == "en"
        assert {k: r.record[k] for k in u.record} == u.record and r.record["model"] == tiny.label
        assert isinstance(r.record["hyp"], str) and r.record["hyp"]


class Recorder:
    def __init__(self) -> None:
        self.total, self.done, self.items = 0, 0, []  # type: ignore[var-annotated]

    def start(self, total: int, description: str) -> None:
        self.total = total

    def advance(self, item: str = "", amount: int = 1) -> None:
        self.done += amount
        self.items.append(item)


def test_bad_audio_becomes_an_error_record(tiny: md.Whisper, tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    shutil.copy(AUDIO / "jfk.wav", tmp_path / "jfk.wav")
    lines = [{"id": "a", "audio": "jfk.wav"}, {"id": "b", "audio": "missing.wav", "hyp": "stale"},
             {"id": "c", "audio": "bad.wav"}, {"id": "d", "audio": "jfk.wav"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    stats, progress = tr.Stats(), Recorder()
    out = list(tr.transcribe(tiny, mf.read_manifest(str(tmp_path / "m.jsonl")),
                             tr.Settings(batch_size=4, max_new_tokens=2), progress=progress, stats=stats))
    assert [r.record["id"] for r in out] == ["a", "b", "c", "d"]
    assert [r.error is None for r in out] == [True, False, False, True]
    assert out[1].record == {"id": "b", "audio": "missing.wav", "error": "no such audio file", "model": tiny.label}
    assert out[1].error is not None and out[1].error.subject == str(tmp_path / "missing.wav")
    assert "hyp" not in out[2].record and out[2].record["error"].startswith("cannot decode")
    assert (stats.done, stats.failed) == (2, 2) and stats.audio_s == pytest.approx(22.0)
    assert stats.rate > 0 and 0 < stats.rtf == pytest.approx(stats.elapsed / 22.0)
    assert progress.total == 4 and progress.done == 4 and "utt/s, RTF" in progress.items[0]


def test_long_audio_takes_the_long_form_path(tiny: md.Whisper, speech: Path, tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": str(speech / "long.wav")}) + "\n"
                                      + json.dumps({"audio": str(AUDIO / "jfk.wav")}) + "\n")
    out = list(tr.transcribe(tiny, mf.read_manifest(str(tmp_path / "m.jsonl")),
                             tr.Settings(batch_size=2, max_new_tokens=2, language="en")))
    assert all(r.error is None and isinstance(r.record["hyp"], str) for r in out)


def test_a_shorter_encoder_window(tiny_asr: Path, speech: Path, tmp_path: Path) -> None:
    """--chunk-length 10: 500 encoder positions (the first 500 of Whisper's 1500), 10 s features, and audio
    longer than 10 s in batches of its own on the long-form path."""
    w = md.load(str(tiny_asr), chunk_length=10)
    full = md.load(str(tiny_asr))
    enc = w.model.model.encoder
    assert enc.embed_positions.weight.shape[0] == w.model.config.max_source_positions == 500
    assert torch.equal(enc.embed_positions.weight, full.model.model.encoder.embed_positions.weight[:500])
    assert w.processor.feature_extractor.nb_max_frames == 1000 and w.chunk_length == 10
    assert tr.batches([5 * 16000, 12 * 16000, 8 * 16000], 4, short=10 * 16000) == [[1], [2, 0]]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": k, "audio": str(a)}) + "\n" for k, a in
                                              [("jfk", AUDIO / "jfk.wav"), ("long", speech / "long.wav")]))
    out = list(tr.transcribe(w, mf.read_manifest(str(tmp_path / "m.jsonl")),
                             tr.Settings(batch_size=2, max_new_tokens=2, language="en")))
    assert [r.record["id"] for r in out] == ["jfk", "long"] and all(r.error is None for r in out)
    with pytest.raises(UsageError, match="outside Whisper's 30 s window"):
        md.set_chunk_length(w, 0)


def test_beam_search_and_translation_run(tiny: md.Whisper) -> None:
    utts = mf.read_manifest(str(AUDIO / "english.jsonl"))[:3]
    for settings in (tr.Settings(beam_size=3, batch_size=2, max_new_tokens=3, language="en"),
                     tr.Settings(task="translate", batch_size=2, max_new_tokens=3, language="pt")):
        out = list(tr.transcribe(tiny, utts, settings))
        assert [r.record["id"] for r in out] == [u.record["id"] for u in utts]
        assert all(r.error is None and isinstance(r.record["hyp"], str) for r in out)


@pytest.mark.parametrize(("language", "task", "want"), [
    (None, None, {"task": "transcribe"}), ("pt", None, {"language": "pt", "task": "transcribe"}),
    ("Portuguese", None, {"language": "pt", "task": "transcribe"}),
    ("<|de|>", "translate", {"language": "de", "task": "translate"}), (None, "transcribe", {"task": "transcribe"}),
])
def test_language_and_task(tiny: md.Whisper, language: str | None, task: str | None, want: dict[str, str]) -> None:
    assert md.generation_options(tiny, language, task) == want


@pytest.mark.parametrize(("settings", "subject"), [
    (tr.Settings(language="xx"), "--language"), (tr.Settings(batch_size=0), "--batch-size"),
    (tr.Settings(beam_size=0), "--beam-size"), (tr.Settings(max_new_tokens=0), "--max-new-tokens"),
    (tr.Settings(max_new_tokens=445), "--max-new-tokens"),
])
def test_bad_settings(tiny: md.Whisper, settings: tr.Settings, subject: str) -> None:
    with pytest.raises(UsageError) as e:
        tr.check_settings(tiny, settings)
    assert e.value.subject == subject
    assert tr.check_settings(tiny, tr.Settings(max_new_tokens=444))["max_new_tokens"] == 444


def test_suppress_by_index() -> None:
    from asrmerge.asr.suppress import Suppress

    p = Suppress([5, 1, 5], [2])
    p.set_begin_index(3)
    scores = torch.zeros(2, 8)
    first = p(torch.zeros(2, 3, dtype=torch.long), scores)  # the first generated position
    later = p(torch.zeros(2, 4, dtype=torch.long), scores)
    inf = float("-inf")
    assert first.tolist() == [[0, inf, inf, 0, 0, inf, 0, 0]] * 2
    assert later.tolist() == [[0, inf, 0, 0, 0, inf, 0, 0]] * 2
    assert scores.eq(0).all()  # not changed in place


def test_dtypes() -> None:
    """The default dtype per device (the device itself: tests/test_device.py)."""
    assert md.resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert md.resolve_dtype(None, torch.device("cuda")) == torch.float16
    assert md.resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_model_dtype_and_tied_output(tiny_asr: Path) -> None:
    w = md.load(str(tiny_asr), dtype=torch.bfloat16)
    assert {p.dtype for p in w.model.parameters()} == {torch.bfloat16}
    assert w.model.proj_out.weight is w.model.model.decoder.embed_tokens.weight
    ref = tensors(tiny_asr)
    got = w.model.state_dict()
    assert all(torch.equal(got[n], ref[n].to(torch.bfloat16)) for n in ref)


def test_a_task_vector_is_not_a_model(tiny_asr: Path, tmp_path: Path) -> None:
    from asrmerge import taskvectors

    taskvectors.make(str(tiny_asr), str(tiny_asr), str(tmp_path / "tv.safetensors"))
    with pytest.raises(InputError, match="is a task vector, not a model") as e:
        md.load(str(tmp_path / "tv.safetensors"), config_dir=tiny_asr)
    assert "taskvec --apply" in str(e.value.hint)


def test_weights_that_do_not_fit_the_config(tiny_asr: Path, tmp_path: Path) -> None:
    sd = tensors(tiny_asr)
    sd["model.encoder.layers.0.fc1.weight"] = torch.zeros(48, 16)
    del sd["model.decoder.layer_norm.bias"]
    save_file(sd, tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match=r"tensor model.decoder.layer_norm.bias is missing \(and 1 more\)"):
        md.load(str(tmp_path / "bad.safetensors"), config_dir=tiny_asr)


def test_a_bare_safetensors_file_needs_config(tiny_asr: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_asr / "model.safetensors", tmp_path / "m.safetensors")
    with pytest.raises(UsageError, match="has no config.json") as e:
        md.load(str(tmp_path / "m.safetensors"))
    assert "--config DIR" in str(e.value.hint)
    assert md.load(str(tmp_path / "m.safetensors"), config_dir=tiny_asr).multilingual
