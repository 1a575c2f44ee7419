"""What a checkpoint says about a tensor before it is read, and the dtype names used everywhere.

Three spellings of a dtype meet here: the CLI's (``fp32``), safetensors' (``F32``) and torch's
(``torch.float32``). Everything else converts through these tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asrmerge.errors import InputError, UsageError

if TYPE_CHECKING:
    import torch

# safetensors dtype code -> (bytes per element, torch attribute name)
ST_DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "float64"),
    "F32": (4, "float32"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "I64": (8, "int64"),
    "I32": (4, "int32"),
    "I16": (2, "int16"),
    "I8": (1, "int8"),
    "U8": (1, "uint8"),
    "BOOL": (1, "bool"),
}

# CLI name -> safetensors code, for the floating dtypes users choose between
CLI_DTYPES: dict[str, str] = {"fp32": "F32", "fp16": "F16", "bf16": "BF16", "fp64": "F64"}
FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16"})


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as a header describes it: name, shape and safetensors dtype code."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * ST_DTYPES[self.dtype][0]

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_CODES

    def with_dtype(self, dtype: str) -> TensorInfo:
        return TensorInfo(self.name, self.shape, dtype)


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element is finite. The sum is non-finite iff an element is, or it overflows: a fast
    test (one memory pass) with the exact check only in the overflow case. fp16 and bf16 are summed in their
    own dtype (torch accumulates in fp32 and rounds the total; a total past fp16's 65504 takes the exact
    check), which is several times faster than asking for an fp32 result."""
    import torch

    if not t.is_floating_point() or t.numel() == 0:
        return True
    total = t.sum() if t.dtype in (torch.float16, torch.bfloat16, torch.float64) else t.sum(dtype=torch.float32)
    if bool(torch.isfinite(total)):
        return True
    return bool(torch.isfinite(t).all())


def finite(t: torch.Tensor, name: str, label: str) -> torch.Tensor:
    """``t``, or an :class:`InputError` naming the tensor and file if it holds NaN or Inf."""
    if not all_finite(t):
        raise InputError(f"tensor {name} has NaN or Inf values", subject=label,
                         hint="the checkpoint is damaged or its training diverged")
    return t


def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a safetensors code (``"F16"`` -> ``torch.float16``)."""
    import torch

    return getattr(torch, ST_DTYPES[code][1])


def st_code(dtype: torch.dtype) -> str:
    """The safetensors code of a torch dtype."""
    name = str(dtype).removeprefix("torch.")
    for code, (_, tname) in ST_DTYPES.items():
        if tname == name:
            return code
    raise UsageError(f"dtype {name} cannot be stored in safetensors")


def cli_dtype(name: str, *, option: str = "--dtype") -> str:
    """The safetensors code of a CLI dtype name (``fp16``), or a usage error listing the valid ones."""
    code = CLI_DTYPES.get(name.lower())
    if code is None:
        raise UsageError(f"unknown dtype {name!r}", subject=option, hint=f"use one of {', '.join(CLI_DTYPES)}")
    return code


def cli_name(code: str) -> str:
    """The CLI name of a safetensors float code (``"BF16"`` -> ``"bf16"``)."""
    for name, c in CLI_DTYPES.items():
        if c == code:
            return name
    return code.lower()


def parse_size(text: str, *, option: str) -> int:
    """Bytes in a size such as ``2GB``, ``500MiB`` or ``1048576`` (decimal units are powers of 1000).

    Args:
        text: the size as given.
        option: the option it was given to (``--shard-size``, ``--memory``), named in the error.
    Raises:
        UsageError: naming ``option``, for anything but a finite positive size of at least one byte.
    """
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    s = text.strip().upper().replace(" ", "")
    num = s.rstrip("KMGTIB")
    unit = s[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in units or not math.isfinite(value) or value * units[unit] < 1:
        raise UsageError(f"not a size: {text!r}", subject=option, hint="write it like 2GB, 500MiB or 1000000")
    return int(value * units[unit])
