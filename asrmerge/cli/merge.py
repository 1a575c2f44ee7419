"""``asrmerge merge``: merge fine-tuned Whisper checkpoints or task vectors with one of 15 algorithms."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Annotated, Any

import typer

from asrmerge.cli import common

HELP = """Merge fine-tuned checkpoints (with --base) or task vectors into one model, tensor by tensor.

\b
  asrmerge merge --algo boosted-tsvm --base base/ ft-news/ ft-kids/ ft-phone/ -o merged/
  asrmerge merge --algo boosted-tsvm --base base/ news.st kids.st -p beta=0.3 -p lam=1.2 -o merged/
  asrmerge merge --algo ties --base base/ a/ b/ -p density=0.2 -p scope=model -o out.safetensors
  asrmerge merge --algo tsvm --base base/ *.st -p lam=0.6,0.8,1.0,1.2 -o 'merged-{lam}/'
  asrmerge merge --list                 # algorithms, parameters, defaults, ranges, papers
  asrmerge merge --algo tsvm --base base/ *.st --dry-run

Algorithms: soup, model-stock, karcher, multislerp (parameter space); ta, ties, dare-ta, dare-ties, pcb,
sce (task vectors, element-wise); iso-c, iso-cts, tsvm, tsvm-ns, boosted-tsvm (task-vector subspaces,
applied to the matrices of class svd). Parameters are -p NAME=VALUE; a comma-separated list sweeps it,
writing one output per value (name them with {NAME} in -o); a lambda sweep reuses every decomposition.

Inputs may mix fine-tuned checkpoints, task vectors from asrmerge taskvec, PEFT LoRA adapter folders
(read against --base as tau = s B A) and, with --tau, task vectors from other tools (.safetensors, or
pickled state dicts). A folder output gets a model card (README.md) saying how it was made.

\b
  asrmerge merge --algo boosted-tsvm --base base/ ft-news/ lora-kids/ lora-phone/ -o merged/
  asrmerge merge --algo tsvm --base base/ --tau tv1.safetensors tv2.pt -o merged/
