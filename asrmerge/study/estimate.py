"""What a study will cost, for its dry run: disk, merge time from merge's own dry run, transcription time.

Merges: each merge command of the plan is planned by :func:`asrmerge.merge.plan.make_plan` on the fine-tunes
(the task vectors do not exist yet; the tensors, SVDs and bytes are the same) and estimated by
:func:`asrmerge.merge.plan.dry_run`, from headers, with one SVD rate measured here for all of them.

Transcriptions: the audio of every transcription's records is summed from the files' headers (soundfile),
and the base model, loaded once, transcribes the first few records of the first transcription with the
study's transcribe options: its real-time factor and load time give each transcription's time (every system
has the base's architecture). That takes seconds; ``measure=False`` leaves it out.

Disk: task vectors in fp32, each merged model its weights at the base's dtype plus the base folder's support
files, hypotheses about their manifest records and a hypothesis each, 1 KiB per score and 512 KiB of
reports and pictures. Library code: nothing is printed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asrmerge.study.plan import Planner, Step, fmt

if TYPE_CHECKING:
    from asrmerge.asr.manifest import Utterance

IO_RATE = 1.0e9  # bytes per second read or written: assumed, since the task vectors a study merges do not exist yet to time
SCORE_BYTES = 1024  # a wer --json document
REPORT_BYTES = 512 * 1024  # results.md, table.json, per-domain.jsonl, chart.png, svd-inspect.png, steps/
HEADER_BYTES = 4096  # a safetensors header's metadata, and a model card
TENSOR_HEADER_BYTES = 128  # a safetensors header's entry per tensor
SAMPLE_UTTERANCES = 4  # the rate is measured on at most this many records...
SAMPLE_SECONDS = 10.0  # ...stopping once they hold this much audio


@dataclass
class Estimate:
    """The estimate lines of the plan (shell comments) and their numbers (bytes, seconds)."""

    lines: list[str] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)


def size(n: float) -> str:
    for unit, scale in (("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


def _arg(args: list[str], option: str) -> str | None:
    return args[args.index(option) + 1] if option in args else None


def _all(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, w in enumerate(args[:-1]) if w == option]


def merge_reports(pl: Planner, steps: list[Step], svd_rate: float | None = None,
                  matmul_rate: float | None = None,
                  element_rate: tuple[float, float] | None = None) -> dict[str, dict[str, Any]]:
    """merge's dry-run report for every merge step (by step id), with ``model_bytes``: one output on disk.

    ``{chosen}`` (the beta sweep's lambda, chosen on dev later) is the grid's first value: the cost is the same.
    """
    import torch

    from asrmerge.device import KERNELS
    from asrmerge.device import resolve as resolve_device
    from asrmerge.merge.plan import MergeSpec, dry_run, make_plan, measure_matmul_rate, measure_svd_rate

    o = pl.opts
    by_tv = {pl.tv(n): p for n, p in o.finetunes.items()}
    device = resolve_device(o.device or "auto", kinds=KERNELS)
    if svd_rate is None:
        svd_rate = measure_svd_rate(device, torch.float32)
    if matmul_rate is None:
        matmul_rate = measure_matmul_rate(device, torch.float32)
    out = {}
    for s in steps:
        if s.verb != "merge":
            continue
        grid = o.lams.get("boosted-tsvm") or [1.0]
        params = [p.replace("{chosen}", fmt(grid[0])) for p in _all(s.args, "-p")]
        spec = MergeSpec(algo=str(_arg(s.args, "--algo")), inputs=[by_tv[a] for a in s.args if a in by_tv],
                         base=o.base, params=params, output=str(_arg(s.args, "-o")), device=o.device or "auto",
                         check_outputs=False)
        plan = make_plan(spec)
        try:
            report = dry_run(plan, svd_rate=svd_rate, io_rate=IO_RATE, matmul_rate=matmul_rate,
                             element_rate=element_rate)
            support = sum(len(b) for b in plan.inputs.reference.support_files().values())
        finally:
            plan.close()
        weights = report["write_bytes"] / max(1, len(report["outputs"]))
        report["model_bytes"] = weights + support + HEADER_BYTES + TENSOR_HEADER_BYTES * len(report["tensors"])
        out[s.id] = report
    return out


def _records(pl: Planner, step: Step, cache: dict[str, list[Utterance]]) -> list[Utterance]:
    """The utterances a transcribe step reads (its manifest, its ``--where`` conditions)."""
    from asrmerge.asr.manifest import parse_where, read_manifest, select_where

    path = os.path.normpath(os.path.join(pl.root, step.args[2]))  # relpath undone: the folder may not exist
    if path not in cache:
        cache[path] = read_manifest(path)
    return select_where(cache[path], parse_where(_all(step.args, "--where")))


def _duration(u: Utterance, known: dict[str, float | None]) -> float | None:
    """Seconds of audio from the file's header (``None``: a format soundfile does not read)."""
    import soundfile as sf

    key = str(u.path)
    if key not in known:
        try:
            known[key] = float(sf.info(key).duration)
        except (RuntimeError, OSError):
            known[key] = None
    return known[key]


def measure_rate(pl: Planner, sample: list[Utterance]) -> dict[str, Any]:
    """Load the base model and transcribe ``sample`` with the study's options: load seconds, audio and
    transcription seconds, and their ratio (the real-time factor)."""
    from asrmerge.asr import decoding as tr
    from asrmerge.asr import model as md
    from asrmerge.device import resolve

    o = pl.opts
    # the options the study passes to transcribe; Settings and load keep transcribe's defaults for the others
    given: dict[str, Any] = {k.removeprefix("--").replace("-", "_"): int(v) for k, v in o.transcribe.items()}
    dev = resolve(o.device or "auto")
    load_kw: dict[str, Any] = {k: given.pop(k) for k in ("chunk_length",) if k in given}
    settings = tr.Settings(language=o.language, **given)
    start = time.perf_counter()
    w = md.load(o.base, device=dev, dtype=md.resolve_dtype(None, dev), **load_kw)
    load_s = time.perf_counter() - start
    stats = tr.Stats()
    for _ in tr.transcribe(w, sample, settings, stats=stats):
        pass
    return {"load_s": load_s, "sample_audio_s": stats.audio_s, "sample_s": stats.elapsed, "sample": stats.done,
            "rtf": stats.rtf, "device": str(dev)}


def estimate(pl: Planner, steps: list[Step], *, svd_rate: float | None = None, measure: bool = True) -> Estimate:
    """Disk and time of the study whose steps are ``steps`` (a whole study: a resumed one keeps what its finished
    steps wrote). ``svd_rate``: seconds per SVD cost unit (measured if ``None``); ``measure``: time a
    transcription with the base model (seconds), else the transcriptions get their audio but no time."""
    from asrmerge.io.checkpoint import open_checkpoint
    from asrmerge.taskvectors import output_infos

    o = pl.opts
    est = Estimate()
    c = est.counts
    with open_checkpoint(o.base) as base:
        model_in = sum(i.nbytes for i in base.infos.values())
        tv_infos = output_infos(base, "F32")
    tvs = [s for s in steps if s.verb == "taskvec"]
    tv_bytes = sum(i.nbytes for i in tv_infos) + HEADER_BYTES + TENSOR_HEADER_BYTES * len(tv_infos)
    c["taskvec_bytes"] = tv_bytes * len(tvs)
    c["taskvec_s"] = len(tvs) * (2 * model_in + tv_bytes) / IO_RATE

    reports = merge_reports(pl, steps, svd_rate)
    lam_merges = {f"merge-{a}" for a in o.algos}
    swept = sum(r["model_bytes"] * len(r["outputs"]) for k, r in reports.items() if k in lam_merges)
    left = {k: 1 if k in lam_merges else len(r["outputs"]) for k, r in reports.items()}  # models after pruning
    kept = sum(r["model_bytes"] * left[k] for k, r in reports.items())
    c["merge_s"] = sum(r["seconds_estimate"] for r in reports.values())
    c["merge_svds"] = sum(r["svds"] for r in reports.values())
    c["model_bytes"] = kept

    runs = [s for s in steps if s.verb == "transcribe"]
    cache: dict[str, list[Utterance]] = {}
    known: dict[str, float | None] = {}
    records = {s.id: _records(pl, s, cache) for s in runs}
    durations = {s.id: [_duration(u, known) for u in records[s.id]] for s in runs}
    found = [d for d in known.values() if d is not None]
    mean = sum(found) / len(found) if found else 0.0
    unknown = sum(d is None for d in known.values())
    audio = {k: sum(mean if d is None else d for d in ds) for k, ds in durations.items()}
    c["audio_s"] = sum(audio.values())
    hyp = {s.id: sum(len(json.dumps(u.record)) + len(str(u.record.get("text", ""))) + 64 for u in records[s.id])
           for s in runs}
    c["hyp_bytes"] = sum(hyp.values())
    scores = sum(1 for s in steps if s.verb == "wer") + bool(pl.joint) + (len(o.algos) > 1)  # and the comparisons
    dev_bytes = sum(b for k, b in hyp.items() if k.startswith("transcribe-dev-"))
    c["disk_final_bytes"] = c["taskvec_bytes"] + kept + c["hyp_bytes"] + scores * SCORE_BYTES + REPORT_BYTES
    c["disk_peak_bytes"] = max(c["disk_final_bytes"], c["taskvec_bytes"] + swept + dev_bytes)

    n_models = sum(len(r["outputs"]) for r in reports.values())
    pruned = n_models - sum(left.values())
    est.lines.append(
        f"# disk: about {size(c['disk_final_bytes'])} at the end ({len(tvs)} task vectors "
        f"{size(c['taskvec_bytes'])}, {n_models - pruned} merged model{'s' * (n_models - pruned > 1)} {size(kept)}, "
        f"hypotheses {size(c['hyp_bytes'])}, scores and reports {size(scores * SCORE_BYTES + REPORT_BYTES)})"
        + (f"; {size(c['disk_peak_bytes'])} at the peak, before the {pruned} model{'s' * (pruned > 1)} of the "
           "lambdas not chosen on dev are removed" if pruned else ""))
    for k, r in reports.items():
        est.lines.append(f"# {k}: {len(r['outputs'])} model{'s' * (len(r['outputs']) > 1)} of "
                         f"{size(r['model_bytes'])}, {r['svds']} SVDs, about {seconds(r['seconds_estimate'])}, peak "
                         f"memory about {size(r['peak_bytes_estimate'])} (merge --dry-run's estimate, on "
                         f"{r['device']} with the SVD rate measured now)")
    line = (f"# transcriptions: {len(runs)} runs over {seconds(c['audio_s'])} of audio (from the files' headers"
            + (f"; {unknown} files without a duration there counted at the mean, {mean:.1f} s" if unknown else "")
            + ")")
    c["transcription_s"] = 0.0
    if measure and runs:
        sample: list[Utterance] = []
        held = 0.0
        for u, d in zip(records[runs[0].id], durations[runs[0].id], strict=True):
            if len(sample) == SAMPLE_UTTERANCES or held >= SAMPLE_SECONDS:
                break
            sample.append(u)
            held += mean if d is None else d
        m = measure_rate(pl, sample)
        c.update({k: float(v) for k, v in m.items() if k != "device"})
        c["transcription_s"] = m["rtf"] * c["audio_s"] + m["load_s"] * len(runs)
        line += (f": about {seconds(c['transcription_s'])}, one at a time, at real-time factor {m['rtf']:.3f} plus "
                 f"{m['load_s']:.1f} s to load the model each (measured now: the base model loaded, then "
                 f"{m['sample']:.0f} {runs[0].id.split('-')[1]} records, {m['sample_audio_s']:.1f} s "
                 f"of audio, transcribed in {m['sample_s']:.1f} s on {m['device']} with the study's transcribe "
                 "options; every system has the base's architecture)")
    est.lines.append(line)
    c["total_s"] = c["taskvec_s"] + c["merge_s"] + c["transcription_s"]
    est.lines.append(
        f"# time: about {seconds(c['total_s'])} (task vectors {seconds(c['taskvec_s'])} at {IO_RATE / 1e9:.0f} GB/s, "
        f"merges {seconds(c['merge_s'])}, transcriptions {seconds(c['transcription_s'])}); not counted: svd-inspect, "
        f"scoring, and the start of each of the {len(steps)} steps (a Python process)")
    return est
