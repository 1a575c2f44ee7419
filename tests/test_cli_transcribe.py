"""asrmerge transcribe through real processes: records, order, shards, resume, bad audio, usage errors."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asrmerge.io.jsonl import dumps
from tests.conftest import AUDIO, ROOT, cli, read_pty

MANIFEST = AUDIO / "english.jsonl"
FAST = ["--batch-size", "1", "--max-new-tokens", "2", "--language", "en"]


def error_lines(r: subprocess.CompletedProcess[bytes], code: int) -> list[str]:
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == code, r.stderr.decode()
    assert all(line.startswith("asrmerge transcribe: error: ") for line in err), err
    return err


@pytest.fixture(scope="module")
def whole(tiny_asr: Path) -> list[str]:
    """The whole manifest transcribed by the tiny model, one output line per utterance."""
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "-q")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    return r.stdout.decode().splitlines(keepends=True)


def test_stdout_is_the_libraries_records_in_input_order(tiny_asr: Path, whole: list[str]) -> None:
    from asrmerge.asr import decoding as tr
    from asrmerge.asr import manifest as mf
    from asrmerge.asr import model as md

    w = md.load(str(tiny_asr))
    want = [dumps(r.record) + "\n" for r in tr.transcribe(w, mf.read_manifest(str(MANIFEST)),
                                                           tr.Settings(batch_size=1, max_new_tokens=2, language="en"))]
    assert whole == want
    inputs = [json.loads(x) for x in MANIFEST.read_text().splitlines()]
    for line, rec in zip(whole, inputs, strict=True):
        out = json.loads(line)
        # the random model never ends a text: every hypothesis stops at --max-new-tokens 2
        assert out == {**rec, "hyp": out["hyp"], "hyp_language": "en", "truncated": True, "model": str(tiny_asr)}
        assert out["hyp"]


def test_bad_audio_is_reported_and_the_run_goes_on(tiny_asr: Path, speech: Path, tmp_path: Path) -> None:
    lines = [{"id": "ok1", "audio": str(AUDIO / "jfk.wav")}, {"id": "gone", "audio": "missing.wav", "domain": "x"},
             {"id": "junk", "audio": str(speech / "broken.wav")}, {"id": "ok2", "audio": str(speech / "jfk.flac")}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = cli("transcribe", str(tiny_asr), str(tmp_path / "m.jsonl"), *FAST, "-q")
    err = error_lines(r, 1)
    assert err[0] == (f"asrmerge transcribe: error: {tmp_path / 'missing.wav'}: no such audio file; "
                      "check the manifest's \"audio\" path")
    assert err[1].startswith(f"asrmerge transcribe: error: {speech / 'broken.wav'}: cannot decode (ffmpeg: ")
    assert err[2] == ('asrmerge transcribe: error: 2 of 4 utterances failed; their records have an "error" field '
                      'and no "hyp"')
    assert len(err) == 3
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == ["ok1", "gone", "junk", "ok2"]
    assert out[1] == {"id": "gone", "audio": "missing.wav", "domain": "x", "error": "no such audio file",
                      "model": str(tiny_asr)}
    assert ["hyp" in o for o in out] == [True, False, False, True] and "error" in out[2]


def test_strict_stops_at_the_first_bad_file(tiny_asr: Path, tmp_path: Path) -> None:
    lines = [{"id": "ok1", "audio": str(AUDIO / "jfk.wav")}, {"id": "gone", "audio": "missing.wav"},
             {"id": "ok2", "audio": str(AUDIO / "jfk.wav")}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = cli("transcribe", str(tiny_asr), str(tmp_path / "m.jsonl"), *FAST, "-q", "--strict")
    assert error_lines(r, 3) == [f"asrmerge transcribe: error: {tmp_path / 'missing.wav'}: no such audio file; "
                                 "check the manifest's \"audio\" path"]
    assert [json.loads(x)["id"] for x in r.stdout.decode().splitlines()] == ["ok1"]


def test_malformed_manifest_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav"}\n{"audio" "b.wav"}\n')
    r = cli("transcribe", "no-model-needed", str(tmp_path / "m.jsonl"))
    assert error_lines(r, 3) == [f"asrmerge transcribe: error: {tmp_path / 'm.jsonl'}: line 2: not valid JSON "
                                 "(Expecting ':' delimiter at column 10); "
                                 "each line must be one JSON object"]
    assert r.stdout == b""


def test_shards_put_together_are_the_whole_run(tiny_asr: Path, whole: list[str], tmp_path: Path) -> None:
    """Shard 1/2 by hand, shard 2/2 from a (0-based) Slurm array's variables: every record once."""
    r1 = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "--shard", "1/2", "-o", str(tmp_path / "h.1.jsonl"),
             "--device", "cpu", "--dtype", "fp32")  # the defaults on a CPU, spelt out
    assert r1.returncode == 0, r1.stderr
    assert "shard 1/2 (--shard): 3 of 6 utterances" in r1.stderr.decode()
    slurm = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "1"}
    r2 = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "--shard", "auto", env=slurm)
    assert r2.returncode == 0 and "shard 2/2 (Slurm array): 3 of 6 utterances" in r2.stderr.decode()
    first = (tmp_path / "h.1.jsonl").read_text().splitlines(keepends=True)
    second = r2.stdout.decode().splitlines(keepends=True)
    assert first == whole[0::2] and second == whole[1::2]


