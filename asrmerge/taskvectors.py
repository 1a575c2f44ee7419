"""Task vectors: tau = theta_ft - theta_base, tensor by tensor, and their application and statistics.

Arithmetic runs in the compute dtype (fp32, or fp64 on request) after upcasting both operands; the
result is cast to the output dtype at the end. Task vectors are stored in fp32 by default: fine-tuning
deltas sit near the half-ulp of fp16/bf16 weights and would be rounded away (docs/algorithms.md section 3).

**Exact round trips.** For fp16/bf16 checkpoints fp32 task vectors are exact. For fp32 checkpoints they
are not (the difference of two fp32 numbers needs more bits), so ``dtype="F64"`` computes and stores tau in
fp64, and applying an fp64 task vector computes in fp64: then ``apply(base, taskvec(base, ft)) == ft`` bit
for bit, except where a weight of ``ft`` is more than 2^29 times smaller in magnitude than the base's
(a weight moved to within about 1e-9 of zero relative to its old value), whose difference fp64 cannot
hold exactly; :func:`make` counts those and returns them.

A PEFT LoRA adapter (:mod:`asrmerge.io.lora`) stands for its fine-tune: ``taskvec BASE ADAPTER`` writes
its tau = s B A as read, and ``--apply BASE ADAPTER`` adds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from asrmerge.compat import require_compatible, require_model, require_same_base, require_taskvec
from asrmerge.errors import UsageError
from asrmerge.io.checkpoint import Checkpoint, open_checkpoint
from asrmerge.io.metadata import provenance
from asrmerge.io.tensors import TensorInfo, finite
from asrmerge.io.writer import CheckpointWriter, MemoryWriter, check_destination
from asrmerge.progress import NoProgress, Progress

Write = Callable[[str, torch.Tensor], None]


def output_infos(ref: Checkpoint, dtype: str | None) -> list[TensorInfo]:
    """The output tensors: ``ref``'s names and shapes, float ones in ``dtype`` (``None``: as stored)."""
    return [i.with_dtype(dtype) if dtype and i.is_float else i for i in ref.infos.values()]


def check_pair(base: Checkpoint, other: Checkpoint) -> None:
    """Headers agree, and a task vector's recorded base is ``base``."""
    require_compatible(base, [other])
    if other.kind == "taskvec":
        require_same_base(base, other)


def base_norms(base: Checkpoint, compute: torch.dtype = torch.float32) -> dict[str, float]:
    """Frobenius norm of every base tensor, stored with a task vector for relative norms."""
    return {n: float(torch.linalg.vector_norm(finite(base.get(n), n, base.label).to(compute))) for n in base.names()}


def difference(base: Checkpoint, ft: Checkpoint, write: Write, *, compute: torch.dtype = torch.float32,
               progress: Callable[[str], None] | None = None, inexact: dict[str, int] | None = None) -> None:
    """Write tau = ft - base for every tensor of ``base``, in order.

    Args:
        base: the pre-trained model theta_0.
        ft: a fine-tune of it (same names and shapes; checked by the caller with :func:`check_pair`), or a LoRA
            adapter read against ``base`` (its tensors are tau already).
        write: receives each (name, tau) in the compute dtype.
        compute: the dtype of the subtraction.
        progress: called with each tensor name once written.
        inexact: if given, receives, for every tensor where ``(base + tau)`` in the compute dtype, cast to ft's
            dtype, is not ft bit for bit, the number of such weights.
    """
    for name in base.names():
        b = finite(base.get(name), name, base.label).to(compute)
        raw = finite(ft.get(name), name, ft.label)
        if ft.is_adapter:
            write(name, raw.to(compute))
        else:
            tau = raw.to(compute) - b
            write(name, tau)
            if inexact is not None and raw.is_floating_point():
                bad = int(((b + tau).to(raw.dtype) != raw).sum())
                if bad:
                    inexact[name] = bad
        if progress:
            progress(name)


def apply(base: Checkpoint, tv: Checkpoint, write: Write, *, scale: float = 1.0,
          compute: torch.dtype = torch.float32, progress: Callable[[str], None] | None = None) -> None:
    """Write theta_base + scale * tau for every tensor of ``base``, in order.

    A tensor stored in fp64 in ``tv`` is applied in fp64 whatever ``compute`` is (exact round trips).
    """
    for name in base.names():
        c = torch.float64 if tv.infos[name].dtype == "F64" else compute
        b = finite(base.get(name), name, base.label).to(c)
        t = finite(tv.get(name), name, tv.label).to(c)
        out = b + scale * t
        finite(out, name, "result")
        write(name, out)
        if progress:
            progress(name)


