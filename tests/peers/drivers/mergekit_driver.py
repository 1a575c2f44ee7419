"""Runs inside the mergekit venv (never imports asrmerge): merges raw safetensors files with ``mergekit-pytorch``.

Usage: ``python mergekit_driver.py JOBS.json RESULT.json``. JOBS.json is a list of jobs
``{"config": "merge.yaml", "out": "merged.safetensors", "options": ["--random-seed", "1"]}``. Each job runs
the click command behind mergekit's ``mergekit-pytorch`` entry point (``mergekit.scripts.merge_raw_pytorch``)
on its YAML config into a scratch folder, then joins the shards it wrote into the one ``out`` file.
RESULT.json gets, per job, the seconds it took and the error (a traceback) if it failed; a failing job does
not stop the others. Several jobs share one process so the import cost is paid once.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import jobloop  # the drivers' shared job loop, beside this file

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


if __name__ == "__main__":
    raise SystemExit(jobloop.main(run, IMPORT_S))
