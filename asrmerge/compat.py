"""Checks that checkpoints belong together, run before the arithmetic: headers (names and shapes), recorded
base fingerprints, and whether a file taken for a model holds task vectors (one small tensor read).

Every problem becomes one line naming the file, the tensor, both shapes and the likely cause.
"""

from __future__ import annotations

from asrmerge.errors import InputError, UsageError
from asrmerge.io.checkpoint import Checkpoint

MAX_LINES = 20


def _cause(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> str:
    if "embed_tokens" in name and a[1:] == b[1:]:
        vocab = {a[0], b[0]}
        if vocab == {51865, 51866}:
            return "v2 vs v3 vocabulary (large-v3 has 51866 tokens)?"
        if 51864 in vocab:
            return "English-only (.en) vs multilingual vocabulary?"
    if name.endswith("conv1.weight") and len(a) == len(b) == 3 and a[1] != b[1]:
        return f"{a[1]} vs {b[1]} mel bins: large-v3 (128) vs an earlier model (80)?"
    if "embed_positions" in name and a[1:] == b[1:]:
        return "different context lengths (max_source_positions / max_target_positions)?"
    return "same base model?"


def header_problems(ref: Checkpoint, other: Checkpoint) -> list[str]:
    """Every difference in tensor names and shapes between ``ref`` and ``other``, one line each."""
    problems = []
    for name, info in ref.infos.items():
        o = other.infos.get(name)
        if o is None:
            problems.append(f"{other.label}: tensor {name} is missing (it is in {ref.label}); same base model?")
        elif o.shape != info.shape:
            problems.append(f"{other.label}: {name}: shape {list(o.shape)} vs {list(info.shape)} in {ref.label}; "
                            f"{_cause(name, o.shape, info.shape)}")
    for name in other.infos:
        if name not in ref.infos:
            problems.append(f"{other.label}: tensor {name} is not in {ref.label}; same architecture?")
    return problems


def require_compatible(ref: Checkpoint, others: list[Checkpoint]) -> None:
    """Raise one :class:`InputError` listing every header problem of ``others`` against ``ref``."""
    problems = [p for o in others for p in header_problems(ref, o)]
    if problems:
        more = problems[1:MAX_LINES]
        if len(problems) > MAX_LINES:
            more.append(f"... and {len(problems) - MAX_LINES} more problems")
        raise InputError(problems[0], more=more)


def require_same_base(base: Checkpoint, taskvec: Checkpoint) -> None:
    """A task vector must come from ``base``: compare the fingerprint in its metadata."""
    theirs = taskvec.base_fingerprint()
    if theirs is not None and theirs != base.fingerprint():
        raise InputError(f"was made from base {theirs}, but {base.label} is {base.fingerprint()}",
                         subject=taskvec.label, hint="use the base model the task vector was taken from")


def gain_ratio(ckpt: Checkpoint, base: Checkpoint) -> float | None:
    """mean |layer-norm gain| of ``ckpt`` over the base's: about 1 for a model of that base, about 0 for a task
    vector (Whisper's gains are near 1, their updates small). None without a common layer norm."""
    names = [n for n in ckpt.infos if n.endswith("layer_norm.weight") and n in base.infos]
    if not names:
        return None
    name = "model.encoder.layer_norm.weight" if "model.encoder.layer_norm.weight" in names else names[0]
    ours = float(base.get(name).float().abs().mean())
    return float(ckpt.get(name).float().abs().mean()) / ours if ours > 0 else None


def require_model(base: Checkpoint, ckpt: Checkpoint) -> None:
    """Refuse a file taken for a fine-tuned model (no asrmerge metadata) that holds task vectors: without this
    check, tau = ckpt - base would be computed from a task vector."""
    if ckpt.kind == "model" and "asrmerge.kind" not in ckpt.metadata:
        ratio = gain_ratio(ckpt, base)
        if ratio is not None and ratio < 0.1:
            raise UsageError("holds task vectors, not a model (its layer-norm gains are near 0, the base's near 1)",
                             subject=ckpt.label, hint="pass --tau to read such files as task vectors")


def require_taskvec(base: Checkpoint, ckpt: Checkpoint) -> None:
    """Refuse a file without asrmerge metadata, taken for a task vector, that holds a model."""
    if "asrmerge.kind" not in ckpt.metadata or ckpt.metadata.get("asrmerge.declared"):
        ratio = gain_ratio(ckpt, base)
        if ratio is not None and ratio > 0.5:
            raise UsageError("holds a model, not a task vector (its layer-norm gains are near the base's)",
                             subject=ckpt.label,
                             hint="make a task vector first: `asrmerge taskvec BASE FT -o tv.safetensors`")
