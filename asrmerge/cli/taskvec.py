"""``asrmerge taskvec``: make, apply and summarise task vectors (tau = theta_ft - theta_base)."""

from __future__ import annotations

import math
import sys
from enum import Enum
from typing import Annotated, Any

import typer

from asrmerge.cli import common

HELP = """Task vectors: tau = theta_ft - theta_base for every tensor.

\b
  asrmerge taskvec BASE FT [-o TV]           write the task vector (fp32 unless --dtype)
  asrmerge taskvec --apply BASE TV [-o OUT]  write theta_base + scale * tau (the base's dtype)
  asrmerge taskvec --stats TV                one JSON line per tensor (a table on a terminal)

Inputs are Hugging Face folders, .safetensors files, CTranslate2 folders, packaged:NAME, or '-' (stdin).
FT may be a PEFT LoRA adapter folder (tau = s B A, as peft's merge_and_unload adds it). TV may be a
task vector from another tool: a .safetensors file, or with --tau a pickled state dict. A task vector
records its base's fingerprint: --apply and merge refuse another base. --dtype fp64 computes in fp64 and
makes `taskvec --apply BASE TV` give FT back bit for bit on fp32 checkpoints.

Examples:

\b
  asrmerge taskvec whisper-base/ ft-news/ -o news.safetensors
  asrmerge taskvec whisper-base/ lora-news/ -o news.safetensors      # a PEFT LoRA adapter
  asrmerge taskvec --dtype fp64 whisper-base/ ft-news/ -o news64.safetensors
  asrmerge taskvec --apply --scale 0.5 whisper-base/ news.safetensors -o news-half/
  asrmerge taskvec --apply --tau whisper-base/ tv-from-tsv.pt -o news/
  asrmerge taskvec whisper-base/ ft-news/ | asrmerge taskvec --stats -
"""


class TvDtype(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    fp64 = "fp64"


def taskvec(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT", show_default=False,
                      help="BASE FT; with --apply BASE TV; with --stats TV.")],
    output: common.Output = "-",
    apply: Annotated[bool, typer.Option("--apply", help="Add TV to BASE instead: theta = base + scale * tau.")] = False,
    scale: Annotated[float, typer.Option("--scale", metavar="L", help="With --apply: the factor L.")] = 1.0,
    stats: Annotated[bool, typer.Option("--stats", help="Print per-tensor statistics of TV.")] = False,
    base: Annotated[str | None, typer.Option("--base", metavar="BASE",
                    help="With --stats: norms relative to this base (default: those TV recorded).")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="With --stats: JSON lines even on a terminal.")] = False,
    tau: Annotated[bool, typer.Option("--tau", help="With --apply or --stats: TV is a task vector from another tool "
                                      "(a pickled state dict is read with torch.load(weights_only=True)).")] = False,
    dtype: Annotated[TvDtype | None, typer.Option("--dtype", help="Output dtype of float tensors; fp64 also "
                                                  "computes in fp64 (exact round trips on fp32 checkpoints).")] = None,
    compute_dtype: common.ComputeOpt = common.ComputeDtype.fp32,
    shard_size: common.ShardSize = None,
    force: common.Force = False,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    from asrmerge.errors import UsageError

    mode = "stats" if stats else "apply" if apply else "make"
    want = {"make": 2, "apply": 2, "stats": 1}[mode]

    def job() -> None:
        if apply and stats:
            raise UsageError("--apply and --stats exclude each other", hint="choose one")
        if tau and mode == "make":
            raise UsageError("--tau goes with --apply or --stats", subject="--tau",
                             hint="taskvec BASE FT takes models or LoRA adapters, which need no flag")
        if len(inputs) != want:
            usage = {"make": "BASE FT", "apply": "--apply BASE TV", "stats": "--stats TV"}[mode]
            raise UsageError(f"expected {want} input{'s' if want > 1 else ''}, got {len(inputs)}",
                             hint=f"usage: asrmerge taskvec {usage}")
        if inputs.count("-") > 1:
            raise UsageError("stdin ('-') can be only one input")
        if not math.isfinite(scale):
            raise UsageError(f"{scale} is not a finite number", subject="--scale", hint="e.g. --scale 0.5")
        if mode == "stats":
            _stats(inputs[0], base, jsonl, tau)
            return
        from asrmerge import taskvectors as tv
        from asrmerge.io.writer import check_destination

        shards = common.size(shard_size, "--shard-size")
        check_destination(output, force=force, inputs=inputs)
        common.sweep(output, quiet)
        with common.progress(quiet) as p:
            if mode == "make":
                inexact = tv.make(inputs[0], inputs[1], output, dtype=common.code(dtype) or "F32",
                                  compute=common.compute(compute_dtype), shard_size=shards,
                                  command=common.command_line(), progress=p, force=force)
                if inexact and not quiet:
                    first = next(iter(inexact))
                    common.warn("taskvec", f"{sum(inexact.values())} weights in {len(inexact)} tensors (first: {first}) "
                                "do not round-trip bit for bit: each is more than 2^29 times smaller than the base's, "
                                "a difference fp64 cannot hold exactly")
            else:
                tv.make_applied(inputs[0], inputs[1], output, scale=scale, dtype=common.code(dtype),
                                compute=common.compute(compute_dtype), shard_size=shards,
                                command=common.command_line(), progress=p, tau=tau, force=force)

    common.call("taskvec", debug, job)
    if output != "-" and mode != "stats":
        common.note(f"wrote {output}", quiet)


def _stats(tv_spec: str, base_spec: str | None, jsonl: bool, tau: bool) -> None:
    from contextlib import ExitStack

    from asrmerge import taskvectors as tv
    from asrmerge.io import jsonl as jl
    from asrmerge.io.checkpoint import open_checkpoint

    with ExitStack() as stack:
        b = stack.enter_context(open_checkpoint(base_spec)) if base_spec else None
        t = stack.enter_context(open_checkpoint(tv_spec, base=b, tau=tau))
        if b is not None:
            tv.check_pair(b, t)
            norms: dict[str, float] | None = tv.base_norms(b)
        else:
            norms = tv.recorded_norms(t)
        records = tv.stats(t, norms)
        if jsonl or not sys.stdout.isatty():
            for r in records:
                jl.write_record(r)
            return
        rows = list(records)
        _table(t.label, [*rows, tv.total(rows, norms)])


def _table(label: str, rows: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.console import Console

    cells = []
    for r in rows:
        rel = r["rel_norm"]
        cells.append([str(r["tensor"]), "x".join(map(str, r.get("shape", []) or [])) or "", f"{r['norm']:.4g}",
                      f"{rel:.3%}" if isinstance(rel, float) else "-", f"{r['max_abs']:.3g}", f"{r['zero_frac']:.1%}"])
    ends = [i == len(rows) - 2 for i in range(len(rows))]
    columns = [("tensor", "left"), ("shape", "left"), ("norm", "right"), ("rel. norm", "right"), ("max |x|", "right"),
               ("zeros", "right")]
    out = Console()
    out.print(common.fit_table(f"task vector {label}", columns, cells, ends=ends, width=out.width, box=box.SIMPLE_HEAD,
                               show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)))
