"""asrmerge wer through real processes and pipes: exact documents, groups, --jsonl, --compare, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli
from tests.test_cli_taskvec import run_on_terminal

DATA = ROOT / "tests" / "data" / "wer"
A, B = str(DATA / "a.jsonl"), str(DATA / "b.jsonl")
NONE = {"error": 0, "no_reference": 0, "no_hypothesis": 0}


def one_error(r: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == code and len(err) == 1, r.stderr.decode()
    assert err[0].startswith("asrmerge wer: error: ")
    return err[0].removeprefix("asrmerge wer: error: ")


def test_golden_document_through_a_pipe() -> None:
    """cat a.jsonl | asrmerge wer --by domain: the figures counted by hand in tests/data/wer/README.md."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(f"cat {A} | {sys.executable} -m asrmerge wer --by domain --normalizer basic", shell=True,
                       capture_output=True, env=env)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert r.stdout.decode().count("\n") == 1
    assert json.loads(r.stdout) == {
        "metric": "wer", "normalizer": "basic", "ref_field": "text", "hyp_field": "hyp", "by": "domain",
        "groups": {
            "news": {"wer": 0.5, "errors": 5, "substitutions": 4, "deletions": 1, "insertions": 0, "hits": 5,
                     "ref_words": 10, "utterances": 2},
            "kids": {"wer": 5 / 11, "errors": 5, "substitutions": 2, "deletions": 3, "insertions": 0, "hits": 6,
                     "ref_words": 11, "utterances": 3}},
        "macro": {"wer": (0.5 + 5 / 11) / 2, "groups": 2},
        "micro": {"wer": 10 / 21, "errors": 10, "substitutions": 6, "deletions": 4, "insertions": 0, "hits": 11,
                  "ref_words": 21, "utterances": 5},
        "excluded": NONE}


def test_several_files_are_one_corpus() -> None:
    r = cli("wer", A, B, "--json")
    assert r.returncode == 0, r.stderr
    micro = json.loads(r.stdout)["micro"]
    assert (micro["errors"], micro["ref_words"], micro["utterances"]) == (15, 42, 10)


def test_jsonl_gives_each_record_its_figures() -> None:
    r = cli("wer", "--jsonl", B)
    assert r.returncode == 0
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    inputs = [json.loads(x) for x in Path(B).read_text().splitlines()]
    assert [{k: o[k] for k in i} for o, i in zip(out, inputs, strict=True)] == inputs
    assert [(o["wer"], o["insertions"], o["ref_words"]) for o in out] == [
        (0.25, 1, 4), (1 / 6, 0, 6), (0.0, 0, 3), (1 / 3, 0, 3), (0.4, 0, 5)]
    assert r.stderr.decode() == "WER 23.81% over 5 utterances (5 errors / 21)\n"


def test_normalizers_change_the_figures() -> None:
    figures = {}
    for name in ("none", "basic", "whisper-en"):
        r = cli("wer", B, "--normalizer", name)
        assert r.returncode == 0, r.stderr
        figures[name] = json.loads(r.stdout)["micro"]["errors"]
    # without normalizing, "there," vs "there" and "world!" vs "world." in u2 are two more substitutions
    assert figures == {"none": 7, "basic": 5, "whisper-en": 5}


def test_cer() -> None:
    r = cli("wer", "--cer", "-", input='{"text": "你好世界", "hyp": "你们好世界。"}\n'.encode())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["micro"] == {"cer": 0.25, "errors": 1, "substitutions": 0, "deletions": 0,
                                             "insertions": 1, "hits": 4, "ref_chars": 4, "utterances": 1}


def test_other_field_names() -> None:
    r = cli("wer", "--ref-field", "sentence", "--hyp-field", "pred", "--json",
            input=b'{"sentence": "a b c", "pred": "a c"}\n')
    assert r.returncode == 0 and json.loads(r.stdout)["micro"]["deletions"] == 1


def test_excluded_records_are_reported(tmp_path: Path) -> None:
    lines = ['{"id": "1", "text": "a b", "hyp": "a b"}', '{"id": "2", "text": "a", "error": "no such audio file"}',
             '{"id": "3", "hyp": "a"}']
    (tmp_path / "h.jsonl").write_text("\n".join(lines) + "\n")
    r = cli("wer", str(tmp_path / "h.jsonl"))
    assert r.returncode == 0
    assert r.stderr.decode() == (f"asrmerge wer: warning: {tmp_path / 'h.jsonl'}: 2 records excluded (1 with an error, "
                                 "1 without a reference); counted under \"excluded\"\n")
    assert json.loads(r.stdout)["excluded"] == {"error": 1, "no_reference": 1, "no_hypothesis": 0}
    r = cli("wer", str(tmp_path / "h.jsonl"), "-q")
    assert r.returncode == 0 and r.stderr == b""


