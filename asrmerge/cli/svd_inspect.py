"""``asrmerge svd-inspect``: spectra, effective rank, task interference and rank collapse, as JSONL and pictures."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from asrmerge.cli import common

if TYPE_CHECKING:
    from asrmerge.diagnostics.inspection import Settings

HELP = """SVD diagnostics of task vectors and merged updates: singular spectra, effective and stable rank,
energy kept by TSV-M truncation, task interference (STI), cosine, subspace overlap and rank collapse.

One JSON line per tensor and input (kind "input"), merged update ("merged"), set of tasks ("tasks"), task
pair ("pair") and merged-versus-inputs ("collapse"); every field is defined in man asrmerge-svd-inspect.
Tensors: the 2-D attention and FFN matrices (policy class svd); --all adds every 2-D tensor.

\b
  asrmerge svd-inspect TV...                  task vectors (from asrmerge taskvec; '-' is stdin)
  asrmerge svd-inspect --tau TV...            task vectors from other tools (.safetensors, pickled state dicts)
  asrmerge svd-inspect --base BASE FT...      fine-tuned checkpoints (tau = FT - BASE) or LoRA adapters
  ... --merged M                              also the merged update M - BASE, against the inputs

Examples:

\b
  asrmerge svd-inspect tv1.st tv2.st tv3.st > spectra.jsonl
  asrmerge svd-inspect --base base/ ft1/ ft2/ --merged merged/ --plot report.png
  asrmerge taskvec base/ ft/ | asrmerge svd-inspect - --summary
  asrmerge svd-inspect --include '*.encoder_attn.*' tv1.st tv2.st | jq -c 'select(.kind == "pair")'
