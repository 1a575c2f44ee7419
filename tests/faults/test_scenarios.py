"""Faults in time: kill -9 and Ctrl-C mid-write, a full disk, a read-only folder, writers racing for one
destination, --resume after kill -9, a reader that goes away, a FIFO as destination."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.conftest import cli
from tests.faults.conftest import World
from tests.faults.files import FAST
from tests.faults.harness import snapshot, temporaries
from tests.faults.zygote import Zygote


@pytest.fixture(scope="module")
def run(zygote: Zygote | None):
    return zygote.run if zygote else cli


@pytest.fixture(scope="module")
def spawn(zygote: Zygote | None):
    """Start a command and get it back running: a zygote child, or a fresh `python -m asrmerge`."""
    if zygote is not None:
        return zygote.spawn
    from tests.conftest import ROOT

    def fresh(*args: str, cwd: Path | None = None, input: bytes | None = None, stdout: int | None = None):
        import sys

        env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        p = subprocess.Popen([sys.executable, "-m", "asrmerge", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE)

        class Proc:
            pid = p.pid

            @staticmethod
            def send_signal(sig: int) -> None:
                p.send_signal(sig)

            @staticmethod
            def wait(timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
                out, err = p.communicate(timeout=timeout)
                return subprocess.CompletedProcess(p.args, p.returncode, out or b"", err)
        return Proc()
    return fresh


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A base and a "fine-tune" (the same file, linked) of 32 MiB in 8 tensors: writing their task vector
    takes long enough to be interrupted in the middle."""
    root = tmp_path_factory.mktemp("large")
    save_file({f"layer.{i}.weight": torch.full((1024, 1024), float(i)) for i in range(8)}, root / "base.safetensors")
    os.link(root / "base.safetensors", root / "ft.safetensors")
    return root / "base.safetensors", root / "ft.safetensors"


