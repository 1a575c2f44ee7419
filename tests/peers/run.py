"""Run peer merges in their own venvs and measure them: output files, wall time, peak RSS of the child.

The drivers next to this module (``drivers/*_driver.py``) run inside the peer venvs; they import the peer
package and safetensors, never asrmerge. One call starts one child process, which may run several jobs (the
import is paid once); the wall time and peak RSS cover the whole child, and each job's own seconds come back
from the driver. Peak RSS is the child's own ``ru_maxrss``, taken by a small launcher (see LAUNCHER).

    from tests.peers.run import mergekit_job, run_peer
    job = mergekit_job("ties", base=b, inputs=[f1, f2], params={"density": 0.2}, out=o, workdir=d)
    run = run_peer("mergekit", [job])
    run.check()  # raises with the driver's traceback if a job failed
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.peers.env import PeerEnv, ensure

DRIVERS = Path(__file__).resolve().parent / "drivers"


class PeerRunError(RuntimeError):
    """A peer child failed, timed out, or a job inside it raised (the message carries the traceback)."""


@dataclass(frozen=True)
class JobResult:
    out: Path
    seconds: float
    error: str | None


@dataclass(frozen=True)
class PeerRun:
    """One child process of a peer: its jobs, wall time and peak resident memory."""

    peer: str
    jobs: list[JobResult]
    wall_s: float
    import_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    versions: dict[str, str]

    @property
    def output(self) -> Path:
        """The output file of a single-job run."""
        return self.jobs[0].out

    def check(self) -> PeerRun:
        """Raise :class:`PeerRunError` naming the first failed job; return self when all succeeded."""
        for j in self.jobs:
            if j.error is not None:
                raise PeerRunError(f"{self.peer} failed on {j.out.name}:\n{j.error}")
        return self


# The measured command is started from this small launcher, not from the caller. On Linux a process's
# ru_maxrss starts from the high-water mark of the memory it was forked from (exec keeps the pre-exec peak),
# so a child forked straight from a 2 GiB pytest or benchmark process would report at least 2 GiB. The
# launcher is tiny, so its own child's ru_maxrss is that command's peak. It writes (exit code, peak KiB).
LAUNCHER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}, f)
"""


@dataclass(frozen=True)
class Measured:
    """One finished child process: exit code, wall seconds, peak RSS (MiB), captured output."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def measure(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 1800) -> Measured:
    """Run ``cmd`` and measure its wall time and peak RSS (``ru_maxrss`` of the command itself, see LAUNCHER).

    Any command works (a peer driver, ``python -m asrmerge merge ...``), so the benchmark measures both sides
    the same way. After ``timeout`` seconds the command's whole process group is killed and
    :class:`PeerRunError` is raised.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        report = Path(tmp) / "rusage.json"
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(report), *cmd], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise PeerRunError(f"{cmd[0]} timed out after {timeout:.0f} s and was killed") from None
        wall = time.perf_counter() - t0
        if not report.is_file():
            raise PeerRunError(f"the measuring launcher exited {proc.returncode} without a report")
        r = json.loads(report.read_text())
        out.seek(0)
        err.seek(0)
        return Measured(r["code"], wall, r["maxrss_kib"] / 1024.0, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"))


def run_peer(peer: str, jobs: list[dict[str, Any]], *, timeout: float = 1800, threads: int | None = None,
             env: PeerEnv | None = None) -> PeerRun:
    """Run ``jobs`` (see the driver's docstring) in one child process of ``peer``'s venv.

    Args:
        peer: ``mergekit`` or ``fusion_bench``.
        jobs: job dicts; each names its ``out`` file.
        timeout: seconds before the child is killed.
        threads: torch/OpenMP threads of the child (OMP_NUM_THREADS); default: the library's.
        env: an already ensured venv (default: :func:`tests.peers.env.ensure`).
    Returns:
        The run; call :meth:`PeerRun.check` to turn job failures into an exception.
    """
    env = env or ensure(peer)
    driver = DRIVERS / f"{peer}_driver.py"
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env.update({"PYTHONNOUSERSITE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                      "TOKENIZERS_PARALLELISM": "false"})
    if threads is not None:
        child_env["OMP_NUM_THREADS"] = child_env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        jobs_file, result_file = Path(tmp) / "jobs.json", Path(tmp) / "result.json"
        jobs_file.write_text(json.dumps(jobs, default=str))
        m = measure([str(env.python), str(driver), str(jobs_file), str(result_file)], env=child_env,
                    cwd=Path(tmp), timeout=timeout)
        if not result_file.is_file():
            raise PeerRunError(f"{peer} driver exited {m.returncode} without a result:\n{m.stderr[-4000:]}")
        result = json.loads(result_file.read_text())
    return PeerRun(peer, [JobResult(Path(j["out"]), j["seconds"], j["error"]) for j in result["jobs"]], m.wall_s,
                   result["import_s"], m.peak_rss_mb, m.returncode, m.stdout, m.stderr, env.versions)


def mergekit_job(method: str, *, inputs: list[Path], out: Path, workdir: Path, base: Path | None = None,
                 params: dict[str, Any] | None = None, weights: list[float] | None = None,
                 dtype: str | None = "float32", options: list[str] | None = None) -> dict[str, Any]:
    """Write a ``mergekit-pytorch`` YAML config for ``method`` and return the driver job.

    ``params`` are the config's global ``parameters`` (e.g. ``density``, ``normalize``, ``lambda``); ``weights``
    become each model's ``weight`` parameter. The base is listed only as ``base_model``.
    """
    import yaml

    models: list[dict[str, Any]] = []
    for i, p in enumerate(inputs):
        m: dict[str, Any] = {"model": str(p)}
        if weights is not None:
            m["parameters"] = {"weight": float(weights[i])}
        models.append(m)
    config: dict[str, Any] = {"merge_method": method, "models": models}
    if base is not None:
        config["base_model"] = str(base)
    if params:
        config["parameters"] = dict(params)
    if dtype:
        config["dtype"] = dtype
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = Path(tempfile.mkstemp(suffix=".yaml", prefix=f"{method}-", dir=workdir)[1])
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"config": str(cfg), "out": str(out), "options": list(options or [])}


def fusion_bench_job(method: str, *, base: Path, inputs: list[Path], out: Path, taskvecs: bool = False,
                     dtype: str = "float32", **params: Any) -> dict[str, Any]:
    """The driver job for FusionBench ``method`` (tsvm, iso_c, iso_cts, ties); ``params`` as the driver reads them."""
    return {"method": method, "base": str(base), "inputs": [str(p) for p in inputs], "taskvecs": taskvecs,
            "dtype": dtype, "out": str(out), **params}