def test_compare_golden_files() -> None:
    r = cli("wer", "--compare", A, B, "--seed", "3", "--bootstrap", "400")
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    doc = json.loads(r.stdout)
    assert doc["utterances"] == 5 and doc["a"]["file"] == A and doc["b"]["file"] == B
    assert (doc["a"]["wer"], doc["b"]["wer"]) == (10 / 21, 5 / 21)
    m = doc["mapsswe"]
    assert (m["segments"], m["mean"], m["sd"], m["better"], m["significant"]) == (5, 1.0, 1.0, "b", True)
    assert m["w"] == pytest.approx(5 ** 0.5) and m["p"] == pytest.approx(0.0253, abs=1e-4)
    boot = doc["bootstrap"]
    assert (boot["samples"], boot["seed"]) == (400, 3) and boot["ci95"][0] <= 5 / 21 <= boot["ci95"][1]
    again = cli("wer", "--compare", A, B, "--seed", "3", "--bootstrap", "400")
    assert again.stdout == r.stdout  # the seed fixes the interval


def test_compare_mismatched_sets_name_the_first_missing_id(tmp_path: Path) -> None:
    short = tmp_path / "b.jsonl"
    short.write_text("".join(x for x in Path(B).read_text().splitlines(keepends=True) if '"u2"' not in x))
    r = cli("wer", "--compare", A, str(short))
    assert one_error(r, 3) == (f"{short}: id 'u2' (line 2 of {A}) is not in {short}; score both systems on the "
                               "same utterances (the same manifest, every shard)")
    assert r.stdout == b""


def test_tables_on_a_terminal() -> None:
    out = run_on_terminal(["wer", A, "--by", "domain"])
    assert "micro (pooled)" in out and "macro (mean of 2 groups)" in out and "47.62%" in out and "45.45%" in out
    out = run_on_terminal(["wer", "--compare", A, B])
    assert "MAPSSWE" in out and "0.0253" in out and "B" in out and "+23.81" in out
    assert json.loads(run_on_terminal(["wer", A, "--json"]))["micro"]["errors"] == 10


@pytest.mark.parametrize(("args", "code", "line"), [
    (["--compare", A], 2, "--compare takes two inputs, got 1; usage: asrmerge wer --compare A B"),
    (["--json", "--jsonl", A], 2, "--json and --jsonl exclude each other; choose one"),
    (["--hyp-field", "prediction", A], 2, f'{A}: no record has a hypothesis field "prediction"; name it with --hyp-field'),
    (["--by", "speaker", A], 2, '--by: no record has a field "speaker"; group by a field the records have'),
    (["--bootstrap", "0", "--compare", A, B], 2, "--bootstrap: 0 resamples; use 1 or more (1000 is usual)"),
    (["-", "-"], 2, "stdin ('-') can be only one input"),
])
def test_usage_errors(args: list[str], code: int, line: str) -> None:
    assert one_error(cli("wer", *args, input=b""), code) == line


def test_malformed_input_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "h.jsonl").write_text('{"text": "a", "hyp": "a"}\n\n{"text": "a" "hyp": "a"}\n')
    r = cli("wer", str(tmp_path / "h.jsonl"))
    assert one_error(r, 3).startswith(f"{tmp_path / 'h.jsonl'}: line 3: not valid JSON (")


def test_empty_input() -> None:
    assert one_error(cli("wer", input=b""), 3) == "-: no records; is the input empty? did transcribe fail?"


@pytest.mark.parametrize("words", ["asrmerge wer --", "asrmerge transcribe --"])
def test_tab_completion_does_not_import_torch(words: str) -> None:
    code = ("import sys, atexit\n"
            "atexit.register(lambda: sys.stderr.write(f\"{'torch' in sys.modules} {'transformers' in sys.modules}\"))\n"
            "sys.argv[0] = 'asrmerge'\nfrom asrmerge.cli.main import main\nmain()")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_ASRMERGE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": "2"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "--normalizer" in r.stdout or "--shard" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == "False False"


def test_wer_starts_without_torch_or_transformers() -> None:
    """wer loads transformers' normalizer module by itself: scoring a pipe stays fast."""
    code = ("import sys, runpy\nsys.argv = ['asrmerge', 'wer', '--normalizer', 'whisper-en', '--json', sys.argv[1]]\n"
            "try:\n    runpy.run_module('asrmerge', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, A], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = r.stdout.decode().strip().splitlines()
    assert json.loads(lines[0])["normalizer"] == "whisper-en" and lines[-1] == "False False"