"""


def _algos(incomplete: str) -> list[str]:
    from asrmerge.merge.registry import names

    return [n for n in names() if n.startswith(incomplete)]


def merge(
    inputs: Annotated[list[str] | None, typer.Argument(metavar="INPUT", show_default=False,
                      help="Fine-tuned checkpoints (with --base) or task vectors, in task order.")] = None,
    algo: Annotated[str | None, typer.Option("-a", "--algo", metavar="NAME", autocompletion=_algos,
                    help="The merge algorithm (see --list).")] = None,
    base: Annotated[str | None, typer.Option("--base", metavar="BASE", help="The pre-trained model theta_0.")] = None,
    tau: Annotated[bool, typer.Option("--tau", help="Input files without asrmerge metadata are task vectors (from "
                                      "another tool; pickled state dicts are read with torch.load(weights_only=True)).")] = False,
    param: Annotated[list[str] | None, typer.Option("-p", "--param", metavar="NAME=VALUE",
                     help="An algorithm parameter (repeat; VALUE may be a comma-separated sweep).")] = None,
    weights: Annotated[str | None, typer.Option("--weights", metavar="W1,W2,...",
                       help="Per-task weights w_t, one per input (default 1).")] = None,
    lam: Annotated[list[str] | None, typer.Option("--lam", metavar="GLOB=FACTOR",
                   help="Scale the update of matching tensors by FACTOR (repeat; first match wins).")] = None,
    policy: Annotated[str | None, typer.Option("--policy", metavar="RULES",
                      help="Tensor classes 'GLOB=svd|svd-flat|mean|base;...' before the Whisper defaults.")] = None,
    output: common.Output = "-",
    device: common.DeviceOpt = "auto",
    compute_dtype: common.ComputeOpt = common.ComputeDtype.fp32,
    dtype: Annotated[common.Dtype | None, typer.Option("--dtype", "--out-dtype",
                     help="Output dtype of float tensors (default: the base's).")] = None,
    shard_size: common.ShardSize = None,
    memory: Annotated[str, typer.Option("--memory", metavar="SIZE",
                      help="Working-set budget per tensor; larger tensors are streamed in row chunks.")] = "512MiB",
    workers: Annotated[int, typer.Option("--workers", metavar="N", min=0,
                       help="Tensors merged at once (0: one per CPU core; 1 on CUDA).")] = 0,
    batch: Annotated[int, typer.Option("--batch", metavar="N", min=0,
                     help="Same-shape matrices per batched SVD call (0: 64 on CUDA, 1 on the CPU).")] = 0,
    list_: Annotated[bool, typer.Option("--list", help="List the algorithms and their parameters.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what the merge would do and cost; write nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --list or --dry-run: one JSON document.")] = False,
    strict_inputs: Annotated[bool, typer.Option("--strict-inputs",
                             help="The same checkpoint given twice (or the base among the inputs) is an error "
                                  "(exit 3), not a warning.")] = False,
    force: common.Force = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="With --dry-run: also a line per tensor.")] = False,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    from asrmerge.errors import UsageError

    if list_:
        common.call("merge", debug, lambda: _list(json_out))
        return

    def job() -> None:
        from asrmerge.merge import engine
        from asrmerge.merge.plan import MergeSpec, make_plan
        from asrmerge.merge.plan import dry_run as plan_dry_run
        from asrmerge.merge.policy import parse_lam_rules

        if not algo:
            raise UsageError("no algorithm given", subject="--algo", hint="choose one of asrmerge merge --list")
        spec = MergeSpec(
            algo=algo, inputs=list(inputs or []), base=base, params=list(param or []),
            weights=_weights(weights), lam_rules=parse_lam_rules(list(lam or [])), policy=policy,
            output=output, device=device, compute_dtype=common.compute(compute_dtype),
            out_dtype=common.code(dtype), shard_size=common.size(shard_size, "--shard-size"),
            budget=common.size(memory, "--memory") or 0, command=common.command_line(), check_outputs=not dry_run,
            workers=workers, batch=batch, tau=tau, force=force, strict_inputs=strict_inputs,
        )
        plan = make_plan(spec)
        try:
            for line in plan.warnings if not quiet else []:
                common.warn("merge", line)
            if not dry_run:
                for o in plan.outputs:
                    common.sweep(o.path, quiet)
            if dry_run:
                _print_dry_run(plan_dry_run(plan), json_out, verbose)
                return
            with common.progress(quiet) as p:
                engine.execute(plan, progress=p, warn=lambda m: common.warn("merge", m) if not quiet else None)
        finally:
            plan.close()
        for o in plan.outputs:
            if o.path != "-":
                common.note(f"wrote {o.path}", quiet)
        if plan.merged_in_core:
            common.note(f"{len(plan.merged_in_core)} matrices merged in the core space of the LoRA inputs' factors "
                        "(docs/algorithms.md section 6.5)", quiet)
        if os.environ.get("ASRMERGE_CUDA_STATS") and plan.inputs.device.type == "cuda":
            import torch

            common.console().print(f"cuda_peak_bytes={torch.cuda.max_memory_allocated()}", markup=False)

    common.call("merge", debug, job)


def _weights(text: str | None) -> list[float] | None:
    from asrmerge.errors import UsageError

    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"{text!r} is not a comma-separated list of numbers", subject="--weights",
                         hint="write e.g. --weights 1,1,0.5") from None
    bad = next((v for v in values if not math.isfinite(v)), None)
    if bad is not None:
        raise UsageError(f"{bad} is not a finite number", subject="--weights", hint="write e.g. --weights 1,1,0.5")
    return values


def _list(as_json: bool) -> None:
    from asrmerge.merge.registry import REGISTRY, names

    algos = [REGISTRY[n] for n in names()]
    if as_json:
        doc = [{"name": a.name, "summary": a.summary, "paper": a.paper, "space": a.space, "min_tasks": a.min_tasks,
                "needs_base": a.needs_base, "fixed": a.fixed,
                "params": [{"name": p.name, "type": p.type.__name__, "default": p.describe_default(),
                            "accepts": list(p.accepts) if isinstance(p.accepts, tuple) else p.accepts,
                            "doc": p.doc, "source": p.source} for p in a.params]} for a in algos]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    lines = []
    for a in algos:
        lines.append(f"{a.name}  [{a.space}{'' if a.needs_base else ', base optional'}"
                     f"{f', T >= {a.min_tasks}' if a.min_tasks > 1 else ''}]")
        lines.append(f"    {a.summary}")
        lines.append(f"    {a.paper}")
        for p in a.params:
            accepts = "|".join(p.accepts) if isinstance(p.accepts, tuple) else (p.accepts or p.type.__name__)
            lines.append(f"    {'-p ' + p.name + '=' + p.describe_default():<28} {accepts:<24} {p.doc}")
        lines.append("")
    sys.stdout.write("\n".join(lines))


def _print_dry_run(report: dict[str, Any], as_json: bool, verbose: bool) -> None:
    """The estimate first, then the outputs; each tensor's class, shape and SVDs only with ``-v``."""
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    gib = 2.0**30
    out = [f"algorithm {report['algo']} on {report['tasks']} tasks, device {report['device']}, "
           f"compute {report['compute_dtype']}"]
    out.append(f"{len(report['tensors'])} tensors, classes: "
               + ", ".join(f"{k} {v}" for k, v in sorted(report["classes"].items())))
    cores = f", on LoRA cores for {report['core_tensors']} matrices" if report["core_tensors"] else ""
    products = (f"; matrix products: {report['products'] / 1e9:.2f} G multiply-adds  (estimated "
                f"{report['product_seconds_estimate']:.1f} s)") if report["products"] else ""
    out.append(f"SVDs: {report['svds']}{cores}  (estimated {report['svd_seconds_estimate']:.1f} s){products}")
    out.append(f"read {report['read_bytes'] / gib:.2f} GiB, write {report['write_bytes'] / gib:.2f} GiB, "
               f"peak memory about {report['peak_bytes_estimate'] / gib:.2f} GiB, "
               f"time about {report['seconds_estimate']:.1f} s (element-wise work "
               f"{report['element_seconds_estimate']:.1f} s)")
    for o in report["outputs"]:
        out.append(f"output {o['path']}  " + " ".join(f"{k}={v}" for k, v in o["params"].items()))
    if verbose:
        out.append("tensors (class, name, shape, dtype, SVDs):")
        for t in report["tensors"]:
            svd = f"  {t['svds']} SVDs" if t["svds"] else ""
            svd += f"  (core R={t['core_rank']})" if t["core_rank"] is not None else ""
            out.append(f"  {t['class']:<8} {t['tensor']:<60} {'x'.join(map(str, t['shape'])):<14} {t['dtype']}{svd}")
    else:
        out.append("(-v lists each tensor's class, shape and SVDs; --json gives all of it as one document)")
    sys.stdout.write("\n".join(out) + "\n")