def wait_for(predicate, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


def one_line(r: subprocess.CompletedProcess[bytes], code: int, *pieces: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for p in pieces:
        assert p in lines[0], err
    return lines[0]


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (root only: skipped, with the reason, where mounting is not allowed)."""
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): the full-disk and read-only "
                    "cases need root or CAP_SYS_ADMIN")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_kill_9_mid_write_leaves_the_old_output_and_the_next_run_sweeps(
        spawn, run, large: tuple[Path, Path], world: World, tmp_path: Path) -> None:
    shutil.copy(world.tv, tmp_path / "out.safetensors")
    before = snapshot(tmp_path / "out.safetensors")
    p = spawn("taskvec", str(large[0]), str(large[1]), "-o", "out.safetensors", "-q", cwd=tmp_path)
    wait_for(lambda: any(os.path.getsize(tmp_path / t) > 0 for t in temporaries(tmp_path)))
    p.send_signal(signal.SIGKILL)
    assert p.wait().returncode == -signal.SIGKILL
    assert snapshot(tmp_path / "out.safetensors") == before
    [stale] = temporaries(tmp_path)
    assert f"-{p.pid}-" in stale
    r = run("taskvec", str(world.base), str(world.ft), "-o", "out.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().splitlines() == [
        f"removed 1 temporary left by killed asrmerge runs beside out.safetensors: {stale}", "wrote out.safetensors"]
    assert temporaries(tmp_path) == []
    assert str(world.ft) in metadata(tmp_path / "out.safetensors")["asrmerge.command"]


def test_ctrl_c_mid_write_exits_130_and_leaves_the_old_output(spawn, large: tuple[Path, Path], world: World,
                                                                tmp_path: Path) -> None:
    shutil.copytree(world.model_out, tmp_path / "out")
    before = snapshot(tmp_path / "out")
    p = spawn("taskvec", str(large[0]), str(large[1]), "-o", "out/", cwd=tmp_path)
    wait_for(lambda: any((tmp_path / t).is_dir() and any((tmp_path / t).iterdir()) for t in temporaries(tmp_path)))
    p.send_signal(signal.SIGINT)
    r = p.wait()
    assert r.returncode == 130 and r.stderr.decode().strip() == "asrmerge taskvec: interrupted", r.stderr
    assert snapshot(tmp_path / "out") == before and temporaries(tmp_path) == []


def test_a_full_disk_is_one_line_and_leaves_the_old_output(run, world: World, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "6m") as disk:
        shutil.copy(world.tv, disk / "out.safetensors")  # 3.5 MB: the new one does not fit beside it
        before = snapshot(disk / "out.safetensors")
        r = run("taskvec", str(world.base), str(world.ft), "-o", str(disk / "out.safetensors"))
        one_line(r, 1, "asrmerge taskvec: error: ", "out.safetensors: cannot write: No space left on device; "
                 "free some disk space")
        assert snapshot(disk / "out.safetensors") == before and temporaries(disk) == []


def test_a_full_disk_leaves_the_old_transcript(run, world: World, tmp_path: Path) -> None:
    rec = json.loads(world.manifest.read_text())
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**rec, "id": f"u{i}", "pad": "x" * 70_000}) + "\n" for i in range(4)))
    with tmpfs(tmp_path / "small", "128k") as disk:
        (disk / "hyp.jsonl").write_bytes(world.transcript(200))
        before = snapshot(disk / "hyp.jsonl")
        r = run("transcribe", str(world.asr), str(manifest), *FAST, "-q", "-o", str(disk / "hyp.jsonl"))
        one_line(r, 1, "asrmerge transcribe: error: ", "hyp.jsonl: cannot write: No space left on device")
        assert snapshot(disk / "hyp.jsonl") == before and temporaries(disk) == []


def test_ctrl_c_leaves_the_old_transcript(spawn, world: World, tmp_path: Path) -> None:
    rec = json.loads(world.manifest.read_text())
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**rec, "id": f"u{i}"}) + "\n" for i in range(200)))
    (tmp_path / "hyp.jsonl").write_bytes(world.transcript())
    before = snapshot(tmp_path / "hyp.jsonl")
    p = spawn("transcribe", str(world.asr), str(manifest), *FAST, "-q", "-o", "hyp.jsonl", cwd=tmp_path)
    wait_for(lambda: any(os.path.getsize(tmp_path / t) > 0 for t in temporaries(tmp_path)))
    p.send_signal(signal.SIGINT)
    r = p.wait()
    assert r.returncode == 130 and r.stderr.decode().strip() == "asrmerge transcribe: interrupted", r.stderr
    assert snapshot(tmp_path / "hyp.jsonl") == before and temporaries(tmp_path) == []


def test_resume_after_kill_9_finishes_the_manifest(spawn, run, world: World, tmp_path: Path) -> None:
    rec = json.loads(world.manifest.read_text())
    manifest = tmp_path / "m.jsonl"
    ids = [f"u{i}" for i in range(64)]  # written in windows of 8: the kill comes after the first
    manifest.write_text("".join(json.dumps({**rec, "id": i}) + "\n" for i in ids))
    out = tmp_path / "hyp.jsonl"
    p = spawn("transcribe", str(world.asr), str(manifest), *FAST, "-q", "-o", "hyp.jsonl", "--resume", cwd=tmp_path)
    wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= 2)
    p.send_signal(signal.SIGKILL)
    assert p.wait().returncode == -signal.SIGKILL
    kept = out.read_bytes().splitlines(keepends=True)
    whole = [line for line in kept if line.endswith(b"\n")]
    assert 2 <= len(whole) < len(ids)
    r = run("transcribe", str(world.asr), str(manifest), *FAST, "-o", "hyp.jsonl", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"--resume: {len(whole)} of {len(ids)} already in hyp.jsonl" in r.stderr.decode()
    lines = out.read_bytes().splitlines(keepends=True)
    assert lines[:len(whole)] == whole  # the records already there were never touched
    records = [json.loads(line) for line in lines]
    assert [x["id"] for x in records] == ids and all("hyp" in x for x in records)


def test_a_folder_that_is_not_writable_is_refused_before_any_work(run, world: World, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", "ro") as ro:
        one_line(run("taskvec", "--apply", str(world.base), str(world.tv), "-o", f"{ro}/out/"), 2,
                 "asrmerge taskvec: error: ", f"out/: folder {ro} is not writable")


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_writers_racing_for_one_destination_all_succeed(spawn, large: tuple[Path, Path], world: World, tmp_path: Path,
                                                        kind: str) -> None:
    dest = "out.safetensors" if kind == "file" else "out/"
    first = [spawn("taskvec", str(large[0]), str(large[1]), "-o", dest, "-q", cwd=tmp_path) for _ in range(2)]
    others = [spawn("taskvec", str(world.base), str(f), "-o", dest, "-q", cwd=tmp_path) for f in (world.ft, world.ft2)]
    results = [p.wait() for p in first + others]
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    assert all(r.stderr == b"" for r in results)
    weights = tmp_path / ("out.safetensors" if kind == "file" else "out/model.safetensors")
    assert metadata(weights)["asrmerge.kind"] == "taskvec"  # one complete output, whichever came last
    with safe_open(str(weights), "pt") as f:
        assert len(list(f.keys())) in (8, len(world_names(world)))
    assert temporaries(tmp_path) == []


def world_names(world: World) -> list[str]:
    with safe_open(str(world.tv), "pt") as f:
        return list(f.keys())


def test_a_reader_that_goes_away_ends_the_writer_quietly(spawn, world: World, tmp_path: Path) -> None:
    """`asrmerge ... | head -c 100`: the writer dies of SIGPIPE at once, says nothing, leaves no file."""
    (tmp_path / "h.jsonl").write_text("".join(json.dumps({"id": i, "text": "a b", "hyp": "a c"}) + "\n"
                                              for i in range(5000)))
    for args in (["taskvec", str(world.base), str(world.ft)], ["wer", "--jsonl", "h.jsonl"]):
        r_fd, w_fd = os.pipe()
        p = spawn(*args, cwd=tmp_path, stdout=w_fd)
        os.close(w_fd)
        assert len(os.read(r_fd, 100)) > 0
        os.close(r_fd)
        r = p.wait()
        assert r.returncode == -signal.SIGPIPE and r.stderr == b"", (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["h.jsonl"]


def test_a_fifo_is_written_through(run, world: World, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append((tmp_path / "fifo").read_bytes()), daemon=True)
    reader.start()
    r = run("taskvec", str(world.base), str(world.ft), "-o", "fifo", "-q", cwd=tmp_path)
    if not os.path.exists(tmp_path / "fifo") or not (tmp_path / "fifo").is_fifo():
        pytest.fail(f"the FIFO was replaced: {sorted(os.listdir(tmp_path))}")
    with contextlib.suppress(OSError):  # a writer that never came: let the reader see the end
        os.close(os.open(tmp_path / "fifo", os.O_WRONLY | os.O_NONBLOCK))
    reader.join(60)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert (tmp_path / "fifo").is_fifo() and sorted(os.listdir(tmp_path)) == ["fifo"]
    (tmp_path / "got.safetensors").write_bytes(got[0])
    assert metadata(tmp_path / "got.safetensors")["asrmerge.kind"] == "taskvec"

