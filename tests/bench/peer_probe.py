"""Runs inside a peer's venv (never imports asrmerge or tests): the peer's driver, with a progress log.

Usage: ``python peer_probe.py PEER JOBS.json RESULT.json`` with ``PROBE_LOG`` set to a file that gets one JSON
line per event, flushed at once so it survives the process being stopped: ``{"t": seconds since start,
"event": ..., "detail": ..., "anon_mb": this process's RssAnon, "data_mb": its VmData (what RLIMIT_DATA
counts)}``. Events:

- fusion_bench (tests/peers/drivers/fusion_bench_driver.py): ``load`` / ``loaded`` per input file, ``taskvec``
  per task vector made, ``svd`` per ``torch.linalg.svd`` call (with the matrix shape), ``saved``;
- mergekit: ``tensor`` per tensor its writer saves (the count is the tensors done), ``saved``. Unlike
  tests/peers/drivers/mergekit_driver.py, the shards mergekit writes are left as they are in the job's ``out``
  folder (not joined into one file, which would load the whole output into memory and add it to mergekit's
  peak).

RESULT.json as the drivers write it (tests/peers/drivers/jobloop.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
DRIVERS = Path(__file__).resolve().parents[1] / "peers" / "drivers"
sys.path.insert(0, str(DRIVERS))
_LOG = open(os.environ["PROBE_LOG"], "a", buffering=1)  # noqa: SIM115  (open for the life of the process)


def status_mb(*fields: str) -> list[float]:
    """Fields of /proc/self/status (kB) in MiB."""
    found = dict.fromkeys(fields, 0.0)
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in found:
                found[key] = int(line.split()[1]) / 1024
    return [found[k] for k in fields]


def log(event: str, detail: object = None) -> None:
    anon, data = status_mb("RssAnon", "VmData")
    _LOG.write(json.dumps({"t": round(time.perf_counter() - T0, 2), "event": event, "detail": detail,
                           "anon_mb": round(anon, 1), "data_mb": round(data, 1)}) + "\n")


def fusion_bench() -> int:
    import torch

    svd = torch.linalg.svd

    def counted_svd(a, *args, **kwargs):  # FusionBench calls torch.linalg.svd per tensor (and task)
        log("svd", list(a.shape))
        return svd(a, *args, **kwargs)

    torch.linalg.svd = counted_svd
    import fusion_bench_driver as d  # the peer's imports happen here

    load, sub, save = d.load, d.state_dict_sub, d.save_file

    def logged_load(path, dtype):
        log("load", Path(path).name)
        out = load(path, dtype)
        log("loaded", Path(path).name)
        return out

    def logged_sub(a, b, *args, **kwargs):
        out = sub(a, b, *args, **kwargs)
        log("taskvec")
        return out

    def logged_save(tensors, path, *args, **kwargs):
        save(tensors, path, *args, **kwargs)
        log("saved", Path(path).name)

    d.load, d.state_dict_sub, d.save_file = logged_load, logged_sub, logged_save
    log("imported")
    return d.jobloop.main(d.run, d.IMPORT_S, context=torch.no_grad)


def mergekit() -> int:
    import jobloop
    from mergekit.io.tensor_writer import TensorWriter
    from mergekit.scripts.merge_raw_pytorch import main as mergekit_pytorch

    import_s = time.perf_counter() - T0
    save_tensor = TensorWriter.save_tensor

    def logged_save_tensor(self, name, tensor, *args, **kwargs):
        save_tensor(self, name, tensor, *args, **kwargs)
        log("tensor", name)

    TensorWriter.save_tensor = logged_save_tensor
    log("imported")

    def run(job: dict) -> None:
        out = Path(job["out"])
        out.mkdir(parents=True, exist_ok=True)
        mergekit_pytorch.main([job["config"], str(out), "--quiet", *job.get("options", [])], standalone_mode=False)
        if not list(out.glob("*.safetensors")):
            raise RuntimeError(f"mergekit-pytorch wrote no safetensors file into {out}")
        log("saved", out.name)

    return jobloop.main(run, import_s)


if __name__ == "__main__":
    peer = sys.argv.pop(1)
    raise SystemExit({"fusion_bench": fusion_bench, "mergekit": mergekit}[peer]())
