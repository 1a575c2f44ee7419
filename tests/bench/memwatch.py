"""Run a command and watch its memory: wall time, peak RSS, peak anonymous memory, optionally under a cap.

    from tests.bench.memwatch import watch
    w = watch(["python", "-m", "asrmerge", "merge", ...], cap=20 * 2**30)
    w.wall_s, w.peak_rss_mb, w.peak_anon_mb, w.capped, w.last_anon_mb

- Peak RSS: the command's own ``ru_maxrss`` from a tiny launcher (as tests/peers/run.py measures it). It counts
  the pages of memory-mapped input files the command touched, so for a reader of mmapped safetensors it is
  mostly the page cache it mapped, not what it allocated.
- Peak anonymous memory: the sum of ``RssAnon`` (from ``/proc/PID/status``) over the command's process tree,
  sampled every ``interval`` seconds (0.1 s); what the command allocated itself. A sample can miss a spike
  shorter than the interval.
- Cap: ``RLIMIT_DATA`` of the command (what ``prlimit --data`` sets), set by the launcher before exec. Since
  Linux 4.7 it bounds the private writable mappings, i.e. the anonymous memory a process can map (glibc and
  torch allocations); an allocation past it fails (MemoryError, or torch's "can't allocate memory") rather
  than the kernel killing something, so the command can still record how far it got. It counts address
  space, not resident pages, so it is a little stricter than a cgroup's memory.max. This container has
  cgroup v1 only (no writable v2 memory controller, no systemd), and its memory cgroup is the sandbox's own,
  so a cgroup child is not used. ``cap_kind="as"`` uses ``RLIMIT_AS`` (``prlimit --as``) instead, which also
  counts mapped files and shared libraries.
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
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, anon MiB), one per second


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


def tree_anon_kib(root: int) -> int:
    """Sum of RssAnon (KiB) over the descendants of ``root`` (not ``root`` itself: that is the launcher)."""
    kids = _children()
    todo, total = list(kids.get(root, [])), 0
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
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
          cap: int | None = None, cap_kind: str = "data", interval: float = 0.1) -> Watched:
    """Run ``cmd`` to its end (killed after ``timeout`` s) and measure it; see the module docstring.

    Raises:
        TimeoutError: the command ran past ``timeout`` (its process group was killed).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory(prefix="memwatch-") as tmp:
        report = Path(tmp) / "rusage.json"
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(report), cap_kind, str(cap or 0), *cmd],
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)
        peak = last = 0
        timeline: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak, last
            while not stop.is_set():
                kib = tree_anon_kib(proc.pid)
                if kib:
                    last = kib
                    peak = max(peak, kib)
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
        if not report.is_file():
            raise RuntimeError(f"the measuring launcher exited {proc.returncode} without a report")
        r = json.loads(report.read_text())
        out.seek(0)
        err.seek(0)
        return Watched(r["code"], wall, r["maxrss_kib"] / 1024.0, peak / 1024.0, last / 1024.0,
                       out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                       cap / 2**20 if cap else None, timeline)
