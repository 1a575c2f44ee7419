"""A one-machine stand-in for Slurm's ``sbatch``, for running emitted study jobs without a cluster.

Installed as ``sbatch`` on PATH (see tests/test_study_slurm.py), it runs each job at once, in the
submitting process, as Slurm would run it: ``bash SCRIPT`` with ``SLURM_JOB_ID``, and for ``#SBATCH
--array=A-B`` one run per task with ``SLURM_ARRAY_TASK_ID``, ``_COUNT``, ``_MIN``, ``_MAX``, ``_STEP`` and
``SLURM_ARRAY_JOB_ID``; output to ``#SBATCH --output`` (``%x``, ``%j``, ``%A``, ``%a`` replaced). A job whose
``--dependency=afterok:ID:...`` names a job that did not complete is not run (as Slurm cancels it with
``--kill-on-invalid-dep=yes``). It prints the job id (``--parsable``) and records every job, in order, in
``$SBATCH_EMULATOR_LOG`` (JSON lines: id, name, state, tasks, after).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def options(argv: list[str], script: Path) -> dict[str, str]:
    """``--name=value`` options: the script's ``#SBATCH`` lines, then the command line's (which win)."""
    words = []
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH "):
            words.append(line.split(None, 1)[1].strip())
        elif line and not line.startswith("#"):
            break
    out = {}
    for w in [*words, *argv]:
        name, _, value = w.partition("=")
        out[name] = value
    return out


def main() -> int:
    log = Path(os.environ["SBATCH_EMULATOR_LOG"])
    args = sys.argv[1:]
    script = Path(args[-1])
    opts = options(args[:-1], script)
    jobs = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    job_id = 1000 + len(jobs)
    after = [int(x) for x in opts.get("--dependency", "").removeprefix("afterok:").split(":") if x]
    states = {j["id"]: j["state"] for j in jobs}
    name = opts.get("--job-name", script.name)
    record = {"id": job_id, "name": name, "after": after, "tasks": 0, "state": "PENDING"}
    with log.open("a") as f:  # the id is taken before the job runs (it may submit jobs itself)
        f.write(json.dumps(record) + "\n")
    tasks: list[int | None] = [None]
    if "--array" in opts:
        lo, _, hi = opts["--array"].partition("-")
        tasks = list(range(int(lo), int(hi or lo) + 1))
    state = "COMPLETED"
    if any(states.get(a) != "COMPLETED" for a in after):
        state = "CANCELLED"  # DependencyNeverSatisfied
    else:
        for task in tasks:
            env = {**os.environ, "SLURM_JOB_ID": str(job_id), "SLURM_JOB_NAME": name}
            pattern = opts.get("--output", "slurm-%j.out").replace("%x", name).replace("%A", str(job_id))
            if task is not None:
                env.update(SLURM_ARRAY_JOB_ID=str(job_id), SLURM_ARRAY_TASK_ID=str(task),
                           SLURM_ARRAY_TASK_COUNT=str(len(tasks)), SLURM_ARRAY_TASK_MIN=str(tasks[0]),
                           SLURM_ARRAY_TASK_MAX=str(tasks[-1]), SLURM_ARRAY_TASK_STEP="1")
                pattern = pattern.replace("%a", str(task))
            out = pattern.replace("%j", str(job_id))
            with open(out, "ab") as f:
                r = subprocess.run(["bash", str(script)], env=env, stdout=f, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                state = "FAILED"
    record.update(state=state, tasks=len(tasks) if tasks != [None] else 0)
    lines = log.read_text().splitlines()
    lines[[json.loads(x)["id"] for x in lines].index(job_id)] = json.dumps(record)
    log.write_text("\n".join(lines) + "\n")
    print(job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
