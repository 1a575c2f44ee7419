"""asrmerge's Python API: the commands as functions, over paths or in-memory state dicts.

    import asrmerge

    tau = asrmerge.taskvec("base/", "ft-news/")                       # {name: tensor}, fp32
    merged = asrmerge.merge("ties", ["ft-news/", "ft-kids/"], base="base/", params={"density": 0.2})
    asrmerge.apply("base/", "news.safetensors", "news-half/", scale=0.5)
    records = asrmerge.transcribe("news-half/", "dev.jsonl", language="pt")
    print(asrmerge.wer(records)["micro"]["wer"])

Each function runs the library code of its command (``asrmerge taskvec``, ``merge``, ``transcribe``,
``wer``), so every check, default and numeric guard of the CLI applies, and a path output is written as
``-o`` writes it (atomically, with provenance metadata, a model card in a folder). Errors are
:class:`asrmerge.errors.AsrmergeError` (``UsageError``, ``InputError``), with the message the CLI prints.
Functions import torch when called, never at import.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, overload

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.asr.model import Whisper
    from asrmerge.io.checkpoint import Checkpoint

__all__ = ["apply", "merge", "open_checkpoint", "taskvec", "transcribe", "wer"]

PathLike = Union[str, "os.PathLike[str]"]
StateDict = dict[str, "Tensor"]
Source = Union[str, "os.PathLike[str]", Mapping[str, "Tensor"]]  # a path, or a state dict (name -> tensor)
MANIFEST_SUFFIXES = (".jsonl", ".json", ".ndjson")


def _call(name: str, *args: Any, **kwargs: Any) -> str:
    """The call as Python, for the ``asrmerge.command`` metadata of an output (state dicts shown as such)."""
    def show(x: Any) -> str:
        if isinstance(x, Mapping):
            return "<state dict>"
        if isinstance(x, list | tuple):
            return "[" + ", ".join(show(v) for v in x) + "]"
        return repr(os.fspath(x) if isinstance(x, os.PathLike) else x)

    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items() if v is not None]
    return f"python: asrmerge.{name}({', '.join(parts)})"


def _size(size: int | str | None) -> int | None:
    from asrmerge.io.tensors import parse_size

    return parse_size(size, option="shard_size") if isinstance(size, str) else size


def _compute(name: str) -> Any:
    import torch

    if name not in ("fp32", "fp64"):
        from asrmerge.errors import UsageError

        raise UsageError(f"unknown compute dtype {name!r}", subject="compute_dtype", hint="use fp32 or fp64")
    return torch.float64 if name == "fp64" else torch.float32


def _paths(*xs: Any) -> bool:
    from asrmerge.merge.api import is_path

    return all(is_path(x) for x in xs)


def open_checkpoint(path: PathLike, *, base: Checkpoint | None = None, tau: bool = False) -> Checkpoint:
    """Open a checkpoint for lazy, tensor-by-tensor reading, under canonical Hugging Face Whisper names.

    Args:
        path: a Hugging Face folder, a ``.safetensors`` file, a CTranslate2 folder, ``packaged:NAME``, ``-``
            (stdin), or a PEFT LoRA adapter folder (with ``base``).
        base: the opened base model, which an adapter is read against (as its task vector tau = s B A).
        tau: a file without asrmerge metadata holds task vectors (pickled state dicts are then read with
            ``torch.load(weights_only=True)``).
    Returns:
        A :class:`asrmerge.io.checkpoint.Checkpoint` (a context manager): ``names()``, ``get(name)``,
        ``infos``, ``fingerprint()``, ``metadata``, ``lora_factors(name)`` for an adapter.
    """
    from asrmerge.io.checkpoint import open_checkpoint as _open

    return _open(os.fspath(path), base=base, tau=tau)


@overload
def taskvec(base: Source, finetuned: Source, output: None = None, *, dtype: str = "fp32",
            compute_dtype: str = "fp32", shard_size: int | str | None = None, force: bool = False) -> StateDict: ...
@overload
def taskvec(base: Source, finetuned: Source, output: PathLike, *, dtype: str = "fp32",
            compute_dtype: str = "fp32", shard_size: int | str | None = None, force: bool = False) -> str: ...
def taskvec(base: Source, finetuned: Source, output: PathLike | None = None, *, dtype: str = "fp32",
            compute_dtype: str = "fp32", shard_size: int | str | None = None,
            force: bool = False) -> StateDict | str:
    """The task vector tau = theta_ft - theta_base of every tensor (``asrmerge taskvec BASE FT``).

    Args:
        base: the pre-trained model, a path or a state dict.
        finetuned: a fine-tune of it (path or state dict), or a PEFT LoRA adapter folder (tau = s B A).
        output: write a task vector there (``.safetensors`` file) instead of returning the tensors.
        dtype: ``fp32`` (default), ``fp16``, ``bf16``, or ``fp64``, which also computes in fp64 and makes
            :func:`apply` give ``finetuned`` back bit for bit (see :mod:`asrmerge.taskvectors`).
        compute_dtype: ``fp32`` or ``fp64``.
        shard_size, force: as ``--shard-size`` and ``--force``.
    Returns:
        ``{name: tau}`` in ``dtype``, or with ``output`` the path written.
    """
    from asrmerge import taskvectors
    from asrmerge.io.tensors import cli_dtype
    from asrmerge.io.writer import MemoryWriter, check_destination
    from asrmerge.merge.api import open_source

    code, compute = cli_dtype(dtype, option="dtype"), _compute(compute_dtype)
    command = _call("taskvec", base, finetuned, output, dtype=dtype)
    if output is not None and _paths(base, finetuned):
        inexact = taskvectors.make(os.fspath(base), os.fspath(finetuned), os.fspath(output),  # type: ignore[arg-type]
                                   dtype=code, compute=compute, shard_size=_size(shard_size), command=command,
                                   force=force)
    else:
        inputs = tuple(os.fspath(x) for x in (base, finetuned) if _paths(x))  # type: ignore[arg-type]
        dest: str | MemoryWriter = MemoryWriter() if output is None else os.fspath(output)
        if isinstance(dest, str):
            check_destination(dest, force=force, inputs=inputs)
        with ExitStack() as stack:
            b = open_source(base, "<base>", stack)
            ft = open_source(finetuned, "<finetuned>", stack, base=b)
            inexact = taskvectors.make_from(b, ft, dest, dtype=code, compute=compute, shard_size=_size(shard_size),
                                            command=command, force=force, inputs=inputs)
    if inexact:
        warnings.warn(f"{sum(inexact.values())} weights in {len(inexact)} tensors (first: {next(iter(inexact))}) do "
                      "not round-trip bit for bit: each is more than 2^29 times smaller than the base's, a difference "
                      "fp64 cannot hold exactly", stacklevel=2)
    if output is None:
        assert isinstance(dest, MemoryWriter)
        return dest.tensors
    return os.fspath(output)


@overload
def apply(base: Source, taskvec: Source, output: None = None, *, scale: float = 1.0, dtype: str | None = None,
          compute_dtype: str = "fp32", tau: bool = False, shard_size: int | str | None = None,
          force: bool = False) -> StateDict: ...
@overload
def apply(base: Source, taskvec: Source, output: PathLike, *, scale: float = 1.0, dtype: str | None = None,
          compute_dtype: str = "fp32", tau: bool = False, shard_size: int | str | None = None,
          force: bool = False) -> str: ...
def apply(base: Source, taskvec: Source, output: PathLike | None = None, *, scale: float = 1.0,
          dtype: str | None = None, compute_dtype: str = "fp32", tau: bool = False,
          shard_size: int | str | None = None, force: bool = False) -> StateDict | str:
    """The model theta_base + scale * tau (``asrmerge taskvec --apply``).

    Args:
        base: the pre-trained model, a path or a state dict.
        taskvec: a task vector (path, or a state dict such as :func:`taskvec` returns) or a LoRA adapter folder.
        output: write the model there (a ``.safetensors`` file, or a folder with the base's config and
            tokenizer when ``base`` is a folder) instead of returning the tensors.
        scale: the factor of tau.
        dtype: ``fp32``, ``fp16`` or ``bf16``; default: the base's.
        compute_dtype: ``fp32`` or ``fp64`` (an fp64 task vector is always applied in fp64).
        tau: a task-vector file without asrmerge metadata (another tool's; pickles too) is read as one.
        shard_size, force: as ``--shard-size`` and ``--force``.
    Returns:
        ``{name: weight}``, or with ``output`` the path written.
    """
    from asrmerge import taskvectors
    from asrmerge.io.tensors import cli_dtype
    from asrmerge.io.writer import MemoryWriter, check_destination
    from asrmerge.merge.api import open_source

    code = cli_dtype(dtype, option="dtype") if dtype is not None else None
    compute = _compute(compute_dtype)
    command = _call("apply", base, taskvec, output, scale=scale, dtype=dtype)
    if output is not None and _paths(base, taskvec):
        taskvectors.make_applied(os.fspath(base), os.fspath(taskvec), os.fspath(output),  # type: ignore[arg-type]
                                 scale=scale, dtype=code, compute=compute, shard_size=_size(shard_size),
                                 command=command, tau=tau, force=force)
        return os.fspath(output)
    taskvectors.check_scale(scale)
    inputs = tuple(os.fspath(x) for x in (base, taskvec) if _paths(x))  # type: ignore[arg-type]
    dest: str | MemoryWriter = MemoryWriter() if output is None else os.fspath(output)
    if isinstance(dest, str):
        check_destination(dest, force=force, inputs=inputs)
    with ExitStack() as stack:
        b = open_source(base, "<base>", stack)
        tv = open_source(taskvec, "<taskvec>", stack, base=b, tau=tau, taskvec=True)
        taskvectors.applied_from(b, tv, dest, scale=scale, dtype=code, compute=compute, shard_size=_size(shard_size),
                                 command=command, force=force, inputs=inputs)
    return dest.tensors if isinstance(dest, MemoryWriter) else dest


@overload
def merge(algo: str, inputs: Sequence[Source], *, base: Source | None = None,
          params: Mapping[str, Any] | None = None, weights: Sequence[float] | None = None,
          output: None = None, device: str = "auto", taskvecs: bool = False, tau: bool = False,
          dtype: str | None = None, compute_dtype: str = "fp32", lam: Mapping[str, float] | None = None,
          policy: str | None = None, workers: int = 0, shard_size: int | str | None = None,
          force: bool = False) -> StateDict | list[tuple[dict[str, Any], StateDict]]: ...
@overload
def merge(algo: str, inputs: Sequence[Source], *, base: Source | None = None,
          params: Mapping[str, Any] | None = None, weights: Sequence[float] | None = None,
          output: PathLike, device: str = "auto", taskvecs: bool = False, tau: bool = False,
          dtype: str | None = None, compute_dtype: str = "fp32", lam: Mapping[str, float] | None = None,
          policy: str | None = None, workers: int = 0, shard_size: int | str | None = None,
          force: bool = False) -> list[str]: ...
def merge(algo: str, inputs: Sequence[Source], *, base: Source | None = None,
          params: Mapping[str, Any] | None = None, weights: Sequence[float] | None = None,
          output: PathLike | None = None, device: str = "auto", taskvecs: bool = False, tau: bool = False,
          dtype: str | None = None, compute_dtype: str = "fp32", lam: Mapping[str, float] | None = None,
          policy: str | None = None, workers: int = 0, shard_size: int | str | None = None,
          force: bool = False) -> StateDict | list[tuple[dict[str, Any], StateDict]] | list[str]:
    """Merge fine-tunes or task vectors into one model (``asrmerge merge``), tensor by tensor.

    Args:
        algo: the algorithm (``asrmerge merge --list``): ``ta``, ``ties``, ``tsvm``, ``boosted-tsvm``, ...
        inputs: what to merge, in task order: paths (fine-tuned checkpoints, task vectors from
            :func:`taskvec`, PEFT LoRA adapter folders), or state dicts (``{name: tensor}``), mixed freely.
        base: the pre-trained model theta_0 (a path or a state dict); needed by task-vector algorithms.
        params: algorithm parameters, e.g. ``{"lam": 1.0, "beta": 0.3}``; a list value sweeps it.
        weights: per-task weights w_t, one per input.
        output: write there as ``-o`` does (a ``.safetensors`` file, or a folder ``merged/`` with the base's
            config and tokenizer and a model card; a sweep names its outputs with ``{NAME}`` fields).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        taskvecs: the state dicts among ``inputs`` hold task vectors, not fine-tuned weights.
        tau: the files among ``inputs`` without asrmerge metadata hold task vectors (``--tau``).
        dtype: output dtype of float tensors (``fp32``, ``fp16``, ``bf16``); default: the base's.
        compute_dtype: ``fp32`` or ``fp64``.
        lam: per-group factors ``{glob: factor}`` (``--lam``, first match wins).
        policy, workers, shard_size, force: as ``--policy``, ``--workers`` (0: one per CPU core),
            ``--shard-size`` and ``--force``.
    Returns:
        Without ``output``: the merged state dict (on the CPU, in the output dtype), or for a sweep a list of
        (parameters, state dict). With ``output``: the list of paths written.
    """
    from asrmerge.errors import UsageError
    from asrmerge.io.tensors import cli_dtype
    from asrmerge.merge.api import merge as merge_state_dicts

    if isinstance(inputs, str | os.PathLike | Mapping):
        raise UsageError(f"is one {'state dict' if isinstance(inputs, Mapping) else 'path'}, not a list",
                         subject="inputs", hint="give a list: merge(algo, [a, b], base=...)")
    return merge_state_dicts(
        algo, inputs, base=base, taskvecs=taskvecs, tau=tau, params=dict(params or {}),
        weights=list(weights) if weights is not None else None, policy=policy,
        lam_rules=list((lam or {}).items()), device=device, compute_dtype=_compute(compute_dtype),
        out_dtype=cli_dtype(dtype, option="dtype") if dtype is not None else None, workers=workers, batch=0,
        output=output, shard_size=_size(shard_size), force=force,
        command=_call("merge", algo, list(inputs), base=base, params=params, weights=weights, output=output))


def _utterances(audio: Any) -> list[Any]:
    from asrmerge.asr import manifest
    from asrmerge.errors import UsageError

    if isinstance(audio, str | os.PathLike):
        path = os.fspath(audio)
        if path == "-" or Path(path).suffix.lower() in MANIFEST_SUFFIXES:
            return manifest.read_manifest(path)
        audio = [path]
    if isinstance(audio, Mapping) or not isinstance(audio, Iterable):
        raise UsageError(f"is a {type(audio).__name__}", subject="audio",
                         hint="give a manifest path, an audio path, or a list of records or audio paths")
    records = [(i, dict(x) if isinstance(x, Mapping) else {"audio": os.fspath(x)}) for i, x in enumerate(audio, 1)]
    return manifest.utterances(records, Path.cwd(), "records")


def transcribe(model: PathLike | Whisper, audio: Any, *, language: str | None = None,
               language_field: str | None = None, task: str | None = None, beam_size: int = 1,
               batch_size: int = 16, max_new_tokens: int | None = None, chunk_length: int = 30,
               device: str | None = None, dtype: str | None = None, config: PathLike | None = None,
               strict: bool = False) -> list[dict[str, Any]]:
    """Transcribe with Whisper (``asrmerge transcribe``): one record per utterance, in input order.

    Args:
        model: a model path (any checkpoint asrmerge reads), or a model loaded with
            :func:`asrmerge.asr.model.load` (then ``device``, ``dtype``, ``chunk_length`` and ``config``
            are its own).
        audio: a JSONL manifest path (``.jsonl``; records with ``audio`` relative to its folder), one audio
            file path, or a list of manifest records (``{"audio": ..., "text": ...}``) or audio paths
            (relative to the working folder).
        language, language_field, task, beam_size, batch_size, max_new_tokens, chunk_length, device, dtype,
            config: as the command's options (``device``: ``auto`` by default, or ``ASRMERGE_DEVICE``;
            ``dtype``: fp16 on CUDA, fp32 elsewhere).
        strict: raise the first audio file that cannot be read, instead of recording its ``error``.
    Returns:
        Each input record plus ``hyp``, ``hyp_language`` and ``model`` (``truncated`` or ``repetition`` when
        the hypothesis ran away), or plus ``error`` and no ``hyp`` for audio that cannot be read.
    """
    from asrmerge.asr import decoding
    from asrmerge.asr import model as md

    items = _utterances(audio)
    if isinstance(model, str | os.PathLike):
        md.check_chunk_length(chunk_length)
        from asrmerge.device import resolve

        dev = resolve(device)
        w = md.load(os.fspath(model), config_dir=Path(config) if config is not None else None, device=dev,
                    dtype=md.resolve_dtype(dtype, dev), chunk_length=chunk_length)
    else:
        w = model
    settings = decoding.Settings(language=language, language_field=language_field, task=task, beam_size=beam_size,
                                 batch_size=batch_size, max_new_tokens=max_new_tokens)
    out = []
    for res in decoding.transcribe(w, items, settings):
        if strict and res.error is not None:
            raise res.error
        out.append(res.record)
    return out


def wer(records: PathLike | Iterable[Mapping[str, Any]] | Sequence[PathLike], *, ref_field: str = "text",
        hyp_field: str = "hyp", normalizer: str = "basic", cer: bool = False, by: str | None = None,
        ) -> dict[str, Any]:
    """Word (or character) error rates of records with a reference and a hypothesis (``asrmerge wer --json``).

    Args:
        records: :func:`transcribe`'s records, or JSONL paths (one, or a list, read in turn).
        ref_field, hyp_field: the fields holding the reference (``text``) and hypothesis (``hyp``).
        normalizer: ``basic`` (Whisper's basic normalizer, any language), ``whisper-en``, or ``none``.
        cer: character error rate instead.
        by: a record field: figures per group too, and their macro average.
    Returns:
        ``micro`` (pooled: ``wer``, ``errors``, ``substitutions``, ``deletions``, ``insertions``, ``hits``,
        ``ref_words``, ``utterances``), ``excluded`` (records with an ``error``, or without a reference or
        hypothesis, by reason), ``metric``, ``normalizer``, the fields; with ``by``: ``groups`` and ``macro``.
    """
    from asrmerge.asr import scoring

    fields = scoring.Fields(ref=ref_field, hyp=hyp_field, normalizer=normalizer, cer=cer)
    if isinstance(records, str | os.PathLike):
        records = [records]
    given = list(records)
    if given and all(isinstance(x, str | os.PathLike) for x in given):
        sources = [os.fspath(x) for x in given]  # type: ignore[arg-type]
        items, label = scoring.read(sources, fields), ", ".join(sources)
    else:
        label = "records"
        items = scoring.classify(((i, dict(r)) for i, r in enumerate(given, 1)), fields, label)  # type: ignore[arg-type]
    scoring.require_scorable(items, fields, label)
    scoring.score(items, cer)
    return scoring.summary(items, fields, by)
