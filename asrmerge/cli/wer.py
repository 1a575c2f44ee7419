"""``asrmerge wer``: word error rates of JSONL records, per group, and two systems compared."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any

import typer

from asrmerge.cli import common

HELP = """Word error rate of JSON lines that carry a reference and a hypothesis (transcribe's output).

Corpus WER = total edits / total reference words, with substitutions, deletions, insertions, reference
words and utterances; --cer for characters. Both texts are normalised first (--normalizer). Records with
an "error" field, or without a reference or hypothesis, are counted under "excluded" and reported.

A table on a terminal, one JSON document otherwise (or --json); --jsonl writes each record with its own
figures instead. INPUT files are read in turn; none, or '-', reads stdin.

Examples:

\b
  asrmerge transcribe merged/ dev.jsonl | asrmerge wer --normalizer whisper-en
  cat hyp.*.jsonl | asrmerge wer --by domain               # per domain, macro and micro averages
  asrmerge wer --compare tsvm.jsonl boosted.jsonl          # MAPSSWE p-value, bootstrap CI of the difference
  asrmerge wer --cer --normalizer basic zh.jsonl
"""


class Normalizer(str, Enum):
    whisper_en = "whisper-en"
    basic = "basic"
    none = "none"


def wer(
    inputs: Annotated[list[str] | None, typer.Argument(metavar="INPUT", show_default=False,
                      help="JSONL files ('-': stdin, the default); with --compare exactly two, A and B.")] = None,
    ref_field: Annotated[str, typer.Option("--ref-field", metavar="FIELD", help="The reference's field.")] = "text",
    hyp_field: Annotated[str, typer.Option("--hyp-field", metavar="FIELD", help="The hypothesis's field.")] = "hyp",
    normalizer: Annotated[Normalizer, typer.Option("--normalizer",
                          help="whisper-en: Whisper's English normalizer; basic: Whisper's basic one, any language.")]
    = Normalizer.basic,
    cer: Annotated[bool, typer.Option("--cer", help="Character error rate (spaces count) instead of WER.")] = False,
    by: Annotated[str | None, typer.Option("--by", metavar="FIELD",
                  help="Figures per value of FIELD too, with their macro average.")] = None,
    json_doc: Annotated[bool, typer.Option("--json", help="One JSON document, even on a terminal.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Each record with its own figures, as JSON lines.")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Compare systems A and B on the same utterances.")] = False,
    samples: Annotated[int, typer.Option("--bootstrap", metavar="N", help="With --compare: bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="With --compare: the bootstrap's random seed.")] = 0,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    def job() -> None:
        from asrmerge.asr import scoring as w
        from asrmerge.errors import UsageError
        from asrmerge.io.jsonl import write_record

        sources = list(inputs or ["-"])
        if json_doc and jsonl:
            raise UsageError("--json and --jsonl exclude each other", hint="choose one")
        if compare and jsonl:
            raise UsageError("--jsonl and --compare exclude each other", hint="run wer --jsonl on each system's file")
        if compare and len(sources) != 2:
            raise UsageError(f"--compare takes two inputs, got {len(sources)}", hint="usage: asrmerge wer --compare A B")
        if sources.count("-") > 1:
            raise UsageError("stdin ('-') can be only one input")
        if "-" in sources and sys.stdin.isatty():
            raise UsageError("stdin is a terminal, not JSON lines", subject="-",
                             hint="give INPUT files, or pipe transcribe's output in")
        if samples < 1:
            raise UsageError(f"{samples} resamples", subject="--bootstrap", hint="use 1 or more (1000 is usual)")
        fields = w.Fields(ref=ref_field, hyp=hyp_field, normalizer=normalizer.value, cer=cer)
        table = not (json_doc or jsonl) and sys.stdout.isatty()
        if compare:
            from asrmerge.asr import mapsswe

            a, b = (w.read([s], fields) for s in sources)
            for items, label in ((a, sources[0]), (b, sources[1])):
                w.require_scorable(items, fields, label)
            pairs = mapsswe.pair(a, b, *sources)
            w.score(a, cer)
            w.score(b, cer)
            doc = mapsswe.compare(pairs, fields, (sources[0], sources[1]), by=by, samples=samples, seed=seed)
            for side, label in (("a", sources[0]), ("b", sources[1])):
                _warn_excluded(doc["excluded"][side], label, fields, quiet)
            _compare_table(doc) if table else write_record(doc)
            return
        items = w.read(sources, fields)
        w.require_scorable(items, fields, ", ".join(sources))
        w.score(items, cer)
        doc = w.summary(items, fields, by)
        _warn_excluded(doc["excluded"], ", ".join(sources), fields, quiet)
        if jsonl:
            for it in items:
                write_record(w.utterance_record(it, fields))
            micro = doc["micro"]
            common.note(f"{doc['metric'].upper()} {_pct(micro[doc['metric']])} over {micro['utterances']} utterances "
                        f"({micro['errors']} errors / {micro['ref_chars' if cer else 'ref_words']})", quiet)
        elif table:
            _table(doc)
        else:
            write_record(doc)

    common.call("wer", debug, job)


def _warn_excluded(counts: dict[str, int], label: str, fields: Any, quiet: bool) -> None:
    from asrmerge.asr.scoring import describe

    total = sum(counts.values())
    if total and not quiet:
        common.warn("wer", f"{label}: {total} record{'s' if total > 1 else ''} excluded ({describe(counts)}); "
                    "counted under \"excluded\"")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


TABLE_STYLE: dict[str, Any] = {"show_edge": False, "pad_edge": False, "padding": (0, 1, 0, 0)}


def _table(doc: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console

    metric, cer = doc["metric"], doc["metric"] == "cer"
    ref = "ref_chars" if cer else "ref_words"
    columns = [(col, "left" if i == 0 else "right") for i, col in enumerate(
        (doc.get("by", ""), "utterances", "ref chars" if cer else "ref words", "sub", "del", "ins", metric.upper()))]
    rows: list[list[str]] = []
    ends: list[bool] = []

    def row(name: str, c: dict[str, Any], end: bool = False) -> None:
        rows.append([name, str(c["utterances"]), str(c[ref]), str(c["substitutions"]), str(c["deletions"]),
                     str(c["insertions"]), _pct(c[metric])])
        ends.append(end)

    groups = doc.get("groups", {})
    for i, (g, c) in enumerate(groups.items()):
        row(g, c, end=i == len(groups) - 1)
    row("micro (pooled)" if groups else "all", doc["micro"])
    if groups:
        macro = doc["macro"]
        rows.append([f"macro (mean of {macro['groups']} groups)", "", "", "", "", "", _pct(macro[metric])])
        ends.append(False)
    out = Console()
    out.print(common.fit_table(f"{metric.upper()}, normalizer {doc['normalizer']}", columns, rows, ends=ends,
                               width=out.width, box=box.SIMPLE_HEAD, **TABLE_STYLE))
    if any(doc["excluded"].values()):
        out.print(f"excluded: {', '.join(f'{k} {v}' for k, v in doc['excluded'].items() if v)}", markup=False)


def _compare_table(doc: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console

    metric = doc["metric"]
    out = Console()
    scopes = [("all", doc), *doc.get("groups", {}).items()]
    columns = [(col, "left" if i == 0 else "right") for i, col in enumerate(
        (doc.get("by", ""), "utt.", f"{metric.upper()} A", f"{metric.upper()} B", "A - B", "bootstrap 95% CI",
         "MAPSSWE W", "p", "better"))]
    rows, ends = [], []
    for name, s in scopes:
        m, ci = s["mapsswe"], s["bootstrap"]["ci95"]
        diff = s["difference"]
        rows.append([name, str(s["utterances"]), _pct(s["a"][metric]), _pct(s["b"][metric]),
                     "-" if diff is None else f"{100 * diff:+.2f}",
                     "-" if ci is None else f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]",
                     "-" if m["w"] is None else f"{m['w']:.3f}", "-" if m["p"] is None else f"{m['p']:.3g}",
                     m["better"].upper() if m["better"] else "neither"])
        ends.append(name == "all" and len(scopes) > 1)
    title = (f"A = {doc['a']['file']}, B = {doc['b']['file']} ({metric.upper()}, normalizer {doc['normalizer']})")
    out.print(common.fit_table(title, columns, rows, ends=ends, width=out.width, box=box.SIMPLE_HEAD, **TABLE_STYLE))
    out.print(f"MAPSSWE over utterances, two-sided, alpha {doc['mapsswe']['alpha']}; bootstrap "
              f"{doc['bootstrap']['samples']} resamples, seed {doc['bootstrap']['seed']}; differences in points",
              markup=False)
