"""Virtual environments of the peer implementations, created on demand under ``.cache/peers/<name>/``.

Each peer gets its own venv so its dependencies (mergekit pins transformers 5, FusionBench pulls
lightning and hydra) never meet asrmerge's. The CPU torch wheel on local disk goes in first, so the peer's
``torch>=...`` requirement is already met and pip never fetches a CUDA build; the installed torch is
checked afterwards. A venv is reused while its ``peer.json`` records the same requirements and a
Python that still runs; otherwise it is rebuilt. A lock file serialises concurrent creators.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ASRMERGE_PEERS_DIR", ROOT / ".cache" / "peers"))
TORCH = "torch==2.13.0"


@dataclass(frozen=True)
class PeerSpec:
    """What to install for one peer: its pinned requirements and the distributions whose versions we record."""

    name: str
    requirements: tuple[str, ...]
    record: tuple[str, ...]
    module: str  # imported once after installation, to fail early


PEERS: dict[str, PeerSpec] = {
    "mergekit": PeerSpec("mergekit", ("mergekit==0.1.5",),
                         ("mergekit", "torch", "transformers", "safetensors", "pyyaml"), "mergekit.merge_methods"),
    "fusion_bench": PeerSpec("fusion_bench", ("fusion-bench==0.2.33",),
                             ("fusion-bench", "torch", "safetensors", "lightning", "transformers"),
                             "fusion_bench.method.task_singular_vector.utils.TSVM_utils"),
}


class PeerSetupError(RuntimeError):
    """A peer could not be installed; the message says which step failed and shows pip's output."""


@dataclass(frozen=True)
class PeerEnv:
    """A ready peer venv."""

    name: str
    path: Path
    python: Path
    versions: dict[str, str]
    setup_s: float | None  # seconds spent creating it now; None when it was reused


def _run(cmd: list[str], step: str, timeout: float = 1800) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"})
    if r.returncode != 0:
        tail = (r.stdout + r.stderr)[-4000:]
        raise PeerSetupError(f"{step} failed (exit {r.returncode}): {' '.join(cmd)}\n{tail}")
    return r.stdout


def _versions(python: Path, spec: PeerSpec) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys, torch\n"
            f"names = {list(spec.record)!r}\n"
            "out = {n: m.version(n) for n in names}\n"
            "out['python'] = sys.version.split()[0]\n"
            "out['torch.cuda'] = str(torch.version.cuda)\n"
            "print(json.dumps(out))\n")
    return dict(json.loads(_run([str(python), "-c", code], "reading versions")))


def _usable(path: Path, spec: PeerSpec) -> dict[str, str] | None:
    meta = path / "peer.json"
    python = path / "bin" / "python"
    if not meta.is_file() or not python.exists():
        return None
    try:
        rec = json.loads(meta.read_text())
    except ValueError:
        return None
    if rec.get("requirements") != [TORCH, *spec.requirements]:
        return None
    r = subprocess.run([str(python), "-c", "import sys"], capture_output=True)
    return dict(rec["versions"]) if r.returncode == 0 else None


def ensure(name: str, *, rebuild: bool = False) -> PeerEnv:
    """Create (or reuse) the venv of peer ``name`` and return it with the installed versions.

    Raises:
        PeerSetupError: venv creation, the torch install, the peer install or its import failed, or pip
            replaced the CPU torch 2.13.0 (the message carries pip's output).
    """
    spec = PEERS[name]
    path = CACHE / name
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rebuild and (versions := _usable(path, spec)) is not None:
            return PeerEnv(name, path, path / "bin" / "python", versions, None)
        t0 = time.perf_counter()
        shutil.rmtree(path, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(path)], "creating the venv")
        python = path / "bin" / "python"
        pip = [str(python), "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
        _run([*pip, TORCH], f"installing {TORCH} (the CPU wheel on local disk)")
        _run([*pip, *spec.requirements], f"installing {' '.join(spec.requirements)}")
        _run([str(python), "-c", f"import {spec.module}"], f"importing {spec.module}")
        versions = _versions(python, spec)
        if versions["torch"].split("+")[0] != TORCH.split("==")[1] or versions["torch.cuda"] != "None":
            raise PeerSetupError(f"{name}: pip replaced the CPU {TORCH} with torch {versions['torch']} "
                                 f"(cuda {versions['torch.cuda']}); install the peer with --no-deps instead")
        setup_s = time.perf_counter() - t0
        (path / "peer.json").write_text(json.dumps({"requirements": [TORCH, *spec.requirements],
                                                    "versions": versions, "setup_s": round(setup_s, 1)},
                                                   indent=1) + "\n")
        return PeerEnv(name, path, python, versions, setup_s)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.peers.env [--rebuild] [NAME...]``: create the peer venvs and print one JSON line each."""
    args = list(sys.argv[1:] if argv is None else argv)
    rebuild = "--rebuild" in args
    names = [a for a in args if a != "--rebuild"] or list(PEERS)
    for n in names:
        env = ensure(n, rebuild=rebuild)
        print(json.dumps({"peer": n, "path": str(env.path), "setup_s": env.setup_s, "versions": env.versions}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
