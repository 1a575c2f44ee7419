"""The merge as a Python function over state dicts, for notebooks and training scripts.

    from asrmerge.merge.api import merge
    merged = merge("boosted-tsvm", [sd_news, sd_kids], base=sd_base, params={"beta": 0.3})

It runs the same planner and streaming engine as ``asrmerge merge``: every check, policy, parameter
default and numeric guard applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from asrmerge.io.checkpoint import Checkpoint, MemoryBackend
from asrmerge.merge import engine
from asrmerge.merge.plan import DEFAULT_BUDGET, MergeSpec, make_plan

if TYPE_CHECKING:
    from torch import Tensor


class _Collect:
    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}

    def write(self, name: str, tensor: Tensor) -> None:
        self.tensors[name] = tensor


def merge(algo: str, inputs: list[dict[str, Tensor]], *, base: dict[str, Tensor] | None = None,
          taskvecs: bool = False, params: dict[str, Any] | None = None, weights: list[float] | None = None,
          policy: str | None = None, lam_rules: list[tuple[str, float]] | None = None, device: str = "cpu",
          compute_dtype: torch.dtype = torch.float32, out_dtype: str | None = None,
          budget: int = DEFAULT_BUDGET, workers: int = 1, batch: int = 1) -> dict[str, Tensor] | list[tuple[dict[str, Any], dict[str, Tensor]]]:
    """Merge state dicts with ``algo``.

    Args:
        algo: an algorithm name (``asrmerge merge --list``).
        inputs: fine-tuned state dicts, or task vectors with ``taskvecs=True``.
        base: the pre-trained state dict theta_0.
        params: algorithm parameters; a list value sweeps it.
        weights, policy, lam_rules, device, compute_dtype, out_dtype, budget, workers, batch: as the CLI's
            options (``workers=0``: one per CPU core; ``batch=0``: 64 on CUDA).
    Returns:
        The merged state dict, or for a sweep a list of (parameters, state dict).
    """
    items = []
    for k, v in (params or {}).items():
        values = v if isinstance(v, list | tuple) else [v]
        items.append(f"{k}={','.join(str(x) for x in values)}")
    swept = [k for k, v in (params or {}).items() if isinstance(v, list | tuple) and len(v) > 1]
    spec = MergeSpec(algo=algo, inputs=[f"<input {i}>" for i in range(len(inputs))], base="<base>" if base else None,
                     params=items, weights=weights, lam_rules=list(lam_rules or []), policy=policy,
                     output="&".join("{" + k + "}" for k in swept) or "-",
                     device=device, compute_dtype=compute_dtype, out_dtype=out_dtype, budget=budget,
                     check_outputs=False, workers=workers, batch=batch)
    meta = {"asrmerge.kind": "taskvec"} if taskvecs else {}
    sources = [Checkpoint(MemoryBackend(sd, f"<input {i}>", meta)) for i, sd in enumerate(inputs)]
    base_ck = Checkpoint(MemoryBackend(base, "<base>")) if base is not None else None
    plan = make_plan(spec, opened=(base_ck, sources))
    sinks = [_Collect() for _ in plan.outputs]
    try:
        engine.execute(plan, sinks=sinks)
    finally:
        plan.close()
    if len(sinks) == 1:
        return sinks[0].tensors
    return [({**o.combo, **({"lam": o.lam} if o.lam is not None else {})}, s.tensors)
            for o, s in zip(plan.outputs, sinks, strict=True)]

