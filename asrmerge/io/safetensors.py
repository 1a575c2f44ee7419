"""The safetensors format: read with ``pread``, written as a stream. The only safetensors code.

Reading uses ``os.preadv`` into a fresh buffer per tensor rather than mmap: pages of an mmap'd 3 GB
input stay in the process's resident set after their tensor is released, so peak RSS would grow with
every input read. With pread the page cache keeps the file and our RSS holds one tensor per input.

Writing streams: the header follows from the tensors' names, shapes and dtypes, which are known from
the inputs' headers before any arithmetic, so each tensor's bytes are written as soon as it exists.

The header is validated as the reference implementation does (offsets contiguous, in bounds, sizes
consistent with shapes) and every failure names the file and says what to do.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

import torch

from asrmerge.errors import InputError
from asrmerge.io.tensors import ST_DTYPES, TensorInfo, torch_dtype

MAX_HEADER = 100_000_000  # the reference implementation's limit
PICKLE_HINT = (
    "asrmerge never unpickles files; convert an openai-whisper .pt with `asrmerge convert`, "
    "or re-save the model with safetensors"
)


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file say it is, when they rule out safetensors: a short description."""
    if head[8:9] == b"{":  # a safetensors header length followed by its JSON
        return None
    # PROTO 2-5 and a first opcode; a safetensors length field of 0x80 bytes has zeros there instead
    if len(head) >= 3 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[2] != 0:
        return "a Python pickle (PyTorch .bin/.pt)"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (a PyTorch torch.save checkpoint)"
    if len(head) >= 8 and struct.unpack("<I", head[:4])[0] in (5, 6) and head[6:17] == b"WhisperSpec":
        return "a CTranslate2 model.bin"
    return None


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: object, limit: int = 40) -> str:
    """``value`` as JSON, cut to ``limit`` characters, for messages."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _count(value: object) -> bool:
    """A JSON integer that counts something: an int (not a boolean, not 4.0 or "4"), not negative."""
    return type(value) is int and value >= 0


class SafetensorsFile:
    """One safetensors file, opened for random access to its tensors.

    Args:
        path: the file.
        label: how errors name it (defaults to ``path``); stdin spools are labelled ``-``.
    """

    def __init__(self, path: str | os.PathLike[str], *, label: str | None = None) -> None:
        self.path = os.fspath(path)
        self.label = label or self.path
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise InputError(e.strerror or str(e), subject=self.label, hint="check the path") from e
        try:
            self.metadata, self.infos, self._offsets = self._parse()
        except BaseException:
            self.close()  # and forget the descriptor: __del__ must not close a number reused since
            raise

    def _fail(self, message: str, hint: str = "was the file written completely? re-create it") -> InputError:
        return InputError(message, subject=self.label, hint=hint)

    def _parse(self) -> tuple[dict[str, str], dict[str, TensorInfo], dict[str, int]]:
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, 24, 0)
        kind = sniff(head)
        if kind:
            raise self._fail(f"is {kind}, not safetensors",
                             hint=PICKLE_HINT if "pickle" in kind or "zip" in kind
                             else "pass its folder, or convert it: `asrmerge convert DIR -o OUT/`")
        if size < 8:
            raise self._fail("is empty" if size == 0 else "is truncated (shorter than a safetensors header)")
        n = struct.unpack("<Q", head[:8])[0]
        if n > MAX_HEADER:
            raise self._fail(f"is not a safetensors file (its header length field says {n} bytes, over the "
                             f"{MAX_HEADER}-byte limit)", hint="is it really a .safetensors file?")
        if 8 + n > size:
            raise self._fail(f"is truncated: header needs {8 + n} bytes, the file has {size}")
        if head[8:9] != b"{":
            raise self._fail("is not a safetensors file (its header does not start with '{')",
                             hint="is it really a .safetensors file?")
        try:
            header = json.loads(os.pread(self._fd, n, 8))
        except UnicodeDecodeError as e:
            raise self._fail(f"is not a safetensors file (header byte {e.start} is not UTF-8)",
                             hint="is it really a .safetensors file?") from None
        except json.JSONDecodeError as e:
            raise self._fail(f"is not a safetensors file (header is not JSON: {e.msg} at byte {e.pos})",
                             hint="is it really a .safetensors file?") from None
        except RecursionError:
            raise self._fail("is not a safetensors file (header JSON is nested too deeply)",
                             hint="is it really a .safetensors file?") from None
        if not isinstance(header, dict):
            raise self._fail(f"is not a safetensors file (header is {_json_type(header)}, not an object)")
        meta = header.pop("__metadata__", None)
        if meta is None:
            meta = {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise self._fail(f"__metadata__ must map strings to strings, not {_show(meta)}")
        entries = []
        for name, d in header.items():
            entries.append(self._entry(_show(name, 80), name, d))
        entries.sort(key=lambda e: (e[0], e[1]))
        pos = 0
        for begin, end, info in entries:
            if begin != pos:
                raise self._fail(f"tensor {_show(info.name, 80)}: data offsets overlap or leave a gap")
            pos = end
        data = size - 8 - n
        if pos > data:
            raise self._fail(f"is truncated: tensors need {pos} bytes of data, the file has {data}")
        if pos < data:
            raise self._fail(f"has {data - pos} bytes after its last tensor", hint="the file is damaged; re-create it")
        infos = {e[2].name: e[2] for e in entries}
        offsets = {e[2].name: 8 + n + e[0] for e in entries}
        return dict(meta), infos, offsets

    def _entry(self, shown: str, name: str, d: object) -> tuple[int, int, TensorInfo]:
        """One header entry, every field checked for its JSON type: (begin, end, info)."""
        damaged = "the file is damaged or was not written by a safetensors library; re-create it"
        if not isinstance(d, dict):
            raise self._fail(f"tensor {shown}: header entry is {_json_type(d)}, not an object", hint=damaged)
        for key in ("dtype", "shape", "data_offsets"):
            if key not in d:
                raise self._fail(f"tensor {shown}: header entry has no {key}", hint=damaged)
        dtype, shape, offsets = d["dtype"], d["shape"], d["data_offsets"]
        if not isinstance(dtype, str):
            raise self._fail(f"tensor {shown}: dtype is {_json_type(dtype)}, not a string", hint=damaged)
        if dtype not in ST_DTYPES:
            raise self._fail(f"tensor {shown}: dtype {_show(dtype)} is not supported", hint="use F32, F16 or BF16")
        if not isinstance(shape, list) or not all(_count(x) for x in shape):
            raise self._fail(f"tensor {shown}: shape {_show(shape)} is not a list of non-negative integers",
                             hint=damaged)
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_count(x) for x in offsets):
            raise self._fail(f"tensor {shown}: data_offsets {_show(offsets)} is not two non-negative integers",
                             hint=damaged)
        begin, end = offsets
        info = TensorInfo(name, tuple(shape), dtype)
        if end < begin or end - begin != info.nbytes:
            raise self._fail(f"tensor {shown}: offsets {begin}..{end} do not fit shape {_show(shape)} of {dtype}")
        return begin, end, info

    def _pread_into(self, buf: torch.Tensor, offset: int) -> None:
        view = memoryview(buf.numpy()).cast("B")  # type: ignore[arg-type]
        got = 0
        while got < len(view):
            k = os.preadv(self._fd, [view[got:]], offset + got)
            if k <= 0:
                raise self._fail(f"ended early at byte {offset + got}")
            got += k

    def read(self, name: str) -> torch.Tensor:
        """The tensor ``name`` in its stored dtype, in a buffer of its own."""
        info = self.infos[name]
        buf = torch.empty(info.nbytes, dtype=torch.uint8)
        self._pread_into(buf, self._offsets[name])
        return buf.view(torch_dtype(info.dtype)).reshape(info.shape)

    def read_rows(self, name: str, rows: Iterable[int]) -> torch.Tensor:
        """Rows of ``name`` along dim 0 (stacked), reading only those bytes."""
        info = self.infos[name]
        rows = list(rows)
        row_bytes = info.nbytes // info.shape[0] if info.shape and info.shape[0] else 0
        buf = torch.empty(len(rows) * row_bytes, dtype=torch.uint8)
        for i, r in enumerate(rows):
            if row_bytes:
                self._pread_into(buf[i * row_bytes:(i + 1) * row_bytes], self._offsets[name] + r * row_bytes)
        return buf.view(torch_dtype(info.dtype)).reshape((len(rows), *info.shape[1:]))

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of ``name`` along dim 0 (elements, for a 1-D tensor), one contiguous read."""
        info = self.infos[name]
        row_bytes = info.nbytes // info.shape[0] if info.shape and info.shape[0] else 0
        buf = torch.empty((stop - start) * row_bytes, dtype=torch.uint8)
        if buf.numel():
            self._pread_into(buf, self._offsets[name] + start * row_bytes)
        return buf.view(torch_dtype(info.dtype)).reshape((stop - start, *info.shape[1:]))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def header_bytes(infos: list[TensorInfo], metadata: dict[str, str]) -> bytes:
    """The length prefix and JSON header of a file holding ``infos`` in this order, padded to 8 bytes."""
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    pos = 0
    for info in infos:
        header[info.name] = {"dtype": info.dtype, "shape": list(info.shape), "data_offsets": [pos, pos + info.nbytes]}
        pos += info.nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a tensor, without a copy when it is already contiguous."""
    flat = t.detach().contiguous().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")  # type: ignore[arg-type]


class StreamWriter:
    """Writes one safetensors file to a binary stream, tensor by tensor, in the order of ``infos``."""

    def __init__(self, stream: BinaryIO, infos: list[TensorInfo], metadata: dict[str, str]) -> None:
        self.stream = stream
        self.infos = infos
        self.next = 0
        stream.write(header_bytes(infos, metadata))

    @property
    def done(self) -> bool:
        return self.next == len(self.infos)

    def write(self, tensor: torch.Tensor) -> None:
        """Write the next tensor; it must have the shape and dtype its header entry promised."""
        info = self.infos[self.next]
        if tuple(tensor.shape) != info.shape or tensor.dtype != torch_dtype(info.dtype):
            raise ValueError(f"{info.name}: got {tuple(tensor.shape)} {tensor.dtype}, header says {info.shape} {info.dtype}")
        data = tensor_bytes(tensor)
        # large writes in slices: some pipes and file systems take at most 2 GiB per call
        step = 1 << 28
        for i in range(0, len(data), step):
            self.stream.write(data[i:i + step])
        self.next += 1
