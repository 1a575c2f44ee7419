"""The checkpoints a command reads together: stdin at most once, the base first, the inputs against it, and
the checks that they belong together, with the same messages in ``merge`` and ``svd-inspect``.

Only headers (and the one small tensor :mod:`asrmerge.compat` reads to tell a model from a task vector) are
read here, so every problem is reported before any arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack

from asrmerge.compat import require_compatible, require_model, require_same_base, require_taskvec
from asrmerge.errors import UsageError
from asrmerge.io.checkpoint import Checkpoint, open_checkpoint


def check_stdin(specs: Iterable[str | None], *, hint: str | None = None) -> None:
    """Refuse ``-`` (stdin) given for more than one input.

    Args:
        specs: every input as given (``None`` for an option left out).
        hint: the next step, if the command has one to suggest.
    Raises:
        UsageError: stdin twice.
    """
    if sum(1 for s in specs if s == "-") > 1:
        raise UsageError("stdin ('-') can be only one input", hint=hint)


def open_base(spec: str | None, stack: ExitStack) -> Checkpoint | None:
    """Open ``--base`` (closed with ``stack``); a task vector there is a usage error.

    Args:
        spec: the base model as given, or ``None``.
        stack: where the open checkpoint is registered for closing.
    Returns:
        The base, or ``None`` without one.
    Raises:
        UsageError: the file holds task vectors.
        InputError: it cannot be read.
    """
    if not spec:
        return None
    base = stack.enter_context(open_checkpoint(spec))
    require_base(base)
    return base


def require_base(base: Checkpoint) -> None:
    """Refuse a task vector as the base model (a usage error naming it)."""
    if base.kind == "taskvec":
        raise UsageError("is a task vector, not a base model", subject=base.label,
                         hint="--base takes the pre-trained model the inputs were fine-tuned from")


def open_input(spec: str, stack: ExitStack, base: Checkpoint | None, *, tau: bool = False) -> Checkpoint:
    """Open one input against ``base`` (a LoRA adapter needs it), closed with ``stack``.

    Args:
        spec: the input as given.
        stack: where the open checkpoint is registered for closing.
        base: the base model, or ``None``.
        tau: ``--tau``: a file without asrmerge metadata holds task vectors.
    """
    return stack.enter_context(open_checkpoint(spec, base=base, tau=tau))


def require_together(ref: Checkpoint, others: list[Checkpoint]) -> None:
    """Same tensor names and shapes as ``ref`` (one :class:`InputError` listing every difference)."""
    require_compatible(ref, [o for o in others if o is not ref])


def require_from(base: Checkpoint, ckpt: Checkpoint, *, files: bool = True) -> None:
    """``ckpt`` was made from ``base``: a task vector's recorded base fingerprint is ``base``'s, and (for files)
    a task vector is not a model in disguise, nor a model a task vector (docs/algorithms.md section 1).

    Args:
        base: the base model.
        ckpt: an input opened against it.
        files: also look inside (a state dict handed over in memory is taken as declared).
    Raises:
        InputError: a task vector of another base.
        UsageError: a file that holds the other kind than it is taken for.
    """
    if ckpt.kind == "taskvec":
        require_same_base(base, ckpt)
    if files:
        (require_taskvec if ckpt.kind == "taskvec" else require_model)(base, ckpt)
