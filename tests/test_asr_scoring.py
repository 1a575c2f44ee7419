"""WER and CER: (ref, hyp, expected) tables, jiwer's own corpus figures, groups, and excluded records."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrmerge.asr import scoring as wer
from asrmerge.errors import InputError, UsageError
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "wer"

# (reference, hypothesis, substitutions, deletions, insertions, rate), normalizer "none", WER
CASES = [
    ("a b c", "a b c", 0, 0, 0, 0.0),
    ("a b c", "a x c", 1, 0, 0, 1 / 3),
    ("a b c", "a c", 0, 1, 0, 1 / 3),
    ("a b c", "a b c d", 0, 0, 1, 1 / 3),
    ("a b c", "", 0, 3, 0, 1.0),
    ("a b", "x y z w", 2, 0, 2, 2.0),          # WER can exceed 1
    ("", "a b", 0, 0, 2, None),                # no reference words: no rate, but the insertions count
    ("", "", 0, 0, 0, None),
    ("the cat sat", "cat sat the", 0, 1, 1, 2 / 3),
]
# (reference, hypothesis, S, D, I, CER): every character counts, spaces too
CER_CASES = [
    ("你好世界", "你好世界", 0, 0, 0, 0.0),
    ("你好世界", "你们好世界", 0, 0, 1, 0.25),
    ("ab cd", "abcd", 0, 1, 0, 0.2),
    ("abc", "xbc", 1, 0, 0, 1 / 3),
]


def items(pairs: list[tuple[str, str]], **extra: object) -> list[wer.Item]:
    return [wer.Item("-", i + 1, {"id": str(i), **extra}, ref=r, hyp=h) for i, (r, h) in enumerate(pairs)]


@pytest.mark.parametrize(("ref", "hyp", "s", "d", "i", "rate"), CASES)
def test_word_edits(ref: str, hyp: str, s: int, d: int, i: int, rate: float | None) -> None:
    (it,) = items([(ref, hyp)])
    wer.score([it])
    c = it.counts
    assert (c.substitutions, c.deletions, c.insertions, c.utterances) == (s, d, i, 1)
    assert c.rate == pytest.approx(rate) if rate is not None else c.rate is None


@pytest.mark.parametrize(("ref", "hyp", "s", "d", "i", "rate"), CER_CASES)
def test_character_edits(ref: str, hyp: str, s: int, d: int, i: int, rate: float) -> None:
    (it,) = items([(ref, hyp)])
    wer.score([it], cer=True)
    assert (it.counts.substitutions, it.counts.deletions, it.counts.insertions) == (s, d, i)
    assert it.counts.rate == pytest.approx(rate) == pytest.approx(jiwer.cer(ref, hyp))


words = st.lists(st.sampled_from("a b c d e the of and".split()), max_size=12).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(words.filter(bool), words), min_size=1, max_size=20))
def test_corpus_figures_are_jiwers(pairs: list[tuple[str, str]]) -> None:
    """Micro WER, S, D, I and hits equal jiwer.process_words on the same texts; utterances add up to it."""
    its = items(pairs)
    wer.score(its)
    doc = wer.summary(its, wer.Fields(normalizer="none"))
    ref = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    m = doc["micro"]
    assert (m["substitutions"], m["deletions"], m["insertions"], m["hits"]) == (
        ref.substitutions, ref.deletions, ref.insertions, ref.hits)
    assert m["wer"] == pytest.approx(ref.wer) and m["utterances"] == len(pairs)
    assert sum(it.counts.errors for it in its) == m["errors"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(words.filter(bool), words), min_size=1, max_size=10))
def test_corpus_cer_is_jiwers(pairs: list[tuple[str, str]]) -> None:
    its = items(pairs)
    wer.score(its, cer=True)
    doc = wer.summary(its, wer.Fields(normalizer="none", cer=True))
    assert doc["micro"]["cer"] == pytest.approx(jiwer.cer([r for r, _ in pairs], [h for _, h in pairs]))


def test_golden_file_by_domain() -> None:
    """tests/data/wer/a.jsonl, counted by hand in tests/data/wer/README.md."""
    fields = wer.Fields(normalizer="basic")
    its = wer.read([str(DATA / "a.jsonl")], fields)
    wer.score(its)
    doc = wer.summary(its, fields, by="domain")
    assert doc["micro"] == {"wer": 10 / 21, "errors": 10, "substitutions": 6, "deletions": 4, "insertions": 0,
                            "hits": 11, "ref_words": 21, "utterances": 5}
    assert list(doc["groups"]) == ["news", "kids"]  # in order of first appearance
    assert doc["groups"]["news"]["wer"] == 0.5 and doc["groups"]["kids"]["wer"] == pytest.approx(5 / 11)
    assert doc["macro"] == {"wer": pytest.approx((0.5 + 5 / 11) / 2), "groups": 2}
    assert doc["excluded"] == {"error": 0, "no_reference": 0, "no_hypothesis": 0}
    assert [wer.utterance_record(it, fields)["wer"] for it in its] == [2 / 6, 0.0, 3 / 4, 1 / 3, 4 / 5]


def test_excluded_records_are_counted_not_dropped(tmp_path: Path) -> None:
    recs = [{"id": "a", "text": "x y", "hyp": "x y", "domain": "d"}, {"id": "b", "text": "x", "error": "no such audio file"},
            {"id": "c", "hyp": "x"}, {"id": "d", "text": "x"}, {"id": "e", "text": "x", "hyp": "z"}]
    (tmp_path / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    fields = wer.Fields()
    its = wer.read([str(tmp_path / "h.jsonl")], fields)
    wer.score(its)
    doc = wer.summary(its, fields, by="domain")
    assert doc["excluded"] == {"error": 1, "no_reference": 1, "no_hypothesis": 1}
    assert doc["micro"]["utterances"] == 2 and doc["micro"]["errors"] == 1
    assert list(doc["groups"]) == ["d", "(none)"]
    out = [wer.utterance_record(it, fields) for it in its]
    assert [r.get("excluded") for r in out] == [None, "error", "no_reference", "no_hypothesis", None]
    assert out[1] == {**recs[1], "wer": None, "excluded": "error"}
    assert wer.describe(doc["excluded"]) == "1 with an error, 1 without a reference, 1 without a hypothesis"


def test_fields_are_configurable(tmp_path: Path) -> None:
    (tmp_path / "h.jsonl").write_text('{"ref": "Hello world", "pred": "hello, world"}\n')
    fields = wer.Fields(ref="ref", hyp="pred", normalizer="whisper-en")
    its = wer.read([str(tmp_path / "h.jsonl")], fields)
    wer.score(its)
    assert its[0].counts.errors == 0 and its[0].ref == "hello world"


def test_nothing_to_score(tmp_path: Path) -> None:
    (tmp_path / "h.jsonl").write_text('{"text": "a", "prediction": "a"}\n')
    its = wer.read([str(tmp_path / "h.jsonl")], wer.Fields())
    with pytest.raises(UsageError, match='no record has a hypothesis field "hyp"'):
        wer.require_scorable(its, wer.Fields(), "h.jsonl")
    its = wer.read([str(tmp_path / "h.jsonl")], wer.Fields(ref="reference", hyp="prediction"))
    with pytest.raises(UsageError, match='no record has a reference field "reference"'):
        wer.require_scorable(its, wer.Fields(ref="reference"), "h.jsonl")
    with pytest.raises(InputError, match="no records"):
        wer.require_scorable([], wer.Fields(), "h.jsonl")


def test_a_text_that_is_not_a_string(tmp_path: Path) -> None:
    (tmp_path / "h.jsonl").write_text('{"text": "a", "hyp": "a"}\n{"text": 3, "hyp": "a"}\n')
    with pytest.raises(InputError, match='line 2: "text" is a int'):
        wer.read([str(tmp_path / "h.jsonl")], wer.Fields())


def test_group_field_nobody_has() -> None:
    its = items([("a", "a")])
    wer.score(its)
    with pytest.raises(UsageError, match='no record has a field "domain"'):
        wer.summary(its, wer.Fields(), by="domain")