"""


class StiNorm(str, Enum):
    l1 = "l1"
    fro = "fro"


def svd_inspect(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT", show_default=False,
                      help="Task vectors, or fine-tuned checkpoints with --base; '-' is stdin.")],
    base: Annotated[str | None, typer.Option("--base", metavar="BASE",
                    help="The pre-trained model: inputs that are models become FT - BASE.")] = None,
    tau: Annotated[bool, typer.Option("--tau", help="Input files without asrmerge metadata are task vectors (from "
                                      "another tool; pickled state dicts are read with torch.load(weights_only=True)).")] = False,
    merged: Annotated[str | None, typer.Option("--merged", metavar="M",
                      help="A merged model (needs --base: M - BASE) or update, compared with the inputs.")] = None,
    include: Annotated[list[str] | None, typer.Option("--include", metavar="GLOB",
                       help="Only tensors whose name matches GLOB (repeat; 'model.' may be left out).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", metavar="GLOB",
                       help="Leave out tensors whose name matches GLOB (repeat).")] = None,
    all_2d: Annotated[bool, typer.Option("--all", help="Every 2-D tensor, not only the attention and FFN matrices.")] = False,
    full: Annotated[bool, typer.Option("--full", help="List every singular value (default: the top 64).")] = False,
    rank_frac: Annotated[float | None, typer.Option("--rank-frac", metavar="P", show_default="1/T",
                         help="TSV-M rank fraction p of k_keep, e_keep and retention.")] = None,
    beta: Annotated[float, typer.Option("--beta", metavar="B", help="BoostedTSV-M beta of boost_j and boost_gain.")] = 0.3,
    sti_k: Annotated[int | None, typer.Option("--sti-k", metavar="K", show_default="floor(r/T)",
                     help="Singular triplets per task in STI and subspace overlaps.")] = None,
    sti_norm: Annotated[StiNorm, typer.Option("--sti-norm", help="Norm of STI: entrywise L1 or Frobenius.")] = StiNorm.l1,
    collapse_threshold: Annotated[float, typer.Option("--collapse-threshold", metavar="G",
                                  help="gamma_c: flag collapse when kappa_s < G.")] = 1.0,
    no_pairs: Annotated[bool, typer.Option("--no-pairs", help="No tasks and pair records (singular values only, "
                                           "unless --merged).")] = False,
    summary: Annotated[bool, typer.Option("--summary", help="Mean and median per layer type instead of the records: "
                                          "a table on a terminal, else one JSON object.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --summary: one JSON object even on a terminal.")] = False,
    plot: Annotated[str | None, typer.Option("--plot", metavar="FILE",
                    help="Also draw spectra, effective rank by depth and interference heat maps (.png or .svg).")] = None,
    device: common.DeviceOpt = "auto",
    compute_dtype: common.ComputeOpt = common.ComputeDtype.fp32,
    dtype: Annotated[common.Dtype | None, typer.Option("--dtype", help="Storage dtype that rounding_loss assumes "
                                                       "(needs --base; default: the base's).")] = None,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    def job() -> None:
        from asrmerge.device import KERNELS, resolve
        from asrmerge.diagnostics.inspection import Settings

        _check(rank_frac, beta, sti_k, collapse_threshold, summary, json_out, dtype, base)
        if plot is not None:
            from asrmerge.diagnostics.plot import check_path, require_matplotlib

            check_path(plot)
            require_matplotlib()
        settings = Settings(rank_frac=rank_frac, beta=beta, sti_k=sti_k, sti_norm=sti_norm.value,
                            collapse_threshold=collapse_threshold, pairs=not no_pairs, full=full,
                            compute=common.compute(compute_dtype), device=str(resolve(device, kinds=KERNELS)),
                            rounding_dtype=common.code(dtype))
        _inspect(settings, inputs, base=base, merged=merged, tau=tau, include=include, exclude=exclude, all_2d=all_2d,
                 summary=summary, json_out=json_out, plot=plot, quiet=quiet)

    common.call("svd-inspect", debug, job)
    if plot is not None:
        common.note(f"wrote {plot}", quiet)


def _check(rank_frac: float | None, beta: float, sti_k: int | None, threshold: float, summary: bool,
           json_out: bool, dtype: common.Dtype | None, base: str | None) -> None:
    """Option values and combinations, checked before anything is read (usage errors, exit 2)."""
    from asrmerge.errors import UsageError
    from asrmerge.merge import registry

    boosted = registry.get("boosted-tsvm")  # p and beta of the diagnostics are BoostedTSV-M's, with its ranges
    if rank_frac is not None:
        boosted.param("rank_frac").check(rank_frac, subject="--rank-frac", hint="e.g. --rank-frac 0.1")
    boosted.param("beta").check(beta, subject="--beta", hint="the paper uses 0.3")
    if sti_k is not None and sti_k < 1:
        raise UsageError(f"{sti_k} is not a positive number of triplets", subject="--sti-k")
    if not 0 < threshold < float("inf"):
        raise UsageError(f"{threshold} is not positive", subject="--collapse-threshold", hint="the default is 1.0")
    if json_out and not summary:
        raise UsageError("--json goes with --summary", hint="the records are JSON lines already")
    if dtype is not None and base is None:
        raise UsageError("rounding_loss needs the base model", subject="--dtype", hint="add --base BASE")


def _inspect(settings: Settings, inputs: list[str], *, base: str | None, merged: str | None, tau: bool,
             include: list[str] | None, exclude: list[str] | None, all_2d: bool, summary: bool, json_out: bool,
             plot: str | None, quiet: bool) -> None:
    """Open the inputs, stream the inspection, and write records, the summary and the picture."""
    from asrmerge.diagnostics.inspection import inspect_tensors
    from asrmerge.diagnostics.layers import select
    from asrmerge.diagnostics.plot import PlotData, draw
    from asrmerge.diagnostics.report import Summary
    from asrmerge.diagnostics.sources import Sources
    from asrmerge.errors import UsageError
    from asrmerge.io import jsonl

    with Sources(inputs, base=base, merged=merged, tau=tau) as src:
        names = select(src.ref.infos.values(), include=include, exclude=exclude, all_2d=all_2d)
        if not names:
            raise UsageError("no tensor is selected", subject="--include/--exclude" if include or exclude else None,
                             hint="check the globs against the names `asrmerge taskvec --stats` lists; --all adds "
                                  "every 2-D tensor")
        merged_label = src.merged.label if src.merged else None
        # --plot on a terminal: the picture is the point, so the summary tables rather than a screenful of records
        summary = summary or (plot is not None and sys.stdout.isatty())
        table = Summary(src.labels, merged_label) if summary else None
        picture = PlotData(src.labels, merged_label, settings.collapse_threshold) if plot else None
        with common.progress(quiet) as progress:
            for result in inspect_tensors(src, names, settings, progress):
                if table is None:
                    for record in result.records:
                        jsonl.write_record(record)
                else:
                    table.add(result)
                if picture is not None:
                    picture.add(result)
    if picture is not None and plot is not None:
        draw(picture, plot)
    if table is not None:
        if json_out or not sys.stdout.isatty():
            jsonl.write_record(table.result())
        else:
            _print_summary(table.result())


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def _print_summary(s: dict[str, Any]) -> None:
    """Three narrow tables (inputs, between tasks, merged versus inputs) and the T x T heat maps."""
    from rich import box
    from rich.console import Console

    from asrmerge.diagnostics.report import left_out_note, short_labels

    out = Console()
    merged = f", merged {s['merged']}" if s["merged"] is not None else ""
    out.print(f"svd-inspect: {len(s['subjects'])} inputs, {s['tensors']} tensors{merged}", markup=False,
              highlight=False)
    note = left_out_note(s)
    if note:
        out.print(note, markup=False, highlight=False)
    sections = [
        ("inputs", "input", [("erank", ".3g"), ("srank", ".3g"), ("rank90", ".3g"), ("rank99", ".3g"),
                             ("e_keep", ".1%"), ("boost", ".3g")]),
        ("between tasks", "pairs", [("cos", ".3f"), ("sti_rel", ".3f"), ("ov_u", ".3f"), ("ov_v", ".3f")]),
        ("merged vs inputs", "collapse", [("erank M", ".3g"), ("srank M", ".3g"), ("κ_s", ".3f"),
                                          ("κ_e", ".3f"), ("retention", ".1%"), ("collapse", "")]),
    ]
    style: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "padding": (0, 1, 0, 0)}
    for title, part, cols in sections:
        if not any(g[part] for g in s["groups"]):
            continue
        columns = [("layer type", "left"), ("", "left"), ("n", "right"), *((c, "right") for c, _ in cols)]
        rows, ends = [], []
        for g in s["groups"]:
            for stat in ("mean", "median"):
                row = [g["group"] if stat == "mean" else "", stat, str(g["tensors"]) if stat == "mean" else ""]
                for c, spec in cols:
                    row.append(_cell(g, part, c, stat, spec))
                rows.append(row)
                ends.append(stat == "median")
        out.print()
        out.print(common.fit_table(title, columns, rows, ends=ends, width=out.width, **style))
    for key, what in (("interference", "task interference (mean pair sti_rel)"), ("cosine", "cosine (mean pair cos)")):
        matrix = s[key]
        if matrix is None:
            continue
        names = short_labels(s["subjects"])
        legend: str | None = None
        if max(map(len, names)) + sum(max(len(n), 5) + 2 for n in names) > out.width:  # number them, with a key
            legend = ", ".join(f"{i} {n}" for i, n in enumerate(names, 1))
            names = [str(i) for i in range(1, len(names) + 1)]
        columns = [("", "left"), *((name, "right") for name in names)]
        rows = [[name, *[_fmt(v, ".3f") for v in row]] for name, row in zip(names, matrix, strict=True)]
        out.print()
        out.print(common.fit_table(what, columns, rows, width=out.width, **style))
        if legend:
            out.print(legend, markup=False, highlight=False)


def _cell(g: dict[str, Any], part: str, col: str, stat: str, spec: str) -> str:
    """One summary cell: the ``stat`` of column ``col`` of group ``g``'s ``part``."""
    if col == "collapse":
        return f"{g['collapse']['collapsed']}/{g['tensors']}" if stat == "mean" else ""
    if col in ("erank M", "srank M"):
        return _fmt(g["merged"][col.split()[0]][stat], spec)
    if part == "pairs" and col == "sti_rel":  # all tasks together, not the mean pair
        return _fmt(g["tasks"]["sti_rel"][stat], spec)
    key = {"boost": "boost_gain", "κ_s": "kappa_s", "κ_e": "kappa_e"}.get(col, col)
    return _fmt(g[part][key][stat], spec)
