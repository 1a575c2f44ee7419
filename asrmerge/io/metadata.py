"""Provenance written into every output's safetensors ``__metadata__`` (string values only).

Keys: ``asrmerge.version``; ``asrmerge.kind`` (``model`` or ``taskvec``); ``asrmerge.command`` (the
command line); ``asrmerge.dtype`` (of the stored tensors, CLI spelling); ``asrmerge.base_fingerprint``
(the base model's fingerprint, see :mod:`asrmerge.io.checkpoint`); commands add their own
(``asrmerge.algo``, ``asrmerge.params``, ``asrmerge.inputs``, ...). Values that are not strings are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from asrmerge import __version__
from asrmerge.io.tensors import cli_name


def provenance(kind: str, *, command: str, dtype: str, base_fingerprint: str | None = None,
               **extra: Any) -> dict[str, str]:
    """The metadata of an output of ``kind`` (``model``/``taskvec``) stored in ``dtype`` (safetensors code)."""
    meta = {
        "asrmerge.version": __version__,
        "asrmerge.kind": kind,
        "asrmerge.command": command,
        "asrmerge.dtype": cli_name(dtype),
    }
    if base_fingerprint:
        meta["asrmerge.base_fingerprint"] = base_fingerprint
    for key, value in extra.items():
        meta[f"asrmerge.{key}"] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return meta