def test_resume_finishes_an_interrupted_output(tiny_asr: Path, whole: list[str], tmp_path: Path) -> None:
    """A killed job left two records, an error record and half a line: --resume ends with the whole run."""
    out = tmp_path / "h.jsonl"
    failed = {**json.loads(whole[3]), "error": "no such audio file"}
    del failed["hyp"]
    out.write_text(whole[0] + whole[1] + json.dumps(failed) + "\n" + whole[2][:40])
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "-o", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "--resume: 2 of 6 already in" in r.stderr.decode()
    assert out.read_text().splitlines(keepends=True) == whole
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "-o", str(out), "--resume")
    assert r.returncode == 0 and "nothing to transcribe" in r.stderr.decode()
    assert out.read_text().splitlines(keepends=True) == whole


def test_model_from_a_pipe_and_from_a_bare_file(tiny_asr: Path, whole: list[str], tmp_path: Path) -> None:
    """A .safetensors file (here on stdin) takes config, generation config and tokenizer from --config."""
    m = tmp_path / "m.jsonl"
    m.write_text("".join(MANIFEST.read_text().splitlines(keepends=True)[:2]))
    shutil.copy(AUDIO / "jfk.wav", tmp_path)
    shutil.copy(AUDIO / "sense_and_sensibility_01_austen_64kb-0870.wav", tmp_path)
    r = cli("transcribe", "-", str(m), "--config", str(tiny_asr), *FAST, "-q",
            input=(tiny_asr / "model.safetensors").read_bytes())
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["hyp"] for x in r.stdout.decode().splitlines()] == [json.loads(x)["hyp"] for x in whole[:2]]
    assert all(json.loads(x)["model"] == "-" for x in r.stdout.decode().splitlines())
    shutil.copy(tiny_asr / "model.safetensors", tmp_path / "w.safetensors")
    r = cli("transcribe", str(tmp_path / "w.safetensors"), str(m), *FAST)
    assert error_lines(r, 2) == [f"asrmerge transcribe: error: {tmp_path / 'w.safetensors'}: has no config.json beside "
                                 "its weights; pass --config DIR, the Hugging Face folder of the model it was made from"]


@pytest.mark.parametrize(("args", "line"), [
    (["--resume"], "--resume: needs -o FILE; write to a file: -o hyp.jsonl --resume"),
    (["--shard", "0/4"], "--shard: '0/4': K must be between 1 and N; K counts from 1: use 1/4 .. 4/4, "
                         "or --shard auto in a Slurm array"),
    (["--language", "klingon"], "--language: unknown language 'klingon'; use a code such as en, pt, de, zh "
                                "(see lang_to_id in generation_config.json)"),
    (["--device", "tpu"], "--device: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
    (["--chunk-length", "45"], "--chunk-length: 45 s is outside Whisper's 30 s window; use a whole number of "
                               "seconds from 1 to 30"),
])
def test_usage_errors(tiny_asr: Path, tmp_path: Path, args: list[str], line: str) -> None:
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *args, "-o", str(tmp_path / "h.jsonl") if "--resume" not in
            args else "-")
    assert error_lines(r, 2) == [f"asrmerge transcribe: error: {line}"]
    assert not (tmp_path / "h.jsonl").exists() or (tmp_path / "h.jsonl").read_text() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(tiny_asr: Path) -> None:
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), "--device", "cuda")
    assert error_lines(r, 2) == ["asrmerge transcribe: error: --device: CUDA is not available on this machine; "
                                 "use --device cpu"]


def test_on_a_terminal_progress_shows_speed_and_rtf(tiny_asr: Path) -> None:
    """stderr on a terminal: a progress bar with utt/s and RTF, and the closing summary (no CPU warning).

    The manifest comes on stdin, so its relative audio paths are read from the working folder.
    """
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}
    p = subprocess.Popen([sys.executable, "-m", "asrmerge", "transcribe", str(tiny_asr), "-", *FAST],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=AUDIO)
    os.close(slave)
    assert p.stdin is not None
    p.stdin.write(MANIFEST.read_bytes())
    p.stdin.close()
    err = read_pty(master)
    assert p.stdout is not None
    out = p.stdout.read()
    p.wait(timeout=300)
    assert p.returncode == 0 and len(out.splitlines()) == 6
    assert "transcribe" in err and "utt/s, RTF" in err and "6/6" in err
    assert "CUDA" not in err  # a CPU run is no cause for a warning
    assert "transcribed 6 utterances (35.7 s of audio) in " in err


