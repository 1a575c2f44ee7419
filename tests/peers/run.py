"""Run peer merges in their own venvs and measure them: output files, wall time, peak RSS of the child.

The drivers next to this module (``drivers/*_driver.py``) run inside the peer venvs; they import the peer
package and safetensors, never asrmerge. One call starts one child process, which may run several jobs (the
import is paid once); the wall time and peak RSS cover the whole child, and each job's own seconds come back
from the driver. Peak RSS is the child's ``ru_maxrss`` from ``wait4``.

    from tests.peers.run import mergekit_job, run_peer
    job = mergekit_job("ties", base=b, inputs=[f1, f2], params={"density": 0.2}, out=o, workdir=d)
    run = run_peer("mergekit", [job])
    run.check()  # raises with the driver's traceback if a job failed
"""

from __future__ import annotations

import json
import os
import subprocess
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


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for ``proc`` with wait4; return (exit status, peak RSS in MiB). Kills it after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024.0  # Linux reports KiB
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise PeerRunError(f"peer child timed out after {timeout:.0f} s (peak RSS {usage.ru_maxrss / 1024:.0f} MiB)")
        time.sleep(0.02)


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
    """Run ``cmd`` and measure its wall time and peak RSS (``ru_maxrss`` of the child, via ``wait4``).

    Any command works (a peer driver, ``python -m asrmerge merge ...``), so the benchmark measures both sides
    the same way.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        code, rss = _wait(proc, timeout)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return Measured(code, wall, rss, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


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
