"""``asrmerge convert``: Whisper checkpoints between CTranslate2, openai-whisper and Hugging Face formats.

Sources: a CTranslate2 (faster-whisper) folder, split ``model.bin.partN`` files included; an openai-whisper
``.pt`` (read with ``torch.load(weights_only=True)``); ``packaged:tiny.en`` / ``packaged:base``; any
Hugging Face folder or safetensors file. Targets: a Hugging Face folder (weights, config, generation
config, processor and tokenizer: ``transformers`` loads it directly), a safetensors file, or an
openai-whisper ``.pt``. Tensors keep their values bit for bit unless ``dtype`` asks for a cast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asrmerge.errors import UsageError
from asrmerge.io.checkpoint import Checkpoint, open_checkpoint
from asrmerge.io.hf_files import SUPPORT_FILES
from asrmerge.io.metadata import provenance
from asrmerge.io.tensors import finite
from asrmerge.io.writer import CheckpointWriter, cast_finite, check_destination, output_kind
from asrmerge.progress import NoProgress, Progress
from asrmerge.taskvectors import output_infos

TARGETS = ("auto", "hf", "openai")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


@dataclass(frozen=True)
class Converted:
    """What :func:`convert` wrote, for the command's closing message.

    Attributes:
        target: ``hf`` or ``openai``.
        dtype: the float dtype of the output's weights (safetensors code: ``F16``, ``F32``, ``BF16``).
        cast: whether ``dtype`` came from a cast (``--dtype``) rather than the source's own.
        no_tokenizer: an output folder without tokenizer files (an openai-whisper ``.pt`` or a CTranslate2
            folder without ``tokenizer.json``, converted without ``config_dir``): transformers cannot decode with it.
    """

    target: str
    dtype: str
    cast: bool
    no_tokenizer: bool


def target_of(dest: str, to: str) -> str:
    """``hf`` or ``openai``: ``auto`` picks openai for a ``.pt``/``.pth`` destination."""
    if to not in TARGETS:
        raise UsageError(f"unknown target {to!r}", subject="--to", hint="use hf or openai")
    if to == "auto":
        return "openai" if dest.endswith((".pt", ".pth")) else "hf"
    return to


def _open_source(src: str, parts: list[Path]) -> Checkpoint:
    if parts:
        from asrmerge.io.ct2 import Ct2Backend

        if not Path(src).is_dir():
            raise UsageError("--part needs a CTranslate2 folder as SRC", subject=src)
        return Checkpoint(Ct2Backend(Path(src), label=src, extra_parts=parts))
    return open_checkpoint(src, allow_pickle=True)


def _support(src: Checkpoint, config_dir: Path | None) -> dict[str, bytes]:
    files = src.support_files()
    if config_dir is not None:
        if not config_dir.is_dir():
            raise UsageError("is not a folder", subject=str(config_dir), hint="--config takes a Whisper model folder")
        found = {n: (config_dir / n).read_bytes() for n in SUPPORT_FILES if (config_dir / n).is_file()}
        if not found:
            raise UsageError("holds no config.json or tokenizer files", subject=str(config_dir),
                             hint="--config takes a Hugging Face Whisper folder")
        files.update(found)
    return files


def convert(src_spec: str, dest: str, *, to: str = "auto", dtype: str | None = None, shard_size: int | None = None,
            config_dir: Path | None = None, parts: list[Path] | None = None, command: str = "",
            progress: Progress | None = None, force: bool = False) -> Converted:
    """Convert ``src_spec`` to ``dest``; returns what was written (format, dtype, tokenizer or not).

    Args:
        src_spec: the source checkpoint (see the module docstring).
        dest: output folder, ``.safetensors`` file, ``-``, or ``.pt`` for openai-whisper.
        to: ``auto``, ``hf`` or ``openai``.
        dtype: output float dtype (safetensors code), or ``None`` to keep each tensor's.
        shard_size: shard the output folder's weights at this many bytes.
        config_dir: a folder whose config/tokenizer files replace the generated ones (openai sources have
            no tokenizer; pass the matching Hugging Face folder).
        parts: further ``model.bin.partN`` files of a CTranslate2 model kept in other folders.
        force: replace what is not an earlier output at ``dest`` (see :mod:`asrmerge.io.writer`).
    """
    progress = progress or NoProgress()
    target = target_of(dest, to)
    inputs = [src_spec, *(str(p) for p in parts or []), *([str(config_dir)] if config_dir else [])]
    where = check_destination(dest, force=force, inputs=inputs)
    if target == "openai" and where.kind != "file":
        raise UsageError("an openai-whisper checkpoint is a single .pt file", subject=dest, hint="use -o model.pt")
    with _open_source(src_spec, list(parts or [])) as src:
        infos = output_infos(src, dtype)
        support = _support(src, config_dir)
        out_dtype = dtype or src.dtype
        folder = target == "hf" and output_kind(dest) == "folder"
        done = Converted(target, out_dtype, dtype is not None,
                         folder and not any(n in support for n in TOKENIZER_FILES))
        progress.start(len(infos), "convert")
        if target == "openai":
            import json

            from asrmerge.io.openai import save_openai

            if "config.json" not in support:
                raise UsageError("has no config.json (needed for the attention heads)", subject=src.label,
                                 hint="pass --config with the model's Hugging Face folder")
            tensors = {}
            for info in infos:
                tensors[info.name] = cast_finite(finite(src.get(info.name), info.name, src.label), info.dtype,
                                                 info.name, dest)
                progress.advance(info.name)
            assert where.path is not None
            save_openai(tensors, json.loads(support["config.json"]), where.path,
                        metadata=provenance("model", command=command, dtype=dtype or src.dtype, source=src.label))
            return done
        meta = provenance("model", command=command, dtype=dtype or src.dtype, source=src.label,
                          fingerprint=src.fingerprint())
        with CheckpointWriter(dest, infos, metadata=meta, shard_size=shard_size, support=support, force=force,
                              inputs=inputs) as w:
            for info in infos:
                w.write(info.name, finite(src.get(info.name), info.name, src.label))
                progress.advance(info.name)
    return done

