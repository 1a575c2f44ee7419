"""Run a command and watch its memory: wall time, peak RSS, peak anonymous memory, optionally under a cap.

    from tests.bench.memwatch import watch
    w = watch(["python", "-m", "asrmerge", "merge", ...], cap=20 * 2**30)
    w.wall_s, w.peak_rss_mb, w.peak_anon_mb, w.killed_by_cap, w.last_anon_mb

- Peak RSS: the command's own ``ru_maxrss`` from a tiny launcher (as tests/peers/run.py measures it). It counts
  the pages of memory-mapped input files the command touched, so for a reader of mmapped safetensors it is
  mostly the page cache it mapped, not what it allocated.
- Peak anonymous memory: the sum of ``RssAnon`` (from ``/proc/PID/status``) over the command's process tree,
  sampled every ``interval`` seconds (0.1 s); what the command allocated itself. A sample can miss a spike
  shorter than the interval.
- Cap, ``cap_kind="anon"`` (the default): the sampler kills the command's processes (SIGKILL) at the first
  sample whose anonymous memory is over ``cap``: resident anonymous memory is what a cgroup's memory.max
  would stop (page cache is reclaimed first). It can overshoot by what the command allocates within one
  interval. The command gets no chance to report, so a caller that wants to know how far it got has it log
  its progress as it goes (tests/bench/peer_probe.py).
  ``cap_kind="data"``: ``RLIMIT_DATA`` (what ``prlimit --data`` sets), set before exec: an allocation past it
  fails inside the command (MemoryError, torch's "can't allocate memory"). It counts address space, not
  resident pages, and private writable file mappings too: mergekit maps its inputs that way (12 GB of VmData
  at 3.3 GB anonymous on large-v3 T = 2), so it would stop mergekit for memory it never uses.
  ``cap_kind="as"``: ``RLIMIT_AS`` (``prlimit --as``), which also counts shared libraries and read-only maps.
  If the launcher itself is stopped from outside (someone kills it), the command's process group is killed
  too and the result says so (``reported`` False, ``returncode`` the launcher's -signal, no ru_maxrss), so a
  benchmark records the row as failed instead of losing the run.
  No cgroup: this container has cgroup v1 only (no v2 memory controller, no systemd-run), and its memory
  cgroup belongs to the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# The launcher: sets the cap (if any) in the child before exec, waits, and reports the child's exit code and
# its own ru_maxrss (a process forked straight from a large benchmark process would inherit its high-water mark).
LAUNCHER = """
import json, os, resource, subprocess, sys
report, kind, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
def limit():
    if cap > 0:
        r = resource.RLIMIT_DATA if kind == "data" else resource.RLIMIT_AS
        resource.setrlimit(r, (cap, cap))
proc = subprocess.Popen(sys.argv[4:], preexec_fn=limit)
_, status, usage = os.wait4(proc.pid, 0)
with open(report, "w") as f:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}, f)
"""


@dataclass
class Watched:
    """One finished command: exit code, wall seconds, peak RSS and peak anonymous memory (MiB), output."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    peak_anon_mb: float
    last_anon_mb: float         # the last sample before the command ended (the memory at failure, if it failed)
    stdout: str
    stderr: str
    cap_mb: float | None = None
    killed_by_cap: bool = False  # cap_kind "anon": the sampler killed it (last_anon_mb is the sample over the cap)
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, anon MiB), one per second
    reported: bool = True  # False: the launcher itself was stopped from outside (returncode is its -signal);
    #                       the command's exit code and ru_maxrss are unknown (peak_rss_mb is NaN)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(root: int) -> list[int]:
    """The processes below ``root`` (children first)."""
    kids = _children()
    out, todo = [], list(kids.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_anon_kib(root: int) -> int:
    """Sum of RssAnon (KiB) over the descendants of ``root`` (not ``root`` itself: that is the launcher)."""
    total = 0
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def watch(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 6 * 3600,
          cap: int | None = None, cap_kind: str = "anon", interval: float = 0.1) -> Watched:
    """Run ``cmd`` to its end (killed after ``timeout`` s) and measure it; see the module docstring.

    Raises:
        TimeoutError: the command ran past ``timeout`` (its process group was killed).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory(prefix="memwatch-") as tmp:
        report = Path(tmp) / "rusage.json"
        t0 = time.perf_counter()
        limit = (cap or 0) if cap_kind in ("data", "as") else 0
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(report), cap_kind, str(limit), *cmd],
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)
        peak = last = 0
        killed = False
        timeline: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak, last, killed
            while not stop.is_set():
                kib = tree_anon_kib(proc.pid)
                if kib:
                    last = kib
                    peak = max(peak, kib)
                if cap and cap_kind == "anon" and kib * 1024 > cap and not killed:
                    killed = True
                    for pid in descendants(proc.pid):  # not the launcher: it still reports the exit and ru_maxrss
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                now = time.perf_counter() - t0
                if not timeline or now - timeline[-1][0] >= 1.0:
                    timeline.append((round(now, 1), round(kib / 1024, 1)))
                stop.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"{cmd[0]} ran past {timeout:.0f} s and was killed") from None
        finally:
            stop.set()
            sampler.join()
        wall = time.perf_counter() - t0
        if report.is_file():
            r = json.loads(report.read_text())
            code, rss, reported = r["code"], r["maxrss_kib"] / 1024.0, True
        else:  # someone stopped the launcher: stop what it started too, and say so instead of failing the caller
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            code, rss, reported = proc.returncode, float("nan"), False
        out.seek(0)
        err.seek(0)
        return Watched(code, wall, rss, peak / 1024.0, last / 1024.0,
                       out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                       cap / 2**20 if cap else None, killed, timeline, reported)
