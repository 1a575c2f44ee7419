"""Where a command computes: ``--device`` (or ``ASRMERGE_DEVICE``) resolved to a torch device, for every command.

``auto`` is CUDA when a GPU is visible (``cuda:$LOCAL_RANK`` under torchrun, one process per GPU), else the
CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` name a device, which this machine must have. A command whose
kernels run only on some kinds of device passes them as ``kinds`` (merge and svd-inspect: cpu and cuda).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from asrmerge.errors import UsageError

if TYPE_CHECKING:
    import torch

KINDS = ("cpu", "cuda", "mps")
KERNELS = ("cpu", "cuda")  # where the merge and inspection kernels run (the only kinds they are tested on)
NAMES = ("auto", "cpu", "cuda", "mps")  # what TAB offers after --device (cuda:N is typed)


def _hint(kinds: Sequence[str]) -> str:
    names = ["auto", *(n for k in kinds for n in ((k, f"{k}:N") if k == "cuda" else (k,)))]
    return f"use {', '.join(names[:-1])} or {names[-1]}"


def resolve(name: str | None, *, env: Mapping[str, str] | None = None, kinds: Sequence[str] = KINDS) -> torch.device:
    """The torch device for ``--device NAME``.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or ``None`` (``$ASRMERGE_DEVICE``, else ``auto``).
        env: the environment (default ``os.environ``): ``ASRMERGE_DEVICE``, and ``LOCAL_RANK`` for ``auto``.
        kinds: the device types the caller can compute on (``auto`` picks CUDA only if it is one).
    Returns:
        The device: with ``auto``, ``cuda:LOCAL_RANK`` (modulo the GPUs; ``cuda:0`` without it) when a GPU is
        visible, else the CPU.
    Raises:
        UsageError: naming ``--device``, for an unknown device, one outside ``kinds``, or one this machine lacks.
    """
    import torch

    env = os.environ if env is None else env
    name = name or env.get("ASRMERGE_DEVICE") or "auto"
    if name == "auto":
        if "cuda" in kinds and torch.cuda.is_available():
            local = env.get("LOCAL_RANK", "")
            index = int(local) % torch.cuda.device_count() if local.isdigit() else 0
            return torch.device("cuda", index)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r}", subject="--device", hint=_hint(kinds)) from None
    if device.type not in kinds:
        raise UsageError(f"unsupported device {name!r}", subject="--device", hint=_hint(kinds))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("CUDA is not available on this machine", subject="--device", hint="use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{name}: this machine has {torch.cuda.device_count()} CUDA devices", subject="--device")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("MPS is not available on this machine", subject="--device", hint="use --device cpu")
    return device
