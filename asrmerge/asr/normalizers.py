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

import json
from collections.abc import Callable
from functools import cache
from importlib import resources

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
        from transformers.models.whisper.english_normalizer import BasicTextNormalizer

        return BasicTextNormalizer()
    if name == "whisper-en":
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        return EnglishTextNormalizer(spelling_mapping())
    raise UsageError(f"unknown normalizer {name!r}", subject="--normalizer", hint=f"use one of {', '.join(NAMES)}")


def spelling_mapping() -> dict[str, str]:
    """openai-whisper's British-to-American spelling table (``english.json``, 1,739 entries)."""
    data = resources.files("asrmerge.asr").joinpath("data/english.json").read_text(encoding="utf-8")
    mapping: dict[str, str] = json.loads(data)
    return mapping
