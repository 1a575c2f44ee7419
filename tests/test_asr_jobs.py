"""asrmerge.asr.jobs: a transcribe run's checks, shard and resume, before any model or audio is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrmerge.asr import jobs
from asrmerge.errors import InputError, UsageError


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"id": k, "audio": f"{k}.wav"}) + "\n" for k in "abcde"))
    return str(path)


def test_a_shard_of_the_manifest(manifest: str, tmp_path: Path) -> None:
    run = jobs.select(jobs.prepare("model/", manifest, str(tmp_path / "h.jsonl"), shard="2/2"))
    assert [u.key for u in run.items] == list("abcde")
    assert [u.key for u in run.selected] == [u.key for u in run.todo] == ["b", "d"]
    assert run.done == set() and run.extra == []
    auto = jobs.prepare("model/", manifest, "-", shard="auto", env={"SLURM_ARRAY_TASK_ID": "0",
                                                                  "SLURM_ARRAY_TASK_COUNT": "3"})
    assert [u.key for u in jobs.select(auto).todo] == ["a", "d"] and auto.shard.source == "Slurm array"


def test_resume_leaves_out_what_the_output_has(manifest: str, tmp_path: Path) -> None:
    out = tmp_path / "h.jsonl"
    out.write_text("".join(json.dumps({"id": k, "audio": f"{k}.wav", "hyp": "x", "model": "m"}) + "\n" for k in "bz"))
    run = jobs.select(jobs.prepare("model/", manifest, str(out), shard="2/2", resume=True))
    assert run.done == {"b", "z"} and [u.key for u in run.todo] == ["d"] and run.extra == ["z"]
    with jobs.output(run) as f:
        f.write(json.dumps({"id": "d", "audio": "d.wav", "hyp": "y", "model": "m"}) + "\n")
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["b", "z", "d"]


def test_an_empty_shard_still_leaves_its_file(manifest: str, tmp_path: Path) -> None:
    out = tmp_path / "h.9.jsonl"
    run = jobs.select(jobs.prepare("model/", manifest, str(out), shard="9/9"))
    assert run.todo == []
    with jobs.output(run):
        pass
    assert out.read_text() == ""


@pytest.mark.parametrize("kw,line", [
    ({"output": "-", "resume": True}, "--resume: needs -o FILE; write to a file: -o hyp.jsonl --resume"),
    ({"model": "-", "manifest": "-"}, "stdin ('-') can be only one input; give the manifest as a file"),
    ({"shard": "0/4"}, "--shard: '0/4': K must be between 1 and N"),
    ({"chunk_length": 31}, "--chunk-length: 31 s is outside Whisper's 30 s window"),
])
def test_usage_errors(manifest: str, tmp_path: Path, kw: dict, line: str) -> None:
    args = {"model": "model/", "manifest": manifest, "output": str(tmp_path / "h.jsonl"), **kw}
    with pytest.raises(UsageError) as e:
        jobs.prepare(args.pop("model"), args.pop("manifest"), args.pop("output"), **args)
    assert str(e.value).startswith(line)


def test_resume_appends_only_to_transcribe_outputs(manifest: str, tmp_path: Path) -> None:
    (tmp_path / "notes.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(InputError, match="is not an output of asrmerge transcribe"):
        jobs.prepare("model/", manifest, str(tmp_path / "notes.jsonl"), resume=True)
