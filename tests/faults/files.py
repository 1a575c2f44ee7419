"""Damaged and hostile files the fault cases and the parser tests share (built in memory, no fixtures)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

FAST = ["--batch-size", "1", "--max-new-tokens", "2", "--language", "en", "--device", "cpu", "--chunk-length", "2"]


class Evil:
    """A pickle whose loading would create the marker file: proof, by its absence, that nothing unpickled it."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil(marker: Path) -> Evil:
    e = Evil()
    e.marker = str(marker)
    return e


def safetensors_bytes(header: object, data: bytes = b"") -> bytes:
    """A safetensors file with this header (a JSON value, or raw bytes) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def entry(**kw: object) -> dict[str, object]:
    return {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **kw}}


# damaged headers: file name -> (file bytes, what the error says)
HEADERS: dict[str, tuple[bytes, str]] = {
    "offsets-strings": (safetensors_bytes(entry(data_offsets=["0", "8"]), bytes(8)),
                        'data_offsets ["0", "8"] is not two non-negative integers'),
    "offsets-floats": (safetensors_bytes(entry(data_offsets=[0.0, 8.0]), bytes(8)),
                       "data_offsets [0.0, 8.0] is not two non-negative integers"),
    "offsets-null": (safetensors_bytes(entry(data_offsets=None), bytes(8)),
                     "data_offsets null is not two non-negative integers"),
    "dtype-list": (safetensors_bytes(entry(dtype=["F32"]), bytes(8)), "dtype is a list, not a string"),
    "nested-100000": (safetensors_bytes(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
                      "header JSON is nested too deeply"),
    "shape-4.7": (safetensors_bytes(entry(shape=[4.7], data_offsets=[0, 16]), bytes(16)),
                  "shape [4.7] is not a list of non-negative integers"),
    "shape-string-4": (safetensors_bytes(entry(shape=["4"], data_offsets=[0, 16]), bytes(16)),
                       'shape ["4"] is not a list of non-negative integers'),
    "shape-true": (safetensors_bytes(entry(shape=[True], data_offsets=[0, 4]), bytes(4)),
                   "shape [true] is not a list of non-negative integers"),
    "shape-is-string": (safetensors_bytes(entry(shape="4", data_offsets=[0, 16]), bytes(16)),
                        'shape "4" is not a list of non-negative integers'),
    "length-0x80": (struct.pack("<Q", 0x80) + b" " * 0x80, "its header does not start with '{'"),
    "truncated-header": (safetensors_bytes(entry(), bytes(8))[:20], "is truncated: header needs"),
    "truncated-data": (safetensors_bytes(entry(), bytes(5)), "is truncated: tensors need 8 bytes"),
    "oversized-header": (struct.pack("<Q", 1 << 40) + b"{}", "over the 100000000-byte limit"),
}
