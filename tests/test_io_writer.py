"""Atomic output: a failure, a full disk or an interrupt leaves the old output or none, never a partial one."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from asrmerge.errors import AsrmergeError, InputError, UsageError
from asrmerge.io.checkpoint import open_checkpoint
from asrmerge.io.tensors import TensorInfo
from asrmerge.io.writer import (
    CheckpointWriter,
    check_destination,
    open_text,
    output_kind,
    sweep_temporaries,
    temporary_name,
    transcript_problem,
)

INFOS = [TensorInfo("a", (4, 4), "F32"), TensorInfo("b", (4,), "F16")]


def write_all(dest: str, fail_after: int | None = None, exc: BaseException | None = None, *,
              metadata: dict[str, str] | None = None, force: bool = False) -> None:
    with CheckpointWriter(dest, INFOS, metadata=metadata or {"k": "v", "asrmerge.version": "0"}, support={"config.json": b"{}"},
                          force=force) as w:
        for i, info in enumerate(INFOS):
            if fail_after is not None and i == fail_after:
                raise exc or RuntimeError("boom")
            w.write(info.name, torch.ones(info.shape))


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "asrmerge-tmp" in p.name or "asrmerge-old" in p.name]


@pytest.mark.parametrize("dest,kind", [("-", "stdout"), ("x.safetensors", "file"), ("x.st", "file"),
                                       ("out/", "folder"), ("merged", "folder")])
def test_output_kind(dest: str, kind: str) -> None:
    assert output_kind(dest) == kind


def test_file_is_written_with_metadata_and_cast(tmp_path: Path) -> None:
    write_all(str(tmp_path / "m.safetensors"))
    with open_checkpoint(str(tmp_path / "m.safetensors")) as c:
        assert c.metadata == {"format": "pt", "k": "v", "asrmerge.version": "0"}
        assert c.get("b").dtype == torch.float16
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(143)])
def test_failure_keeps_the_old_file(tmp_path: Path, exc: BaseException) -> None:
    dest = tmp_path / "m.safetensors"
    write_all(str(dest))
    old = dest.read_bytes()
    with pytest.raises(type(exc)):
        write_all(str(dest), fail_after=1, exc=exc)
    assert dest.read_bytes() == old
    assert leftovers(tmp_path) == []


def test_failure_leaves_no_new_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        write_all(f"{tmp_path}/out/", fail_after=1)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_an_earlier_output_folder_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with CheckpointWriter(f"{out}/", INFOS, metadata={"asrmerge.version": "0"}, shard_size=64) as w:
        for info in INFOS:
            w.write(info.name, torch.ones(info.shape))
    assert "model.safetensors.index.json" in {p.name for p in out.iterdir()}
    write_all(f"{out}/", metadata={"asrmerge.version": "1"})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dtype"] == "float32"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("files", [{"thesis.tex": "precious"}, {"config.json": "{}", "stale.bin": "x"},
                                   {"config.json": "{}"}])
def test_refuses_to_replace_a_folder_asrmerge_did_not_write(tmp_path: Path, files: dict[str, str]) -> None:
    (tmp_path / "home").mkdir()
    for name, text in files.items():
        (tmp_path / "home" / name).write_text(text)
    with pytest.raises(UsageError, match="refusing to replace it"):
        write_all(f"{tmp_path}/home/")
    assert {p.name: p.read_text() for p in (tmp_path / "home").iterdir()} == files


def test_full_disk_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from asrmerge.io import safetensors as st

    real = st.StreamWriter.write
    calls = {"n": 0}

    def full(self, tensor):  # the second tensor hits a full disk
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, tensor)

    monkeypatch.setattr(st.StreamWriter, "write", full)
    with pytest.raises(AsrmergeError, match="No space left.*free some disk space"):
        write_all(str(tmp_path / "m.safetensors"))
    assert list(tmp_path.iterdir()) == []


def test_missing_tensors_are_not_committed(tmp_path: Path) -> None:
    with pytest.raises(AsrmergeError, match="only 1 of 2"), \
            CheckpointWriter(str(tmp_path / "m.safetensors"), INFOS, metadata={}) as w:
        w.write("a", torch.ones(4, 4))
    assert list(tmp_path.iterdir()) == []


def test_out_of_order_write_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AsrmergeError, match="out of order"), \
            CheckpointWriter(str(tmp_path / "m.safetensors"), INFOS, metadata={}) as w:
        w.write("b", torch.ones(4))
    assert list(tmp_path.iterdir()) == []


def test_existing_files_and_devices_keep_their_kind(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    assert output_kind(str(tmp_path / "plain")) == "file"  # never turned into a folder
    assert output_kind("/dev/null") == "stream"
    assert output_kind("/dev/stdout") == "stream"
    assert check_destination("/dev/null").kind == "stream"


@pytest.mark.parametrize(("setup", "dest", "message"), [
    (lambda d: (d / "plain").write_text("x"), "plain", "plain: exists and is not an earlier asrmerge output"),
    (lambda d: (d / "plain").write_text("x"), "plain/", "plain/: is a file, not a folder"),
    (lambda d: (d / "m.safetensors").write_text("x"), "m.safetensors", "m.safetensors: exists and is not an earlier"),
    (lambda d: (d / "m.pt").write_text("x"), "m.pt", "m.pt: exists and is not an earlier"),
    (lambda d: None, ".", ".: is the current folder"),
    (lambda d: None, "nowhere/out/", "nowhere/out/: folder"),
], ids=["plain-file", "file-as-folder", "their-safetensors", "their-pt", "current-folder", "no-parent"])
def test_destinations_that_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup, dest: str,
                                       message: str) -> None:
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    with pytest.raises(UsageError) as e:
        check_destination(dest)
    assert str(e.value).startswith(message), str(e.value)


def test_an_input_is_never_the_output(tmp_path: Path) -> None:
    write_all(str(tmp_path / "in.safetensors"))
    for dest, what in ((tmp_path / "in.safetensors", "is the input"), (tmp_path, "holds the input")):
        with pytest.raises(UsageError, match=what):
            check_destination(str(dest), inputs=[str(tmp_path / "in.safetensors")], force=True)
    (tmp_path / "model").mkdir()
    with pytest.raises(UsageError, match="is a file of the input"):
        check_destination(str(tmp_path / "model" / "model.safetensors"), inputs=[str(tmp_path / "model")])
    check_destination(str(tmp_path / "model" / "hyp.jsonl"), inputs=[str(tmp_path / "model")], owner="transcript")


def test_force_writes_ours_and_keeps_theirs(tmp_path: Path) -> None:
    p = tmp_path / "p"
    with CheckpointWriter(f"{p}/", INFOS, metadata={"asrmerge.version": "0"}, shard_size=64) as w:
        for info in INFOS:
            w.write(info.name, torch.ones(info.shape))
    (p / "notes.txt").write_text("mine")
    (p / "sub").mkdir()
    with pytest.raises(UsageError, match="notes.txt, sub/ that asrmerge did not write"):
        write_all(f"{p}/")
    write_all(f"{p}/", force=True)
    assert sorted(x.name for x in p.iterdir()) == ["README.md", "config.json", "model.safetensors", "notes.txt", "sub"]
    assert (p / "notes.txt").read_text() == "mine" and leftovers(tmp_path) == []


def test_force_never_removes_weights_it_did_not_write(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "p"
    p.mkdir()
    save_file({"x": torch.zeros(1)}, p / "model-00001-of-00002.safetensors")
    (p / "model.safetensors.index.json").write_text('{"weight_map": {"x": "model-00001-of-00002.safetensors"}}')
    before = {x.name: x.read_bytes() for x in p.iterdir()}
    with pytest.raises(UsageError, match="weights asrmerge did not write"):
        write_all(f"{p}/", force=True)
    assert {x.name: x.read_bytes() for x in p.iterdir()} == before and leftovers(tmp_path) == []


def test_a_link_is_followed_and_kept(tmp_path: Path) -> None:
    write_all(str(tmp_path / "real.safetensors"))
    (tmp_path / "link.safetensors").symlink_to("real.safetensors")
    write_all(str(tmp_path / "link.safetensors"), metadata={"asrmerge.version": "1"})
    assert (tmp_path / "link.safetensors").is_symlink()
    with open_checkpoint(str(tmp_path / "real.safetensors")) as c:
        assert c.metadata["asrmerge.version"] == "1"


def test_overflow_after_the_cast_writes_nothing(tmp_path: Path) -> None:
    infos = [TensorInfo("a", (2,), "F16")]
    with pytest.raises(InputError, match="tensor a overflows fp16") as e, \
            CheckpointWriter(str(tmp_path / "m.safetensors"), infos, metadata={}) as w:
        w.write("a", torch.tensor([1.0, 1e6]))
    assert e.value.exit_code == 3 and list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="tensor a has NaN or Inf values in fp16"), \
            CheckpointWriter(str(tmp_path / "m.safetensors"), infos, metadata={}) as w:
        w.write("a", torch.tensor([1.0, float("nan")]))


def test_stale_temporaries_of_dead_processes_on_this_host_are_swept(tmp_path: Path) -> None:
    import subprocess

    dest = tmp_path / "out.safetensors"
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = temporary_name(dest)
    stale = Path(str(mine).replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
    other_host = Path(str(stale).replace(".asrmerge-tmp-", ".asrmerge-tmp-elsewhere"))
    for p in (mine, stale, other_host, tmp_path / ".out.safetensors.asrmerge-tmp-0123abcd"):
        p.write_bytes(b"x")
    assert sweep_temporaries(str(dest)) == [stale.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, other_host.name, ".out.safetensors.asrmerge-tmp-0123abcd"])


@pytest.mark.parametrize(("text", "problem"), [
    (b"", ""), (b'{"id": 1, "model": "m"}\n', ""), (b'{"id": 1, "model": "m"}\n{"id": 2, "mo', ""),
    (b"notes\n", "line 1 is not JSON"), (b'{"id": 1}\n', "line 1 is not a transcribe record"),
    (b'{"model": "m"}\n[1]\n', "line 2 is not a transcribe record"),
])
def test_what_counts_as_an_earlier_transcript(tmp_path: Path, text: bytes, problem: str) -> None:
    (tmp_path / "h.jsonl").write_bytes(text)
    assert transcript_problem(tmp_path / "h.jsonl") == problem


def test_a_text_output_is_replaced_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "h.jsonl"
    out.write_text('{"model": "m"}\n')
    dest = check_destination(str(out), owner="transcript")
    with pytest.raises(KeyboardInterrupt), open_text(dest) as f:
        f.write("new\n")
        raise KeyboardInterrupt
    assert out.read_text() == '{"model": "m"}\n' and leftovers(tmp_path) == []
    with open_text(dest) as f:
        f.write("new\n")
        assert out.read_text() == '{"model": "m"}\n'  # not yet
    assert out.read_text() == "new\n"
    with open_text(dest, append=True) as f:
        f.write("more\n")
    assert out.read_text() == "new\nmore\n" and leftovers(tmp_path) == []


def test_what_appears_while_writing_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="changed while it was being written"), \
            CheckpointWriter(f"{out}/", INFOS, metadata={}) as w:
        for info in INFOS:
            w.write(info.name, torch.ones(info.shape))
        out.mkdir()
        (out / "thesis.tex").write_text("precious")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"] and leftovers(tmp_path) == []


def test_a_pt_written_by_convert_may_be_replaced(tmp_path: Path) -> None:
    from asrmerge.io.writer import is_our_checkpoint

    torch.save({"dims": {}, "model_state_dict": {}, "asrmerge": {"asrmerge.version": "0"}}, tmp_path / "ours.pt")
    torch.save({"dims": {}, "model_state_dict": {}}, tmp_path / "theirs.pt")
    assert is_our_checkpoint(tmp_path / "ours.pt") and not is_our_checkpoint(tmp_path / "theirs.pt")
    assert check_destination(str(tmp_path / "ours.pt")).mode == "replace"
