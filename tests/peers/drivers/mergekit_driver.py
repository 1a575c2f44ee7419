"""Runs inside the mergekit venv (never imports asrmerge): merges raw safetensors files with ``mergekit-pytorch``.

Usage: ``python mergekit_driver.py JOBS.json RESULT.json``. JOBS.json is a list of jobs
``{"config": "merge.yaml", "out": "merged.safetensors", "options": ["--random-seed", "1"]}``. Each job runs
the click command behind mergekit's ``mergekit-pytorch`` entry point (``mergekit.scripts.merge_raw_pytorch``)
on its YAML config into a scratch folder, then joins the shards it wrote into the one ``out`` file.
RESULT.json gets, per job, the seconds it took and the error (a traceback) if it failed; a failing job does
not stop the others. Several jobs share one process so the import cost is paid once.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

T_START = time.perf_counter()

from mergekit.scripts.merge_raw_pytorch import main as mergekit_pytorch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

IMPORT_S = time.perf_counter() - T_START


def run(job: dict) -> None:
    out = Path(job["out"])
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".mergekit-") as scratch:
        mergekit_pytorch.main([job["config"], scratch, "--quiet", *job.get("options", [])], standalone_mode=False)
        tensors: dict = {}
        for shard in sorted(Path(scratch).glob("*.safetensors")):
            tensors.update(load_file(shard))
        if not tensors:
            raise RuntimeError(f"mergekit-pytorch wrote no safetensors file into {scratch}")
        save_file(tensors, out, metadata={"format": "pt", "peer": "mergekit"})


def main() -> int:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    results = []
    for job in jobs:
        t0 = time.perf_counter()
        try:
            run(job)
            error = None
        except BaseException:  # noqa: BLE001  (click raises SystemExit too; report it per job)
            error = traceback.format_exc()
        results.append({"out": job["out"], "seconds": time.perf_counter() - t0, "error": error})
    Path(sys.argv[2]).write_text(json.dumps({"import_s": IMPORT_S, "jobs": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
