"""The fault suite's machinery: path-tree snapshots, and table cases run as real processes, several at once.

A case is one ``python -m asrmerge`` process (:func:`tests.conftest.cli`) in a folder of its own: what the
folder holds before (``setup``), the arguments, and what must hold after: the exit code, stderr (exactly
one error line naming the subject, or for a success only the expected warning), and the destination
(``unchanged``: byte for byte, types and links included; ``absent``; or a ``check`` of its own). The cases
are independent, so :func:`run_all` runs them on a thread pool (start-up, mostly importing torch, is most
of each case's time) and the tests then look at the outcomes one by one.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import cli

Snapshot = dict[str, tuple[Any, ...]] | None


def snapshot(path: Path) -> Snapshot:
    """Every name under ``path`` (itself included, as ``.``) with its type and content: a file's size and
    SHA-256, a link's target, a device's number, a folder's presence. ``None`` if nothing is there."""
    if not os.path.lexists(path):
        return None
    out: dict[str, tuple[Any, ...]] = {}

    def visit(p: Path, rel: str) -> None:
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir",)
            for child in sorted(os.listdir(p)):
                visit(p / child, child if rel == "." else f"{rel}/{child}")
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            out[rel] = ("device", stat.S_IFMT(st.st_mode), st.st_rdev)
        else:
            out[rel] = ("special", stat.S_IFMT(st.st_mode))

    visit(path, ".")
    return out


def temporaries(folder: Path) -> list[str]:
    """Names of asrmerge temporaries in ``folder`` (and the old ``asrmerge-old`` names)."""
    return sorted(n for n in os.listdir(folder) if ".asrmerge-tmp-" in n or ".asrmerge-old-" in n)


@dataclass
class Case:
    """One fault: a command line run in a fresh folder, and what must hold afterwards.

    Attributes:
        id: the test id.
        cmd: the asrmerge command (the error line starts ``asrmerge CMD: error:``).
        args: the arguments, from the shared inputs and the case's folder.
        code: the exit status.
        error: a piece of the one error line (its subject and what is wrong); ``None`` for a success.
        dest: names in the case's folder whose state is checked (or absolute paths).
        after: ``unchanged`` (byte-identical), ``absent``, or ``any`` (``check`` looks).
        setup: fills the case's folder first.
        stdin: bytes for stdin (default: none, an empty pipe is not given).
        cwd: where to run, relative to the case's folder.
        check: further assertions on (shared inputs, case folder, process).
        warning: for a success, the one warning line it must print (a piece of it).
        quiet: pass ``-q`` (no notes).
    """

    id: str
    cmd: str
    args: Callable[[Any, Path], list[str]]
    code: int
    error: str | None = None
    dest: tuple[str, ...] = ()
    after: str = "unchanged"
    setup: Callable[[Any, Path], None] | None = None
    stdin: Callable[[Any, Path], bytes] | None = None
    cwd: str | None = None
    check: Callable[[Any, Path, subprocess.CompletedProcess[bytes]], None] | None = None
    warning: str | None = None
    quiet: bool = True


@dataclass
class Outcome:
    folder: Path
    run: subprocess.CompletedProcess[bytes] | None = None
    before: dict[str, Snapshot] = field(default_factory=dict)
    after: dict[str, Snapshot] = field(default_factory=dict)
    failure: str | None = None  # a setup that raised: its traceback
    skip: str | None = None


def _where(folder: Path, name: str) -> Path:
    return Path(name) if os.path.isabs(name) else folder / name


def run_one(case: Case, world: Any, root: Path, runner: Callable[..., Any] = cli) -> Outcome:
    import pytest

    folder = root / case.id
    folder.mkdir()
    out = Outcome(folder)
    try:
        if case.setup:
            case.setup(world, folder)
        out.before = {d: snapshot(_where(folder, d)) for d in case.dest}
        args = case.args(world, folder) + (["-q"] if case.quiet else [])
        stdin = case.stdin(world, folder) if case.stdin else b""
        out.run = runner(case.cmd, *args, input=stdin, cwd=folder / case.cwd if case.cwd else folder, timeout=300)
        out.after = {d: snapshot(_where(folder, d)) for d in case.dest}
    except pytest.skip.Exception as e:
        out.skip = str(e)
    except Exception:
        out.failure = traceback.format_exc()
    return out


def run_all(cases: list[Case], world: Any, root: Path, runner: Callable[..., Any] = cli,
            workers: int | None = None) -> dict[str, Outcome]:
    """Run every case, a few at once, with ``runner`` (:func:`tests.conftest.cli`, or a zygote's ``run``);
    the outcomes by case id."""
    workers = workers or max(2, min(4, (os.cpu_count() or 2) + 1))
    with ThreadPoolExecutor(workers) as pool:
        futures = {c.id: pool.submit(run_one, c, world, root, runner) for c in cases}
    return {k: f.result() for k, f in futures.items()}


def verify(case: Case, out: Outcome, world: Any) -> None:
    """Assert what ``case`` promises about ``out``."""
    import pytest

    if out.skip:
        pytest.skip(out.skip)
    assert out.failure is None, out.failure
    r = out.run
    assert r is not None
    err = r.stderr.decode(errors="replace")
    lines = err.strip().splitlines()
    assert r.returncode == case.code, f"exit {r.returncode}, expected {case.code}; stderr:\n{err}"
    if case.error is not None:
        assert len(lines) == 1, f"expected one error line:\n{err}"
        assert lines[0].startswith(f"asrmerge {case.cmd}: error: "), err
        assert case.error in lines[0], f"{case.error!r} not in {lines[0]!r}"
    elif case.warning is not None:
        warnings = [line for line in lines if line.startswith(f"asrmerge {case.cmd}: warning: ")]
        # the tables decode with --max-new-tokens 2, so transcribe may add its runaway warning: the case's own
        # warning must appear exactly once, and no error
        assert not any(": error: " in line for line in lines), err
        assert len([w for w in warnings if case.warning in w]) == 1, f"{case.warning!r} not once in:\n{err}"
    elif case.quiet:
        assert err == "", err
    for d in case.dest:
        if case.after == "unchanged":
            assert out.after[d] == out.before[d], f"{d} changed:\nbefore {out.before[d]}\nafter  {out.after[d]}"
        elif case.after == "absent":
            assert out.after[d] is None, f"{d} exists: {out.after[d]}"
    assert temporaries(out.folder) == [] or case.id.startswith("12-"), temporaries(out.folder)
    if case.check:
        case.check(world, out.folder, r)
