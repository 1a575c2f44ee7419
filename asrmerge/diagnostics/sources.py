"""The checkpoints of one ``svd-inspect`` run, opened lazily and read one tensor name at a time.

Inputs are task vectors (``asrmerge.kind=taskvec``, files declared with ``--tau``, or PEFT LoRA adapters
read against ``--base``: tau_t is read as stored) or, with ``--base``, fine-tuned models (tau_t = W_t - W_0 in the compute dtype, docs/algorithms.md section 1). ``--merged`` is a merged
model (M = W* - W_0, needs ``--base``) or a task-vector-like update. Headers are compared before any
tensor is read (:mod:`asrmerge.inputs`), and a task vector taken from another base
than ``--base`` (or, without ``--base``, from another base than the other task vectors) is refused.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch

from asrmerge.errors import InputError, UsageError
from asrmerge.inputs import check_stdin, open_base, open_input, require_from, require_together
from asrmerge.io.checkpoint import Checkpoint
from asrmerge.io.tensors import finite


@dataclass
class Subject:
    """One input or the merged update: its checkpoint, and whether it is stored as an update (a task vector)."""

    label: str
    ckpt: Checkpoint
    is_update: bool


class Sources:
    """Open ``inputs`` (and ``base``, ``merged``), check that they belong together, and read them per tensor.

    Args:
        inputs: task vectors, or fine-tuned models with ``base``; ``-`` is stdin (once in all).
        base: the pre-trained model W_0, or None.
        merged: a merged model (with ``base``) or update, or None.
    Raises:
        UsageError: stdin twice, a task vector as base, a model without ``base``.
        InputError: mismatched headers, a task vector of another base, unreadable files.
    """

    def __init__(self, inputs: list[str], *, base: str | None = None, merged: str | None = None,
                 tau: bool = False) -> None:
        if not inputs:
            raise UsageError("no input", hint="give task vectors, or fine-tuned checkpoints with --base BASE")
        check_stdin([*inputs, base, merged])
        self._stack = ExitStack()
        self.tau = tau
        self.base: Checkpoint | None = None
        try:
            self.base = open_base(base, self._stack)
            self.inputs = [self._subject(s, "input") for s in inputs]
            self.merged = self._subject(merged, "--merged") if merged else None
            self._check()
        except BaseException:
            self._stack.close()
            raise

    def _subject(self, spec: str, role: str) -> Subject:
        """Open ``spec``: a task vector (or LoRA adapter) is an update as stored; a model needs the base."""
        ckpt = open_input(spec, self._stack, self.base, tau=self.tau and role == "input")  # --tau declares inputs
        if ckpt.kind == "taskvec":
            return Subject(spec, ckpt, True)
        if self.base is None:
            what = "a merged model" if role == "--merged" else "a model, not a task vector"
            hint = ("pass --base BASE so that the update is taken against it, or make task vectors with "
                    "`asrmerge taskvec BASE FT`" if role == "--merged" else
                    "pass --tau if it holds task vectors (from another tool), or --base BASE so that the update "
                    "is taken against it")
            raise UsageError(f"is {what}", subject=spec, hint=hint)
        return Subject(spec, ckpt, False)

    def _check(self) -> None:
        """Headers against the reference, then the recorded base fingerprints (docs/algorithms.md section 1; compat)."""
        subjects = [*self.inputs, *([self.merged] if self.merged else [])]
        require_together(self.base or subjects[0].ckpt, [s.ckpt for s in subjects])
        if self.base is not None:
            for s in subjects:  # --merged, taken as given, is not looked inside
                require_from(self.base, s.ckpt, files=s is not self.merged or not s.is_update)
            return
        updates = [s for s in subjects if s.is_update]
        first = next((s for s in updates if s.ckpt.base_fingerprint()), None)
        for s in updates:
            fp = s.ckpt.base_fingerprint()
            if first is not None and fp is not None and fp != first.ckpt.base_fingerprint():
                raise InputError(f"was made from base {fp}, but {first.label} from {first.ckpt.base_fingerprint()}",
                                 subject=s.label, hint="inspect task vectors of one base model together")

    @property
    def ref(self) -> Checkpoint:
        """The checkpoint whose names, shapes and order the inspection follows: the base, else the first input."""
        return self.base or self.inputs[0].ckpt

    @property
    def labels(self) -> list[str]:
        """The inputs' names as given (``subject`` of their records)."""
        return [s.label for s in self.inputs]

    def _update(self, s: Subject, name: str, w0: torch.Tensor | None, compute: torch.dtype) -> torch.Tensor:
        """tau = the stored update, or W - W_0 in the compute dtype (both operands upcast first)."""
        x = finite(s.ckpt.get(name), name, s.label).to(compute)
        if s.is_update:
            return x
        assert w0 is not None
        return x - w0

    def base_tensor(self, name: str) -> torch.Tensor | None:
        """W_0 of ``name`` in its stored dtype, or None without a base.

        Args:
            name: a canonical tensor name.
        Returns:
            the base tensor (checked for NaN/Inf), or None.
        """
        return finite(self.base.get(name), name, self.base.label) if self.base is not None else None

    def read(self, name: str, compute: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(the inputs' task vectors stacked T x m x n, the merged update or None, W_0 or None) of one tensor.

        Args:
            name: a canonical tensor name.
            compute: the dtype of the subtraction and of the returned updates.
        """
        w0 = self.base_tensor(name)
        w0c = w0.to(compute) if w0 is not None else None
        shape = self.ref.infos[name].shape
        taus = torch.empty((len(self.inputs), *shape), dtype=compute)  # filled in place: no second copy
        for t, s in enumerate(self.inputs):
            taus[t] = self._update(s, name, w0c, compute)
        merged = self._update(self.merged, name, w0c, compute) if self.merged else None
        return taus, merged, w0

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
