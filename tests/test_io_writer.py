"""Atomic output: a failure, a full disk or an interrupt leaves the old output or none, never a partial one."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from asrmerge.errors import AsrmergeError, UsageError
from asrmerge.io.checkpoint import open_checkpoint
from asrmerge.io.tensors import TensorInfo
from asrmerge.io.writer import CheckpointWriter, output_kind

INFOS = [TensorInfo("a", (4, 4), "F32"), TensorInfo("b", (4,), "F16")]


def write_all(dest: str, fail_after: int | None = None, exc: BaseException | None = None) -> None:
    with CheckpointWriter(dest, INFOS, metadata={"k": "v"}, support={"config.json": b"{}"}) as w:
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
        assert c.metadata == {"format": "pt", "k": "v"}
        assert c.get("b").dtype == torch.float16
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(143)])
def test_failure_keeps_the_old_file(tmp_path: Path, exc: BaseException) -> None:
    dest = tmp_path / "m.safetensors"
    dest.write_bytes(b"old")
    with pytest.raises(type(exc)):
        write_all(str(dest), fail_after=1, exc=exc)
    assert dest.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_failure_leaves_no_new_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        write_all(f"{tmp_path}/out/", fail_after=1)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_folder_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "stale.bin").write_text("x")
    write_all(f"{out}/")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dtype"] == "float32"
    assert leftovers(tmp_path) == []


def test_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not a model folder"):
        write_all(f"{tmp_path}/home/")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"


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
