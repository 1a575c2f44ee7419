"""MAPSSWE and the paired bootstrap, checked against a worked example computed by hand.

Worked example (tests/data/wer/{a,b}.jsonl, edits counted in tests/data/wer/README.md): five utterances,
system A makes 2, 0, 3, 1, 4 errors and system B 1, 0, 1, 1, 2, so

    Z_i = N_A,i - N_B,i = 1, 0, 2, 0, 2                         n = 5
    mean   m   = (1 + 0 + 2 + 0 + 2) / 5 = 1
    variance s^2 = ((1-1)^2 + (0-1)^2 + (2-1)^2 + (0-1)^2 + (2-1)^2) / (5 - 1) = 4 / 4 = 1,  s = 1
    W = m / (s / sqrt(n)) = 1 / (1 / sqrt 5) = sqrt 5 = 2.2361
    p = 2 (1 - Phi(2.2361)); from a normal table Phi(2.23) = 0.98713, Phi(2.24) = 0.98745, so by
        linear interpolation Phi(2.2361) = 0.98713 + 0.61 * 0.00032 = 0.98733 and p = 0.0253.

p < 0.05: the systems differ, and B (fewer errors: m > 0) is the better one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from asrmerge.asr import mapsswe
from asrmerge.asr import scoring as wer
from asrmerge.errors import InputError
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "wer"


def test_worked_example() -> None:
    r = mapsswe.mapsswe([2, 0, 3, 1, 4], [1, 0, 1, 1, 2])
    assert r["segments"] == 5 and r["unit"] == "utterance"
    assert r["mean"] == 1.0 and r["sd"] == 1.0
    assert r["w"] == pytest.approx(2.2361, abs=1e-4)
    assert r["p"] == pytest.approx(0.0253, abs=1e-4)
    assert r["significant"] is True and r["better"] == "b"


def test_symmetry() -> None:
    a, b = mapsswe.mapsswe([2, 0, 3, 1, 4], [1, 0, 1, 1, 2]), mapsswe.mapsswe([1, 0, 1, 1, 2], [2, 0, 3, 1, 4])
    assert b["w"] == -a["w"] and b["p"] == a["p"] and b["better"] == "a"


@pytest.mark.parametrize(("za", "zb", "w", "p", "better"), [
    ([1, 2, 3], [1, 2, 3], 0.0, 1.0, None),             # identical systems
    ([2, 3, 4], [1, 2, 3], math.inf, 0.0, "b"),         # A always one error worse: s = 0, |W| infinite
    ([0, 1, 0, 1], [1, 0, 1, 0], 0.0, 1.0, None),       # mean 0
])
def test_degenerate_cases(za: list[int], zb: list[int], w: float, p: float, better: str | None) -> None:
    r = mapsswe.mapsswe(za, zb)
    assert (r["w"], r["p"], r["better"]) == (w, p, better)


def test_too_few_segments() -> None:
    r = mapsswe.mapsswe([3], [1])
    assert r["segments"] == 1 and r["w"] is None and r["p"] is None and r["better"] is None


def test_not_significant() -> None:
    r = mapsswe.mapsswe([1, 0, 2, 1], [0, 1, 1, 1])  # Z = 1, -1, 1, 0: m = 0.25, s = 0.957, W = 0.522
    assert r["w"] == pytest.approx(0.25 / (math.sqrt(2.75 / 3) / 2)) and r["p"] > 0.5 and r["better"] is None


def test_bootstrap_by_hand() -> None:
    """The interval is the 2.5th and 97.5th percentiles of WER_A - WER_B over resampled utterance sets."""
    ea, eb, ref = [2, 0, 3, 1, 4], [1, 0, 1, 1, 2], [6, 3, 4, 3, 5]
    got = mapsswe.bootstrap(ea, eb, ref, samples=500, seed=7)
    idx = np.random.default_rng(7).integers(0, 5, size=(500, 5))  # the same draws, one resample per row
    diffs = [(sum(ea[i] for i in row) - sum(eb[i] for i in row)) / sum(ref[i] for i in row) for row in idx]
    assert got["ci95"] == [pytest.approx(np.percentile(diffs, 2.5)), pytest.approx(np.percentile(diffs, 97.5))]
    assert got["a_better_share"] == pytest.approx(np.mean(np.array(diffs) < 0))
    assert got["ci95"][0] <= 5 / 21 <= got["ci95"][1]  # the observed difference lies inside
    assert mapsswe.bootstrap(ea, eb, ref, samples=500, seed=7) == got          # a fixed seed repeats
    assert mapsswe.bootstrap(ea, eb, ref, samples=500, seed=8) != got


def test_bootstrap_chunks_do_not_change_the_interval_much() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(5, 20, 3000).tolist()
    ea = rng.binomial(ref, 0.2).tolist()
    eb = rng.binomial(ref, 0.1).tolist()  # B clearly better
    r = mapsswe.bootstrap(ea, eb, ref, samples=2000, seed=0)  # 2000 x 3000 draws: several chunks
    lo, hi = r["ci95"]
    true = (sum(ea) - sum(eb)) / sum(ref)
    assert 0 < lo < true < hi and hi - lo < 0.02 and r["a_better_share"] == 0.0


def test_identical_systems_have_a_zero_interval() -> None:
    r = mapsswe.bootstrap([1, 2, 0], [1, 2, 0], [3, 3, 3], samples=100, seed=0)
    assert r["ci95"] == [0.0, 0.0] and r["a_better_share"] == 0.0


def read(path: Path) -> list[wer.Item]:
    return wer.read([str(path)], wer.Fields())


def test_compare_golden_files() -> None:
    a, b = read(DATA / "a.jsonl"), read(DATA / "b.jsonl")
    pairs = mapsswe.pair(a, b, "a", "b")
    assert [x.key for x, _ in pairs] == [y.key for _, y in pairs] == ["u1", "u2", "u3", "u4", "u5"]  # A's order
    wer.score(a)
    wer.score(b)
    doc = mapsswe.compare(pairs, wer.Fields(), ("a", "b"), by="domain", samples=200, seed=1)
    assert doc["a"]["wer"] == 10 / 21 and doc["b"]["wer"] == 5 / 21 and doc["difference"] == pytest.approx(5 / 21)
    assert doc["mapsswe"]["w"] == pytest.approx(math.sqrt(5)) and doc["mapsswe"]["better"] == "b"
    assert doc["groups"]["news"]["a"]["wer"] == 0.5 and doc["groups"]["news"]["b"]["wer"] == 0.2
    assert doc["groups"]["kids"]["mapsswe"]["segments"] == 3
    assert doc["excluded"] == {"a": {"error": 0, "no_reference": 0, "no_hypothesis": 0},
                               "b": {"error": 0, "no_reference": 0, "no_hypothesis": 0}, "pairs": 0}


def lines(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_mismatched_sets_name_the_first_missing_id(tmp_path: Path) -> None:
    a = lines(tmp_path / "a.jsonl", [{"id": i, "text": "x", "hyp": "x"} for i in ("u1", "u2", "u3", "u4")])
    b = lines(tmp_path / "b.jsonl", [{"id": i, "text": "x", "hyp": "x"} for i in ("u1", "u4", "u9")])
    with pytest.raises(InputError) as e:
        mapsswe.pair(read(a), read(b), "a.jsonl", "b.jsonl")
    assert str(e.value).startswith("b.jsonl: id 'u2' (line 2 of a.jsonl) is not in b.jsonl; score both systems")
    with pytest.raises(InputError, match=r"id 'u9' \(line 3 of b.jsonl\) is not in a.jsonl"):
        mapsswe.pair(read(a)[:1] + read(a)[3:], read(b), "a.jsonl", "b.jsonl")


def test_duplicate_and_missing_ids(tmp_path: Path) -> None:
    a = lines(tmp_path / "a.jsonl", [{"id": "u1", "text": "x", "hyp": "x"}, {"id": "u1", "text": "y", "hyp": "y"}])
    with pytest.raises(InputError, match="id 'u1' is on lines 1 and 2"):
        mapsswe.pair(read(a), read(a), "a", "a")
    c = lines(tmp_path / "c.jsonl", [{"text": "x", "hyp": "x"}])
    with pytest.raises(InputError, match=r'line 1: no "id" \(or "audio"\)'):
        mapsswe.pair(read(c), read(c), "c", "c")


def test_different_references(tmp_path: Path) -> None:
    a = lines(tmp_path / "a.jsonl", [{"id": "u1", "text": "the cat", "hyp": "x"}])
    b = lines(tmp_path / "b.jsonl", [{"id": "u1", "text": "the dog", "hyp": "x"}])
    with pytest.raises(InputError, match="id 'u1': the references differ"):
        mapsswe.pair(read(a), read(b), "a", "b")


def test_excluded_pairs_leave_both_systems(tmp_path: Path) -> None:
    a = lines(tmp_path / "a.jsonl", [{"id": "u1", "text": "a b", "hyp": "a b"}, {"id": "u2", "text": "c", "hyp": "c"},
                                     {"id": "u3", "text": "d e", "hyp": "d"}])
    b = lines(tmp_path / "b.jsonl", [{"id": "u1", "text": "a b", "hyp": "a"}, {"id": "u2", "text": "c", "error": "x"},
                                     {"id": "u3", "text": "d e", "hyp": "d e"}])
    ia, ib = read(a), read(b)
    pairs = mapsswe.pair(ia, ib, "a", "b")
    wer.score(ia)
    wer.score(ib)
    doc = mapsswe.compare(pairs, wer.Fields(), ("a", "b"))
    assert doc["utterances"] == 2 and doc["a"]["ref_words"] == doc["b"]["ref_words"] == 4
    assert doc["excluded"]["b"]["error"] == 1 and doc["excluded"]["pairs"] == 1
