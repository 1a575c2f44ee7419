"""The merge as a Python function over state dicts or paths, for notebooks and training scripts.

    from asrmerge.merge.api import merge
    merged = merge("boosted-tsvm", [sd_news, sd_kids], base=sd_base, params={"beta": 0.3})

It runs the same planner and streaming engine as ``asrmerge merge``: every check, policy, parameter
default and numeric guard applies. :func:`asrmerge.merge` (:mod:`asrmerge.api`) is the public face of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Union

import torch

from asrmerge.io.checkpoint import Checkpoint, MemoryBackend, open_checkpoint
from asrmerge.io.writer import sweep_temporaries
from asrmerge.merge import engine
from asrmerge.merge.plan import DEFAULT_BUDGET, MergeSpec, Plan, make_plan

if TYPE_CHECKING:
    from torch import Tensor

# a checkpoint, task vector or LoRA adapter folder as a path (anything open_checkpoint reads), or a state dict
Source = Union[str, "os.PathLike[str]", Mapping[str, "Tensor"]]


class _Collect:
    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}

    def write(self, name: str, tensor: Tensor) -> None:
        self.tensors[name] = tensor


def is_path(x: object) -> bool:
    """Whether ``x`` names a checkpoint (a ``str`` or path-like), rather than holding tensors."""
    return isinstance(x, str | os.PathLike)


def open_source(x: Source, label: str, stack: ExitStack, *, base: Checkpoint | None = None, tau: bool = False,
                taskvec: bool = False) -> Checkpoint:
    """A path opened as :func:`asrmerge.io.checkpoint.open_checkpoint` opens it, or a state dict as a checkpoint.

    Args:
        x: a path, or a mapping of tensor names to tensors.
        label: names a state dict in messages.
        stack: closes what is opened.
        base: the base model, to read a LoRA adapter folder against.
        tau: a file without asrmerge metadata is a task vector (``--tau``).
        taskvec: a state dict holds task vectors, not weights.
    """
    if is_path(x):
        assert isinstance(x, str | os.PathLike)
        return stack.enter_context(open_checkpoint(os.fspath(x), base=base, tau=tau))
    if not isinstance(x, Mapping):
        from asrmerge.errors import UsageError

        raise UsageError(f"is a {type(x).__name__}", subject=label,
                         hint="give a path or a state dict (tensor name -> tensor)")
    meta = {"asrmerge.kind": "taskvec"} if taskvec else {}
    return Checkpoint(MemoryBackend(dict(x), label, meta))


def merge(algo: str, inputs: Sequence[Source], *, base: Source | None = None, taskvecs: bool = False,
          tau: bool = False, params: dict[str, Any] | None = None, weights: list[float] | None = None,
          policy: str | None = None, lam_rules: list[tuple[str, float]] | None = None, device: str = "cpu",
          compute_dtype: torch.dtype = torch.float32, out_dtype: str | None = None,
          budget: int = DEFAULT_BUDGET, workers: int = 1, batch: int = 1, output: str | os.PathLike[str] | None = None,
          shard_size: int | None = None, force: bool = False, command: str = "",
          ) -> dict[str, Tensor] | list[tuple[dict[str, Any], dict[str, Tensor]]] | list[str]:
    """Merge state dicts or checkpoints with ``algo``.

    Args:
        algo: an algorithm name (``asrmerge merge --list``).
        inputs: fine-tunes, task vectors or LoRA adapter folders as paths (as ``asrmerge merge`` takes them),
            or state dicts: fine-tuned weights, or task vectors with ``taskvecs=True``.
        base: the pre-trained model theta_0, a path or a state dict.
        taskvecs: the state dicts among ``inputs`` are task vectors.
        tau: the files among ``inputs`` without asrmerge metadata are task vectors (``--tau``).
        params: algorithm parameters; a list value sweeps it.
        weights, policy, lam_rules, device, compute_dtype, out_dtype, budget, workers, batch, shard_size, force:
            as the CLI's options (``workers=0``: one per CPU core; ``batch=0``: 64 on CUDA).
        output: write there as ``-o`` does (a ``.safetensors`` file, or a folder; with a sweep, a name with
            ``{NAME}`` fields) instead of returning tensors.
        command: recorded as the outputs' ``asrmerge.command`` metadata.
    Returns:
        Without ``output``: the merged state dict, or for a sweep a list of (parameters, state dict).
        With ``output``: the paths written, one per output.
    """
    items = []
    for k, v in (params or {}).items():
        values = v if isinstance(v, list | tuple) else [v]
        items.append(f"{k}={','.join(str(x) for x in values)}")
    swept = [k for k, v in (params or {}).items() if isinstance(v, list | tuple) and len(v) > 1]
    labels = [os.fspath(x) if is_path(x) else f"<input {i}>" for i, x in enumerate(inputs)]  # type: ignore[arg-type]
    base_label = None if base is None else os.fspath(base) if is_path(base) else "<base>"  # type: ignore[arg-type]
    template = os.fspath(output) if output is not None else "&".join("{" + k + "}" for k in swept) or "-"
    spec = MergeSpec(algo=algo, inputs=labels, base=base_label, params=items, weights=weights,
                     lam_rules=list(lam_rules or []), policy=policy, output=template, device=device,
                     compute_dtype=compute_dtype, out_dtype=out_dtype, shard_size=shard_size, budget=budget,
                     command=command, check_outputs=output is not None, workers=workers, batch=batch, tau=tau,
                     force=force)
    with ExitStack() as stack:
        if all(is_path(x) for x in [*inputs, *([base] if base is not None else [])]):
            plan = make_plan(spec)  # paths only: exactly what the CLI does
        else:
            plan = _plan_opened(spec, inputs, base, stack, taskvecs, tau)
        try:
            if output is not None:
                for o in plan.outputs:
                    sweep_temporaries(o.path)
                engine.execute(plan)
                return [o.path for o in plan.outputs]
            sinks = [_Collect() for _ in plan.outputs]
            engine.execute(plan, sinks=sinks)
        finally:
            plan.close()
    if len(sinks) == 1:
        return sinks[0].tensors
    return [({**o.combo, **({"lam": o.lam} if o.lam is not None else {})}, s.tensors)
            for o, s in zip(plan.outputs, sinks, strict=True)]


def _plan_opened(spec: MergeSpec, inputs: Sequence[Source], base: Source | None, stack: ExitStack,
                 taskvecs: bool, tau: bool) -> Plan:
    base_ck = open_source(base, "<base>", stack) if base is not None else None
    sources = [open_source(x, spec.inputs[i], stack, base=base_ck, tau=tau, taskvec=taskvecs)
               for i, x in enumerate(inputs)]
    return make_plan(spec, opened=(base_ck, sources))
