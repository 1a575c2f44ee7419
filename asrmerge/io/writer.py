"""Write checkpoints atomically, one tensor at a time: a single file, a (sharded) Hugging Face folder, or stdout.

Destinations (``-o``):

- ``-``: safetensors bytes on stdout; refused when stdout is a terminal;
- a path ending in ``/``, an existing folder, or a name without a suffix: a Hugging Face folder with
  ``model.safetensors`` (or ``model-0000i-of-0000n.safetensors`` and an index with ``shard_size``), the
  support files (config, generation config, processor, tokenizer) of the input it was made from, and a
  model card ``README.md`` built from the provenance metadata (:mod:`asrmerge.io.card`);
- any other path (``.safetensors``, ``.st``): one safetensors file.

Files are written under a temporary name beside the destination, flushed to disk, then renamed into
place; a folder is assembled under a temporary name and swapped in. A failure, a full disk or Ctrl-C
removes the temporary and leaves the old destination (or none): never a truncated output.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import BinaryIO

import torch

from asrmerge.errors import AsrmergeError, UsageError
from asrmerge.io.safetensors import StreamWriter
from asrmerge.io.tensors import TensorInfo, torch_dtype

TERMINAL_HINT = "use -o FILE or a pipe"


def output_kind(dest: str) -> str:
    """``stdout``, ``folder`` or ``file``: what ``-o dest`` writes (see the module docstring)."""
    if dest == "-":
        return "stdout"
    p = Path(dest)
    if dest.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
        return "folder"
    return "file"


def check_destination(dest: str) -> str:
    """Refuse destinations that can never be written, before any work is done; returns the kind."""
    kind = output_kind(dest)
    if kind == "stdout" and sys.stdout.isatty():
        raise UsageError("refusing to write a checkpoint to a terminal", subject="-o -", hint=TERMINAL_HINT)
    p = Path(dest)
    if kind == "folder" and p.is_dir() and any(p.iterdir()) and not _is_model_folder(p):
        raise UsageError("exists and is not a model folder; refusing to replace it", subject=dest,
                         hint="choose a new or empty folder")
    if kind == "file" and p.is_dir():
        raise UsageError("is a folder", subject=dest, hint="end the path with / to write a model folder")
    parent = p.resolve().parent
    if kind != "stdout" and not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist", subject=dest, hint="create it first")
    return kind


def _is_model_folder(p: Path) -> bool:
    names = {c.name for c in p.iterdir()}
    return bool(names & {"config.json", "model.safetensors", "model.safetensors.index.json"}) or any(
        n.startswith("model-") and n.endswith(".safetensors") for n in names)


def _shard(infos: list[TensorInfo], shard_size: int | None) -> list[list[TensorInfo]]:
    if not shard_size:
        return [infos]
    shards: list[list[TensorInfo]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > shard_size:
            shards.append([])
            size = 0
        shards[-1].append(info)
        size += info.nbytes
    return shards


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CheckpointWriter:
    """Stream tensors into ``dest``; commit on success, remove everything on failure.

    Use as a context manager; call :meth:`write` once per tensor in the order of ``infos`` (the dtypes
    in ``infos`` are the output dtypes: tensors are cast to them, rounding to nearest even).

    Args:
        dest: ``-``, a file path or a folder path (see :func:`output_kind`).
        infos: every output tensor, in write order, with its output dtype.
        metadata: safetensors ``__metadata__`` (strings); ``format: pt`` is added for transformers.
        shard_size: largest shard in bytes, for folders; ``None`` writes one ``model.safetensors``.
        support: files to place beside the weights in a folder (config, tokenizer, ...).
    """

    def __init__(self, dest: str, infos: list[TensorInfo], *, metadata: dict[str, str],
                 shard_size: int | None = None, support: dict[str, bytes] | None = None) -> None:
        self.dest = dest
        self.kind = check_destination(dest)
        self.metadata = {"format": "pt", **metadata}
        self.support = dict(support or {})
        self.shards = _shard(infos, shard_size if self.kind == "folder" else None)
        self.infos = infos
        self._tmp: Path | None = None
        self._stream: BinaryIO | None = None
        self._writer: StreamWriter | None = None
        self._shard_no = -1
        self._count = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> CheckpointWriter:
        if self.kind != "stdout":
            p = Path(self.dest)
            self._tmp = p.parent / f".{p.name.rstrip('/') or 'out'}.asrmerge-tmp-{uuid.uuid4().hex[:8]}"
            if self.kind == "folder":
                self._tmp.mkdir()
        self._next_shard()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._commit()
        else:
            self._abort()

    def _shard_name(self, i: int) -> str:
        if len(self.shards) == 1:
            return "model.safetensors"
        return f"model-{i + 1:05d}-of-{len(self.shards):05d}.safetensors"

    def _next_shard(self) -> None:
        self._close_stream()
        self._shard_no += 1
        if self._shard_no >= len(self.shards):
            self._writer = None
            return
        if self.kind == "stdout":
            self._stream = sys.stdout.buffer
        elif self.kind == "file":
            assert self._tmp is not None
            self._stream = open(self._tmp, "wb")
        else:
            assert self._tmp is not None
            self._stream = open(self._tmp / self._shard_name(self._shard_no), "wb")
        self._writer = StreamWriter(self._stream, self.shards[self._shard_no], self.metadata)
        if self._writer.done:
            self._next_shard()

    def _close_stream(self) -> None:
        s, self._stream = self._stream, None
        if s is None:
            return
        s.flush()
        if s is not sys.stdout.buffer:
            os.fsync(s.fileno())
            s.close()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write the next tensor (it must be ``name``), cast to its output dtype."""
        if self._writer is None:
            raise AsrmergeError(f"tensor {name} written after the last one", subject=self.dest)
        info = self._writer.infos[self._writer.next]
        if info.name != name:
            raise AsrmergeError(f"tensor {name} written out of order (expected {info.name})", subject=self.dest)
        try:
            self._writer.write(tensor.to(torch_dtype(info.dtype)))
        except OSError as e:
            raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=self.dest,
                                hint="free some disk space or choose another -o") from e
        self._count += 1
        if self._writer.done:
            self._next_shard()

    def _commit(self) -> None:
        if self._count != len(self.infos):
            self._abort()
            raise AsrmergeError(f"only {self._count} of {len(self.infos)} tensors were written", subject=self.dest)
        self._close_stream()
        if self.kind == "stdout":
            return
        assert self._tmp is not None
        dest = Path(self.dest)
        try:
            if self.kind == "folder":
                self._finish_folder()
                _fsync_dir(self._tmp)
                old = None
                if dest.exists():
                    old = dest.parent / f".{dest.name}.asrmerge-old-{uuid.uuid4().hex[:8]}"
                    os.replace(dest, old)
                os.replace(self._tmp, dest)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self._tmp, dest)
            _fsync_dir(dest.resolve().parent)
        except OSError as e:
            self._abort()
            raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=self.dest,
                                hint="free some disk space or choose another -o") from e
        except BaseException:
            self._abort()
            raise

    def _finish_folder(self) -> None:
        assert self._tmp is not None
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": sum(i.nbytes for i in self.infos)},
                "weight_map": {i.name: self._shard_name(k) for k, shard in enumerate(self.shards) for i in shard},
            }
            (self._tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        support = dict(self.support)
        if "asrmerge.version" in self.metadata and "README.md" not in support:
            from asrmerge.io.card import model_card

            support["README.md"] = model_card(self.metadata, Path(self.dest).name).encode()
        if "config.json" in support:
            support["config.json"] = _config_with_dtype(support["config.json"], self.infos)
        for name, data in support.items():
            with open(self._tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    def _abort(self) -> None:
        s, self._stream = self._stream, None
        if s is not None and s is not sys.stdout.buffer:
            s.close()
        if self._tmp is not None and self._tmp.exists():
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)
        self._tmp = None


def _config_with_dtype(raw: bytes, infos: list[TensorInfo]) -> bytes:
    """config.json with its dtype fields set to the weights' dtype, so transformers loads them as written."""
    sizes: dict[str, int] = {}
    for i in infos:
        if i.is_float:
            sizes[i.dtype] = sizes.get(i.dtype, 0) + i.numel
    if not sizes:
        return raw
    name = str(torch_dtype(max(sizes, key=lambda k: sizes[k]))).removeprefix("torch.")
    try:
        cfg = json.loads(raw)
    except ValueError:
        return raw
    cfg["dtype"] = name
    if "torch_dtype" in cfg:
        cfg["torch_dtype"] = name
    cfg.setdefault("architectures", ["WhisperForConditionalGeneration"])
    return (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()