def recorded_norms(tv: Checkpoint) -> dict[str, float] | None:
    """The base norms a task vector carries in its metadata (``asrmerge.base_norms``), if any."""
    import json

    raw = tv.metadata.get("asrmerge.base_norms")
    return {k: float(v) for k, v in json.loads(raw).items()} if raw else None


def stats(tv: Checkpoint, norms: dict[str, float] | None) -> Iterator[dict[str, Any]]:
    """One record per tensor: shape, dtype, Frobenius norm, norm relative to the base, max |x|, zero fraction.

    Args:
        tv: a task vector.
        norms: base norms by tensor (:func:`base_norms` or :func:`recorded_norms`); ``None``: no relative norms.
    """
    for name, info in tv.infos.items():
        t = finite(tv.get(name), name, tv.label).to(torch.float64)
        norm = float(torch.linalg.vector_norm(t)) if t.numel() else 0.0
        base = (norms or {}).get(name)
        yield {
            "tensor": name,
            "shape": list(info.shape),
            "dtype": info.dtype,
            "numel": info.numel,
            "norm": norm,
            "rel_norm": norm / base if base else None,
            "max_abs": float(t.abs().max()) if t.numel() else 0.0,
            "zero_frac": float((t == 0).sum()) / t.numel() if t.numel() else 1.0,
        }


def total(records: list[dict[str, Any]], norms: dict[str, float] | None) -> dict[str, Any]:
    """The whole-model line of a stats table: global norm, relative norm, zero fraction."""
    sq = sum(r["norm"] ** 2 for r in records)
    numel = sum(r["numel"] for r in records)
    base_sq = sum(v * v for v in (norms or {}).values())
    have_rel = bool(records) and norms is not None and all(r["tensor"] in norms for r in records)
    return {
        "tensor": "(all)",
        "numel": numel,
        "norm": math.sqrt(sq),
        "rel_norm": math.sqrt(sq / base_sq) if have_rel and base_sq else None,
        "max_abs": max((r["max_abs"] for r in records), default=0.0),
        "zero_frac": sum(r["zero_frac"] * r["numel"] for r in records) / numel if numel else 1.0,
    }


def check_models(base: Checkpoint, ft: Checkpoint) -> None:
    """``taskvec BASE FT``: two models (or a model and a LoRA adapter read against it) of one architecture.

    Raises:
        UsageError: either is a task vector.
        InputError: the headers disagree, or ``ft`` looks like a task vector taken for a model.
    """
    if base.kind == "taskvec":
        raise UsageError("is a task vector, not a model", subject=base.label,
                         hint="taskvec takes BASE and FINE-TUNED models; use --apply to add a task vector")
    if ft.kind == "taskvec" and not ft.is_adapter:
        raise UsageError("is a task vector, not a model", subject=ft.label,
                         hint="taskvec takes BASE and FINE-TUNED models; use --apply to add a task vector")
    check_pair(base, ft)
    require_model(base, ft)


def check_applicable(base: Checkpoint, tv: Checkpoint) -> None:
    """``taskvec --apply BASE TV``: a model and a task vector (or LoRA adapter) taken from it.

    Raises:
        UsageError: ``base`` is a task vector, or ``tv`` a model.
        InputError: the headers disagree, ``tv`` records another base, or looks like a model.
    """
    if base.kind == "taskvec":
        raise UsageError("is a task vector, not a base model", subject=base.label, hint="give BASE first, then TV")
    if "asrmerge.kind" in tv.metadata and tv.kind != "taskvec":
        raise UsageError("is a model, not a task vector", subject=tv.label,
                         hint="make one first: `asrmerge taskvec BASE FT -o tv.safetensors`")
    check_pair(base, tv)
    require_taskvec(base, tv)


def make(base_spec: str, ft_spec: str, dest: str, *, dtype: str = "F32", compute: torch.dtype = torch.float32,
         shard_size: int | None = None, command: str = "", progress: Progress | None = None,
         force: bool = False) -> dict[str, int]:
    """``asrmerge taskvec BASE FT``: write the task vector of ``ft`` (a model or a LoRA adapter) against ``base``.

    The metadata records the base's fingerprint (so later tools refuse other bases) and its per-tensor
    norms (so ``--stats`` can report norms relative to the base without it). ``dtype="F64"`` computes in fp64.
    ``force``: replace what is not an earlier output at ``dest`` (see :mod:`asrmerge.io.writer`).

    Returns:
        with ``dtype="F64"``: the tensors whose weights do not round-trip bit for bit (see the module
        docstring), with the number of such weights; otherwise empty.
    """
    inputs = (base_spec, ft_spec)
    check_destination(dest, force=force, inputs=inputs)
    with open_checkpoint(base_spec) as base, open_checkpoint(ft_spec, base=base) as ft:
        return make_from(base, ft, dest, dtype=dtype, compute=compute, shard_size=shard_size, command=command,
                         progress=progress, force=force, inputs=inputs)


