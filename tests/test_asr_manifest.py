"""Manifests: reading and checking them, shards (K/N and auto) and resuming an interrupted output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrmerge.asr import manifest as mf
from asrmerge.errors import InputError, UsageError


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    m = write(tmp_path / "sub" / "m.jsonl", '{"id": "a", "audio": "x/a.wav", "text": "hi", "domain": "news"}',
              "", '{"audio": "/abs/b.flac"}', '{"id": 7, "audio": "~/c.wav"}')
    items = mf.read_manifest(str(m))
    assert [u.path for u in items] == [tmp_path / "sub" / "x" / "a.wav", Path("/abs/b.flac"), Path.home() / "c.wav"]
    assert [u.key for u in items] == ["a", "/abs/b.flac", "7"]
    assert [u.line for u in items] == [1, 3, 4]
    assert items[0].record == {"id": "a", "audio": "x/a.wav", "text": "hi", "domain": "news"}


@pytest.mark.parametrize(("line", "message"), [
    ('{"audio": "a.wav"', "line 2: not valid JSON"),
    ('["a.wav"]', "line 2: a JSON list, not an object"),
    ('{"text": "no audio"}', 'line 2: no "audio" path'),
    ('{"audio": ""}', 'line 2: no "audio" path'),
    ('{"audio": 3}', 'line 2: no "audio" path'),
    ('{"audio": "a.wav", "id": [1]}', 'line 2: "id" is a list'),
])
def test_malformed_manifests_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    m = write(tmp_path / "m.jsonl", '{"audio": "ok.wav"}', line)
    with pytest.raises(InputError) as e:
        mf.read_manifest(str(m))
    assert e.value.subject == str(m) and e.value.message.startswith(message)


@pytest.mark.parametrize(("text", "index", "count"), [("1/1", 0, 1), ("1/8", 0, 8), ("3/8", 2, 8), ("8/8", 7, 8)])
def test_shard_k_of_n_counts_from_one(text: str, index: int, count: int) -> None:
    s = mf.parse_shard(text, {})
    assert (s.index, s.count, str(s)) == (index, count, text)


@pytest.mark.parametrize("text", ["0/8", "9/8", "3/0", "-1/4", "3", "3/", "/8", "a/b", "1/2/3", ""])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as e:
        mf.parse_shard(text, {})
    assert e.value.subject == "--shard"


@pytest.mark.parametrize(("env", "want"), [
    ({}, (0, 1)),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0"}, (3, 8)),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}, (0, 8)),   # --array=1-8
    ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}, (7, 8)),
    ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "14",
      "SLURM_ARRAY_TASK_STEP": "2"}, (3, 8)),                                                          # --array=0-14:2
    ({"RANK": "2", "WORLD_SIZE": "4"}, (2, 4)),                                                        # torchrun
    ({"RANK": "0", "WORLD_SIZE": "1"}, (0, 1)),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
      "RANK": "1", "WORLD_SIZE": "2"}, (3, 6)),                                                        # both: 3 x 2
])
def test_shard_auto(env: dict[str, str], want: tuple[int, int]) -> None:
    s = mf.parse_shard("auto", env)
    assert (s.index, s.count) == want


@pytest.mark.parametrize("env", [
    {"SLURM_ARRAY_TASK_ID": "3"},                                                                     # no count
    {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0"},
    {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "14", "SLURM_ARRAY_TASK_STEP": "2"},
    {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "8"},
    {"RANK": "4", "WORLD_SIZE": "4"},
])
def test_shard_auto_refuses_what_it_cannot_place(env: dict[str, str]) -> None:
    with pytest.raises(UsageError) as e:
        mf.parse_shard("auto", env)
    assert e.value.subject == "--shard auto"


@given(n=st.integers(0, 60), count=st.integers(1, 12))
def test_shards_partition_the_manifest(n: int, count: int) -> None:
    """Every record is in exactly one shard, in manifest order, and shard sizes differ by at most one."""
    items = [mf.Utterance(i + 1, {"audio": f"{i}.wav"}, Path(f"{i}.wav"), str(i)) for i in range(n)]
    shards = [mf.parse_shard(f"{k}/{count}", {}).select(items) for k in range(1, count + 1)]
    flat = [u.line for s in shards for u in s]
    assert sorted(flat) == list(range(1, n + 1))
    assert all(s == sorted(s, key=lambda u: u.line) for s in shards)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards == [mf.parse_shard(f"{k}/{count}", {}).select(items) for k in range(1, count + 1)]  # deterministic


def test_resume_keeps_finished_records(tmp_path: Path) -> None:
    out = write(tmp_path / "o.jsonl", '{"id": "a", "hyp": "x"}', '{"audio": "b.wav", "hyp": "y"}')
    before = out.read_bytes()
    assert mf.resume_done(out) == {"a", "b.wav"}
    assert out.read_bytes() == before  # nothing to repair: untouched


def test_resume_drops_errors_and_a_cut_last_line(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text('{"id": "a", "hyp": "x"}\n{"id": "b", "error": "no such audio file"}\n{"id": "c", "hyp": "z"}\n'
                   '{"id": "d", "hy')
    assert mf.resume_done(out) == {"a", "c"}
    assert out.read_text() == '{"id": "a", "hyp": "x"}\n{"id": "c", "hyp": "z"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["o.jsonl"]


def test_resume_ends_a_complete_last_line(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text('{"id": "a", "hyp": "x"}')
    assert mf.resume_done(out) == {"a"}
    assert out.read_text() == '{"id": "a", "hyp": "x"}\n'


def test_resume_of_nothing(tmp_path: Path) -> None:
    assert mf.resume_done(tmp_path / "new.jsonl") == set()
    assert not (tmp_path / "new.jsonl").exists()


def test_resume_refuses_a_damaged_file(tmp_path: Path) -> None:
    out = write(tmp_path / "o.jsonl", '{"id": "a", "hyp": "x"}', "not json", '{"id": "c", "hyp": "z"}')
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        mf.resume_done(out)
    assert out.read_text().count("\n") == 3


def test_duplicate_ids(tmp_path: Path) -> None:
    m = write(tmp_path / "m.jsonl", *(json.dumps({"id": i, "audio": "a.wav"}) for i in ("x", "y", "x")))
    with pytest.raises(InputError, match="id 'x' is on lines 1 and 3"):
        mf.check_unique(mf.read_manifest(str(m)), str(m))


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"audio": "a.wav"}\n{"audio": "b\xe9.wav"}\n', "line 2: not UTF-8 text (byte 0xe9 at column 13)"),
    (b"\x80\x04\x95garbage", "line 1: not UTF-8 text (byte 0x80 at column 1)"),
    (b'{"audio": ' + b"[" * 100_000 + b"\n", "line 1: JSON nested too deeply"),
])
def test_a_manifest_that_is_not_utf8_json_names_the_line(tmp_path: Path, raw: bytes, message: str) -> None:
    (tmp_path / "m.jsonl").write_bytes(raw)
    with pytest.raises(InputError) as e:
        mf.read_manifest(str(tmp_path / "m.jsonl"))
    assert str(e.value).startswith(f"{tmp_path / 'm.jsonl'}: {message}")


def test_resume_refuses_a_file_that_is_not_utf8_but_forgives_a_cut_character(tmp_path: Path) -> None:
    out = tmp_path / "h.jsonl"
    out.write_bytes(b'{"id": "a", "hyp": "p\xc3\xa3o", "model": "m"}\n{"id": "b", "hyp": "p\xc3')
    assert mf.resume_done(out) == {"a"}
    assert out.read_bytes() == b'{"id": "a", "hyp": "p\xc3\xa3o", "model": "m"}\n'
    out.write_bytes(b'{"id": "a", "hyp": "\xff", "model": "m"}\n{"id": "b", "model": "m"}\n')
    with pytest.raises(InputError, match="line 1: not UTF-8 text"):
        mf.resume_done(out)
