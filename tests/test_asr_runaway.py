"""Runaway decoding: the default token budget from the audio's duration, and the truncated / repetition marks."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrmerge.asr import audio
from asrmerge.asr import decoding as tr
from asrmerge.asr import model as md
from asrmerge.asr.runaway import repeats, token_budget
from tests.conftest import AUDIO


@pytest.mark.parametrize(("text", "flag"), [
    ("And so my fellow Americans Americans Americans Americans Americans", True),
    ("A tttttttttttttttttttttttttttttttttttttttttttttt", True),
    ("todem a todem a todem a todem a todem a todem a", True),
    ("Thank you for watching. Thank you for watching. Thank you for watching. Thank you for watching.", True),
    ("哈" * 40, True),
    ("And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
     False),
    ("no, no, no, no. I said no.", False),  # four times, but 16 characters
    ("very very very good", False),
    ("um dois três quatro cinco seis sete oito nove dez", False),
    ("Thank you for watching. Thank you for watching. Thank you for watching.", False),  # three times
    ("", False),
])
def test_the_repetition_rule(text: str, flag: bool) -> None:
    assert repeats(text) is flag


def test_the_token_budget() -> None:
    """ceil(12 x seconds) + 16, within the decoder's room."""
    assert token_budget(11.0, 444) == 148
    assert token_budget(2.5, 444) == 46
    assert token_budget(4.5, 444) == 70  # Hindi's pangram needs 56
    assert token_budget(30, 444) == 376 and token_budget(40, 444) == 444
    assert token_budget(0.0, 444) == 16


@pytest.fixture(scope="module")
def tiny(tiny_asr: Path) -> md.Whisper:
    return md.load(str(tiny_asr))


def test_the_default_budget_follows_the_longest_utterance(tiny: md.Whisper) -> None:
    """The random model never ends a text: by default it stops at 148 tokens for JFK's 11 s, not at 444.

    A batch of JFK and a 2.6 s clip shares JFK's budget; each hypothesis is marked truncated.
    """
    jfk = audio.load(AUDIO / "jfk.wav")
    short = audio.load(AUDIO / "sense_and_sensibility_01_austen_64kb-0880.wav")
    assert audio.duration(jfk) == 11.0 and audio.duration(short) < 3
    opts = tr.check_settings(tiny, tr.Settings(language="en"))
    assert "max_new_tokens" not in opts

    def at(n: int | None, clips: list) -> list[tr.Hypothesis]:
        return tr.generate(tiny, clips, {**opts, "max_new_tokens": n} if n else opts)

    default = at(None, [jfk, short])
    assert default == at(148, [jfk, short])
    assert default[0].text != at(149, [jfk, short])[0].text
    assert all(h.truncated and h.language == "en" for h in default)
    alone = at(None, [short])  # on its own, the short clip gets its own (smaller) budget
    assert alone == at(token_budget(audio.duration(short), 444), [short]) and alone[0].text != default[1].text


def test_marks_and_the_language_reach_the_records(tiny: md.Whisper) -> None:
    from asrmerge.asr import manifest as mf

    utts = mf.read_manifest(str(AUDIO / "english.jsonl"))[:2]
    stats = tr.Stats()
    out = [r.record for r in tr.transcribe(tiny, utts, tr.Settings(batch_size=2, language="en"), stats=stats)]
    assert all(r["truncated"] is True and r["hyp_language"] == "en" for r in out)
    assert stats.truncated == 2 and stats.ran_away == 2
    # an output fed back as a manifest: the old hypothesis, its language and its marks do not pass through
    stale = {"hyp": "x", "hyp_language": "xx", "repetition": True, "truncated": False}
    again = [mf.Utterance(u.line, {**u.record, **stale}, u.path, u.key) for u in utts[:1]]
    rec = next(iter(tr.transcribe(tiny, again, tr.Settings(language="en", max_new_tokens=5)))).record
    assert rec["hyp"] != "x" and rec["hyp_language"] == "en" and rec["truncated"] is True
    assert rec.get("repetition", False) == repeats(rec["hyp"])