def make_from(base: Checkpoint, ft: Checkpoint, dest: str | MemoryWriter, *, dtype: str = "F32",
              compute: torch.dtype = torch.float32, shard_size: int | None = None, command: str = "",
              progress: Progress | None = None, force: bool = False, inputs: tuple[str, ...] = ()) -> dict[str, int]:
    """:func:`make` on open checkpoints. ``dest`` may be a :class:`~asrmerge.io.writer.MemoryWriter` (the Python
    API), which then holds the tensors and metadata the file would. ``inputs``: paths ``dest`` must not overwrite."""
    progress = progress or NoProgress()
    if dtype == "F64":
        compute = torch.float64
    inexact: dict[str, int] = {}
    check_models(base, ft)
    infos = output_infos(base, dtype)
    norms = base_norms(base, compute)
    meta = provenance("taskvec", command=command, dtype=dtype, base_fingerprint=base.fingerprint(),
                      base_norms=norms, compute_dtype=str(compute).removeprefix("torch."),
                      base=base.label, inputs=[ft.label], input_fingerprints=[ft.fingerprint()],
                      input_kinds=["lora" if ft.is_adapter else "model"])
    progress.start(len(infos), "taskvec")
    with _writer(dest, infos, meta, shard_size, force, inputs) as w:
        difference(base, ft, w.write, compute=compute, progress=progress.advance,
                   inexact=inexact if dtype == "F64" else None)
    return inexact


def make_applied(base_spec: str, tv_spec: str, dest: str, *, scale: float = 1.0, dtype: str | None = None,
                 compute: torch.dtype = torch.float32, shard_size: int | None = None, command: str = "",
                 progress: Progress | None = None, tau: bool = False, force: bool = False) -> None:
    """``asrmerge taskvec --apply BASE TV``: write theta_base + scale * tau as a model (base's dtype by default).

    TV is a task vector (a safetensors file without asrmerge metadata is taken for one), a LoRA adapter, or,
    with ``tau``, a pickled state dict of task vectors. ``force``: see :mod:`asrmerge.io.writer`.
    """
    check_scale(scale)
    inputs = (base_spec, tv_spec)
    check_destination(dest, force=force, inputs=inputs)
    with open_checkpoint(base_spec) as base, open_checkpoint(tv_spec, base=base, tau=tau) as tv:
        applied_from(base, tv, dest, scale=scale, dtype=dtype, compute=compute, shard_size=shard_size,
                     command=command, progress=progress, force=force, inputs=inputs)


def check_scale(scale: float) -> None:
    """Raises a :class:`UsageError` for a ``--scale`` that is not a finite number."""
    if not math.isfinite(scale):
        raise UsageError(f"{scale} is not a finite number", subject="--scale", hint="e.g. --scale 0.5")


def applied_from(base: Checkpoint, tv: Checkpoint, dest: str | MemoryWriter, *, scale: float = 1.0,
                 dtype: str | None = None, compute: torch.dtype = torch.float32, shard_size: int | None = None,
                 command: str = "", progress: Progress | None = None, force: bool = False,
                 inputs: tuple[str, ...] = ()) -> None:
    """:func:`make_applied` on open checkpoints; ``dest`` may be a :class:`MemoryWriter` (see :func:`make_from`)."""
    progress = progress or NoProgress()
    check_scale(scale)
    check_applicable(base, tv)
    infos = output_infos(base, dtype)
    meta = provenance("model", command=command, dtype=dtype or base.dtype, scale=repr(scale),
                      taskvec=tv.label, base_fingerprint=base.fingerprint(), base=base.label,
                      inputs=[tv.label], input_fingerprints=[tv.fingerprint()],
                      input_kinds=["lora" if tv.is_adapter else "taskvec"])
    progress.start(len(infos), "apply")
    with _writer(dest, infos, meta, shard_size, force, inputs, support=base.support_files()) as w:
        apply(base, tv, w.write, scale=scale, compute=compute, progress=progress.advance)


def _writer(dest: str | MemoryWriter, infos: list[TensorInfo], meta: dict[str, str], shard_size: int | None,
            force: bool, inputs: tuple[str, ...], support: dict[str, bytes] | None = None,
            ) -> CheckpointWriter | MemoryWriter:
    if isinstance(dest, MemoryWriter):
        return dest.expect(infos, meta)
    return CheckpointWriter(dest, infos, metadata=meta, shard_size=shard_size, support=support, force=force,
                            inputs=inputs)
