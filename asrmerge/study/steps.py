"""Running a study's steps, resumably: each an asrmerge process, its outcome stamped in ``steps/ID.json``.

A step's **key** hashes its command and what it reads: the keys of the steps that wrote its inputs, and
for the user's inputs their files' sizes and modification times. A step is **kept** when its stamp has
the same key, says it finished, and its outputs are there; a stamp that says it started (the run was
killed) makes the step run again, a transcription continuing where it stopped (``--resume``); a stamp
with another key (the command or an input changed) runs it afresh, its old transcript removed first.
The tools write their outputs atomically, so a killed step never leaves a half-written one that looks
finished.

A transcription whose records were written by shard jobs (``asrmerge study --emit slurm``: each array
task writes ``shards/ID/KEY/K-of-N.jsonl``) is **joined** instead of run: when the shard files of its key
hold a hypothesis for every record it selects, they are written in manifest order to its output, which is
what the transcription itself would have written, and it is stamped done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asrmerge.errors import AsrmergeError
from asrmerge.study import shards
from asrmerge.study.plan import Step

Say = Callable[[str], None]


def _signature(path: Path) -> str:
    """Sizes and modification times of a user input (a file, or a folder's files, one level deep)."""
    if not path.exists():
        return "missing"
    if path.is_file():
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    parts = []
    for p in sorted(path.iterdir()):
        if p.is_file():
            st = p.stat()
            parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the study process (the child must not load libraries between fork and exec)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


PRCTL = _prctl()


def _die_with_parent() -> None:  # pragma: no cover (runs in the child)
    """In a step's process: end it (SIGTERM: its temporaries are removed) when the study process dies."""
    if PRCTL is not None:
        PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Paused(Exception):
    """The study stopped before steps that ``Runner.pause`` holds back: each with its key, in order; ``seen``:
    the ids of every step met so far (run, kept, joined or held)."""

    def __init__(self, steps: list[tuple[Step, str]], seen: list[str]) -> None:
        super().__init__(", ".join(s.id for s, _ in steps))
        self.steps = steps
        self.seen = seen


class Runner:
    """Runs steps in the study folder ``root``, keeping those finished earlier.

    Args:
        root: the study folder.
        jobs: transcriptions run side by side.
        say: where progress lines go (``kept ...``, ``run ...``).
        pause: steps not to run: :meth:`run` runs the others of its wave, then raises :class:`Paused` with
            these (those finished or joined earlier are kept as always).
    """

    def __init__(self, root: Path, jobs: int, say: Say, pause: Callable[[Step], bool] | None = None) -> None:
        self.root = root
        self.jobs = jobs
        self.say = say
        self.pause = pause
        self.keys: dict[str, str] = {}  # an output's path -> the key of the step that wrote it
        self.ran: list[Step] = []  # every step, in order (commands.sh)
        self.counts = {"kept": 0, "ran": 0, "joined": 0}
        self.seconds: dict[str, float] = {}

    def key(self, step: Step) -> str:
        h = hashlib.sha256(json.dumps([step.args, step.stdout]).encode())
        for inp in step.inputs:
            made = self.keys.get(inp)
            h.update(b"\0" + (made or _signature(self.root / inp) if not inp.startswith("packaged:") else inp).encode())
        return h.hexdigest()[:20]

    def stamp_path(self, step: Step) -> Path:
        return self.root / "steps" / f"{step.id}.json"

    def state(self, step: Step, key: str) -> str:
        """``kept``, ``unfinished`` (same command, killed) or ``new``."""
        try:
            stamp = json.loads(self.stamp_path(step).read_text())
        except (OSError, ValueError):
            return "new"
        if stamp.get("key") != key:
            return "new"
        if stamp.get("state") == "done":
            pruned = set(stamp.get("pruned", []))
            if all((self.root / o).exists() for o in step.outputs if o not in pruned):
                return "kept"
        return "unfinished"

    def _write_stamp(self, step: Step, **fields: object) -> None:
        path = self.stamp_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump({"id": step.id, "command": ["asrmerge", *step.args], "outputs": step.outputs, **fields}, f)
        os.replace(tmp, path)

    def prune(self, step: Step, outputs: list[str]) -> None:
        """Remove some outputs of a finished step for good (lambda sweep models not chosen)."""
        stamp = json.loads(self.stamp_path(step).read_text())
        stamp["pruned"] = sorted(set(stamp.get("pruned", [])) | set(outputs))
        for o in outputs:
            shutil.rmtree(self.root / o, ignore_errors=True)
        self._write_stamp(step, **{k: v for k, v in stamp.items() if k not in ("id", "command", "outputs")})

    def redo(self, step: Step) -> None:
        """Run a step listed already once more (a lambda's model removed earlier and chosen now)."""
        self._one(step, self.key(step), "new")

    def register(self, step: Step) -> str:
        """The step's key, recorded as the key of its outputs (for the steps that read them)."""
        key = self.key(step)
        self.ran.append(step)
        for o in step.outputs:
            self.keys[o] = key
        return key

    def run(self, steps: list[Step]) -> None:
        """Run ``steps`` (independent of each other): transcriptions ``jobs`` at a time, the others in turn.

        Raises:
            Paused: some of them are held back by ``pause`` (after the others ran).
        """
        todo, held = [], []
        for step in steps:
            key = self.register(step)
            state = self.state(step, key)
            if state == "kept":
                self.counts["kept"] += 1
                self.say(f"kept {step.id} (finished earlier)")
                continue
            if step.verb == "transcribe":
                files = shards.join(self.root, step, key)
                if files:
                    self._write_stamp(step, key=key, state="done", shards=files)
                    self.counts["joined"] += 1
                    self.say(f"joined {step.id} from {files} shard files")
                    continue
            if self.pause is not None and self.pause(step):
                held.append((step, key))
                continue
            todo.append((step, key, state))
        parallel = [t for t in todo if t[0].verb == "transcribe"]
        serial = [t for t in todo if t[0].verb != "transcribe"]
        for t in serial:
            self._one(*t)
        if parallel:
            with ThreadPoolExecutor(max(1, min(self.jobs, len(parallel)))) as pool:
                futures = [pool.submit(self._one, *t) for t in parallel]
                errors = [f.exception() for f in futures]
            first = next((e for e in errors if e is not None), None)
            if first is not None:
                raise first
        if held:
            raise Paused(held, [s.id for s in self.ran])

    def _one(self, step: Step, key: str, state: str) -> None:
        if state == "new":
            for o in step.outputs:  # an output of another command: --resume must not keep its records
                p = self.root / o
                if step.verb == "transcribe" and p.is_file():
                    p.unlink()
        self.say(f"{'redo' if state == 'unfinished' else 'run'} {step.id}"
                 + (" (unfinished earlier: goes on where it stopped)" if state == "unfinished" else ""))
        for o in step.outputs:
            (self.root / o).parent.mkdir(parents=True, exist_ok=True)
        self._write_stamp(step, key=key, state="started")
        t0 = time.perf_counter()
        self._execute(step)
        seconds = time.perf_counter() - t0
        self.seconds[step.verb] = self.seconds.get(step.verb, 0.0) + seconds
        self._write_stamp(step, key=key, state="done", seconds=round(seconds, 2))
        self.counts["ran"] += 1

    def _execute(self, step: Step) -> None:
        env = {**os.environ, "NO_COLOR": "1"}
        if step.threads:
            env.update(OMP_NUM_THREADS=str(step.threads), MKL_NUM_THREADS=str(step.threads))
        cmd = [sys.executable, "-m", "asrmerge", *step.args]
        tmp = None
        try:
            if step.stdout:
                dest = self.root / step.stdout
                fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.study-tmp-")
                with os.fdopen(fd, "wb") as out:
                    r = subprocess.run(cmd, cwd=self.root, env=env, stdout=out, stderr=subprocess.PIPE,
                                       preexec_fn=_die_with_parent)
            else:
                r = subprocess.run(cmd, cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   preexec_fn=_die_with_parent)
            if r.returncode != 0:
                lines = [x for x in r.stderr.decode(errors="replace").splitlines() if x.strip()]
                last = lines[-1] if lines else "no message"
                raise AsrmergeError(f"`asrmerge {' '.join(step.args)}` failed (exit {r.returncode}): {last}",
                                    subject=f"step {step.id}",
                                    hint="fix it and run the study again: finished steps are kept")
            if tmp:
                os.replace(tmp, self.root / step.stdout)  # type: ignore[operator]
                tmp = None
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