def test_messages_of_a_cpu_run(tiny_asr: Path, tmp_path: Path) -> None:
    """No warning for running on the CPU; --shard auto outside Slurm and torchrun says so, once; "1 utterance";
    a missing file's error names the folder it was looked for in, with the manifest given by a relative path."""
    (tmp_path / "data").mkdir()
    shutil.copy(AUDIO / "jfk.wav", tmp_path / "data")
    (tmp_path / "data" / "m.jsonl").write_text('{"id": "a", "audio": "jfk.wav"}\n{"id": "b", "audio": "gone.wav"}\n')
    unset = {"SLURM_ARRAY_TASK_ID": "", "RANK": "", "WORLD_SIZE": ""}
    r = cli("transcribe", str(tiny_asr), "data/m.jsonl", *FAST, "--shard", "auto", cwd=tmp_path, env=unset)
    assert r.returncode == 1, r.stderr.decode()
    err = r.stderr.decode().splitlines()
    assert err[0] == ("asrmerge transcribe: warning: --shard auto: no Slurm array (SLURM_ARRAY_TASK_ID) or "
                      "torch.distributed (RANK, WORLD_SIZE) variables are set; transcribing the whole manifest as "
                      "shard 1/1")
    assert err[1] == (f"asrmerge transcribe: error: {tmp_path / 'data' / 'gone.wav'}: no such audio file; "
                      "check the manifest's \"audio\" path")
    assert err[2] == ('asrmerge transcribe: warning: 1 of 1 hypothesis ran away (1 stopped at the token limit '
                      'before the end, "truncated": true): jq -c \'select(.truncated or .repetition)\' lists them; '
                      'the limit is --max-new-tokens 2')
    assert err[3].startswith("transcribed 1 utterance (11.0 s of audio) in ")
    assert err[4] == ('asrmerge transcribe: error: 1 of 2 utterances failed; their records have an "error" field '
                      'and no "hyp"')
    assert len(err) == 5
    assert [json.loads(x)["id"] for x in r.stdout.decode().splitlines()] == ["a", "b"]


def test_the_default_token_limit_and_its_warning(tiny_asr: Path, tmp_path: Path) -> None:
    """Without --max-new-tokens, the random model (which never ends a text) stops at 12 x 11 s + 16 tokens for
    JFK, not at the decoder's 444: the record is marked, and one warning says how to lift the limit."""
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "jfk", "audio": str(AUDIO / "jfk.wav")}) + "\n")
    r = cli("transcribe", str(tiny_asr), str(tmp_path / "m.jsonl"), "--language", "en")
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["truncated"] is True and out["hyp_language"] == "en"
    looped = '; 1 repeats itself, "repetition": true' if out.get("repetition") else ""
    assert r.stderr.decode().splitlines()[0] == (
        'asrmerge transcribe: warning: 1 of 1 hypothesis ran away (1 stopped at the token limit before the end, '
        f'"truncated": true{looped}): jq -c \'select(.truncated or .repetition)\' lists them; the limit is 12 '
        'tokens per second of audio + 16; --max-new-tokens N lifts it')
    r = cli("transcribe", str(tiny_asr), str(tmp_path / "m.jsonl"), "--language", "en", "--max-new-tokens", "148",
            "-q")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    assert json.loads(r.stdout) == out  # the default for 11 s is 148 tokens


@pytest.mark.cuda
def test_cuda_fp16_transcribes_like_the_cpu(real_tiny_en: Path) -> None:
    """On a GPU the default is fp16: JFK still word for word, the LibriVox set as good as on the CPU (+2 points)."""
    runs = {}
    for device in ("cuda", "cpu"):
        r = cli("transcribe", str(real_tiny_en), str(MANIFEST), "--device", device)
        assert r.returncode == 0, r.stderr.decode()
        assert f"on {device}" in r.stderr.decode().splitlines()[-1]
        runs[device] = r.stdout
    docs = {}
    for device, out in runs.items():
        w = cli("wer", "--by", "set", "--normalizer", "whisper-en", "--json", input=out)
        docs[device] = json.loads(w.stdout)["groups"]
    assert docs["cuda"]["jfk"]["wer"] == 0.0
    assert docs["cuda"]["librivox"]["wer"] <= docs["cpu"]["librivox"]["wer"] + 0.02


def test_where_selects_records_by_field(tiny_asr: Path, whole: list[str], tmp_path: Path) -> None:
    """--where set=librivox keeps the five LibriVox records (as the whole run decoded them); two conditions must
    both hold; a record without the field is left out; a malformed condition is a usage error."""
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "--where", "set=librivox")
    assert r.returncode == 0, r.stderr
    assert "--where: 5 of 6 utterances" in r.stderr.decode()
    assert r.stdout.decode().splitlines(keepends=True) == whole[1:]
    ids = "sense_and_sensibility_01_austen_64kb-0880,jfk"
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "--where", "set=librivox,jfk", "--where", f"id={ids}",
            "-q")
    assert r.returncode == 0 and r.stdout.decode().splitlines(keepends=True) == [whole[0], whole[2]]
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), *FAST, "--where", "domain=x", "-q")
    assert r.returncode == 0 and r.stdout == b""
    r = cli("transcribe", str(tiny_asr), str(MANIFEST), "--where", "set")
    assert error_lines(r, 2) == ["asrmerge transcribe: error: --where: 'set' is not FIELD=VALUE; "
                                 "e.g. --where set=test --where domain=news,kids"]
