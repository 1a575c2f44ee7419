"""Whisper's text normalizers: openai-whisper's own test cases, and the basic normalizer's definition.

The (input, expected) tables of ``NUMBERS``, ``SPELLING`` and ``TEXT`` are every case of openai-whisper's
``tests/test_normalizer.py`` (openai-whisper 20250625, MIT), which asserts them for ``EnglishNumberNormalizer``
and ``EnglishTextNormalizer`` (numbers), ``EnglishSpellingNormalizer`` (spelling) and ``EnglishTextNormalizer``
(text); ``--normalizer whisper-en`` must give the same results.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from asrmerge.asr import normalizers
from asrmerge.errors import UsageError

NUMBERS = [
    ("two", "2"), ("thirty one", "31"), ("five twenty four", "524"), ("nineteen ninety nine", "1999"),
    ("twenty nineteen", "2019"), ("two point five million", "2500000"), ("four point two billions", "4200000000s"),
    ("200 thousand", "200000"), ("200 thousand dollars", "$200000"), ("$20 million", "$20000000"),
    ("€52.4 million", "€52400000"), ("£77 thousands", "£77000s"), ("two double o eight", "2008"),
    ("three thousand twenty nine", "3029"), ("forty three thousand two hundred sixty", "43260"),
    ("forty three thousand two hundred and sixty", "43260"), ("nineteen fifties", "1950s"), ("thirty first", "31st"),
    ("thirty three thousand and three hundred and thirty third", "33333rd"), ("three billion", "3000000000"),
    ("millions", "1000000s"), ("july third twenty twenty", "july 3rd 2020"),
    ("august twenty sixth twenty twenty one", "august 26th 2021"), ("3 14", "3 14"), ("3.14", "3.14"),
    ("3 point 2", "3.2"), ("3 point 14", "3.14"), ("fourteen point 4", "14.4"), ("two point two five dollars", "$2.25"),
    ("two hundred million dollars", "$200000000"), ("$20.1 million", "$20100000"), ("ninety percent", "90%"),
    ("seventy six per cent", "76%"), ("double oh seven", "007"), ("double zero seven", "007"), ("nine one one", "911"),
    ("nine double one", "911"), ("one triple oh one", "10001"), ("two thousandth", "2000th"),
    ("thirty two thousandth", "32000th"), ("minus 500", "-500"), ("positive twenty thousand", "+20000"),
    ("two dollars and seventy cents", "$2.70"), ("3 cents", "¢3"), ("$0.36", "¢36"),
    ("three euros and sixty five cents", "€3.65"), ("three and a half million", "3500000"),
    ("forty eight and a half dollars", "$48.5"), ("b747", "b 747"), ("10 th", "10th"), ("10th", "10th"),
]
SPELLING = [("mobilisation", "mobilization"), ("cancelation", "cancellation")]
TEXT = [
    ("Let's", "let us"), ("he's like", "he is like"), ("she's been like", "she has been like"), ("10km", "10 km"),
    ("10mm", "10 mm"), ("RC232", "rc 232"),
    ("Mr. Park visited Assoc. Prof. Kim Jr.", "mister park visited associate professor kim junior"),
]
# BasicTextNormalizer, case by case from its definition: lower case; [..], <..> and (..) removed; after NFKC,
# every mark (M*), symbol (S*) and punctuation (P*) character becomes a space; whitespace runs become one space.
BASIC = [
    ("Hello, World!", "hello world "),
    ("Olá, mundo.", "olá mundo "),                              # precomposed letters are kept
    ("[NOISE] yes (laughs) <unk> no", " yes no"),
    ("Ça va? Ñandú", "ça va ñandú"),
    ("一二三。", "一二三 "),                                      # 。 is punctuation
    ("नमस्ते दुनिया.", "नमस त द न य "),                          # Devanagari vowel signs and virama are marks
    ("It's  3:00 p.m.", "it s 3 00 p m "),
    ("ﬁve ①", "five 1"),                                        # NFKC compatibility forms
]


@pytest.mark.parametrize(("text", "want"), NUMBERS)
def test_whisper_en_numbers(text: str, want: str) -> None:
    assert normalizers.get("whisper-en")(text) == want


@pytest.mark.parametrize(("text", "want"), NUMBERS)
def test_number_normalizer(text: str, want: str) -> None:
    from transformers.models.whisper.english_normalizer import EnglishNumberNormalizer

    assert EnglishNumberNormalizer()(text) == want


@pytest.mark.parametrize(("text", "want"), SPELLING)
def test_spelling(text: str, want: str) -> None:
    from transformers.models.whisper.english_normalizer import EnglishSpellingNormalizer

    assert EnglishSpellingNormalizer(normalizers.spelling_mapping())(text) == want
    assert normalizers.get("whisper-en")(text) == want


@pytest.mark.parametrize(("text", "want"), TEXT)
def test_whisper_en_text(text: str, want: str) -> None:
    assert normalizers.get("whisper-en")(text) == want


def test_whisper_en_fillers_brackets_and_british_spelling() -> None:
    assert normalizers.get("whisper-en")("Um, I think uh the colour is grey [NOISE] (laughs)") == "i think the color is gray"
    assert normalizers.get("whisper-en")("Olá, mundo três") == "ola mundo tres"  # English only: accents go


@pytest.mark.parametrize(("text", "want"), BASIC)
def test_basic(text: str, want: str) -> None:
    assert normalizers.get("basic")(text) == want


def test_none_is_the_identity() -> None:
    assert normalizers.get("none")("  Hello, World! ") == "  Hello, World! "


def test_unknown_normalizer() -> None:
    with pytest.raises(UsageError, match="unknown normalizer 'english'") as e:
        normalizers.get("english")
    assert "whisper-en, basic, none" in str(e.value.hint)


def test_spelling_table_is_openai_whispers() -> None:
    """The vendored english.json is byte for byte openai-whisper 20250625's (NOTICE.md names it)."""
    data = resources.files("asrmerge.asr").joinpath("data/english.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "6607f948be9824d2e1b2fa2223cd94c06c45afa4e05ea0e3d5e1f2bdffde2465"
    assert len(normalizers.spelling_mapping()) == 1739
    notice = resources.files("asrmerge.asr").joinpath("data/NOTICE.md").read_text()
    assert "openai-whisper" in notice and "MIT" in notice
