"""Text normalizers applied to reference and hypothesis before scoring.

- ``whisper-en``: Whisper's English normalizer (openai-whisper's ``EnglishTextNormalizer``, which the Open
  ASR Leaderboard uses): lower case, no bracketed or parenthesised words, no fillers (hmm, uh, um),
  contractions expanded (let's -> let us), spelled-out numbers and currencies as digits (twenty nineteen ->
  2019, two dollars -> $2), British spellings as American (colour -> color), symbols and diacritics
  removed. English only: it strips accents (três -> tres) and reads English number words.
- ``basic``: Whisper's ``BasicTextNormalizer``, for any language: lower case, bracketed and parenthesised
  words removed, Unicode marks, symbols and punctuation replaced by spaces (NFKC; letters with diacritics
  are kept), whitespace collapsed.
- ``none``: the text as it is.

The classes are transformers' ports of openai-whisper's normalizers (they pass openai-whisper's own test
cases, reproduced in ``tests/test_asr_normalizers.py``); the British-American mapping is openai-whisper's
``english.json`` (MIT), shipped in ``asrmerge/asr/data`` (see the NOTICE there).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from types import ModuleType
from typing import Any

from asrmerge.errors import UsageError

NAMES = ("whisper-en", "basic", "none")


def _identity(text: str) -> str:
    return text


@cache
def get(name: str) -> Callable[[str], str]:
    """The normalizer called ``name``.

    Args:
        name: one of :data:`NAMES`.
    Returns:
        A function from text to normalized text.
    Raises:
        UsageError: an unknown name.
    """
    if name == "none":
        return _identity
    if name == "basic":
        basic: Callable[[str], str] = _port().BasicTextNormalizer()
        return basic
    if name == "whisper-en":
        english: Callable[[str], str] = _port().EnglishTextNormalizer(spelling_mapping())
        return english
    raise UsageError(f"unknown normalizer {name!r}", subject="--normalizer", hint=f"use one of {', '.join(NAMES)}")


@cache
def _port() -> Any:
    """transformers' ``english_normalizer`` module, without importing the rest of transformers.

    The module is self-contained (re, unicodedata, fractions, regex); loading its file directly keeps
    ``asrmerge wer`` starting in a fraction of a second instead of the seconds ``import transformers`` takes.
    Falls back to the ordinary import if the file is not where transformers keeps it.
    """
    spec = importlib.util.find_spec("transformers")  # finds the package without running its __init__
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = f"{root}/models/whisper/english_normalizer.py"
            file_spec = importlib.util.spec_from_file_location("asrmerge._whisper_english_normalizer", path)
            if file_spec is not None and file_spec.loader is not None:
                module: ModuleType = importlib.util.module_from_spec(file_spec)
                try:
                    file_spec.loader.exec_module(module)
                except (OSError, ImportError):
                    continue
                return module
    from transformers.models.whisper import english_normalizer

    return english_normalizer


def spelling_mapping() -> dict[str, str]:
    """openai-whisper's British-to-American spelling table (``english.json``, 1,739 entries)."""
    data = resources.files("asrmerge.asr").joinpath("data/english.json").read_text(encoding="utf-8")
    mapping: dict[str, str] = json.loads(data)
    return mapping
