"""The job loop both peer drivers share: read JOBS.json, run each job, write RESULT.json.

A driver calls :func:`main` with its own ``run(job)`` and the seconds its imports took. Each job's wall time
is recorded, and a failing job records its traceback instead of stopping the others (``RESULT.json``:
``{"import_s": ..., "jobs": [{"out", "seconds", "error"}]}``). Runs inside the peers' environments, so it
imports nothing beyond the standard library.
"""

import json
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path


def main(run: Callable[[dict], None], import_s: float,
         context: Callable[[], AbstractContextManager[object]] = nullcontext) -> int:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    results = []
    for job in jobs:
        t0 = time.perf_counter()
        try:
            with context():
                run(job)
            error = None
        except BaseException:  # noqa: BLE001  (click raises SystemExit too; report it per job)
            error = traceback.format_exc()
        results.append({"out": job["out"], "seconds": time.perf_counter() - t0, "error": error})
    Path(sys.argv[2]).write_text(json.dumps({"import_s": import_s, "jobs": results}))
    return 0
