"""The study end to end: check, plan, run (or show the plan), choose lambda on dev, evaluate, report.

Phases, each a few waves of independent steps: task vectors; one merge per algorithm (a lambda sweep is
one command); dev transcriptions and scores of every swept lambda; lambda chosen per algorithm on the
fine-tunes' dev domains (mean WER), the other lambdas' models removed; the BoostedTSV-M beta sweep at
its chosen lambda; svd-inspect; every system on the test records and the extra sets, each fine-tune on its
own domain; scores; MAPSSWE and bootstrap of the best merge against the joint fine-tune and the next
best merge; the report. Library code: progress goes to ``say``, nothing is printed.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asrmerge.study.config import Options
from asrmerge.study.inputs import Data, check_checkpoints, check_data, check_output
from asrmerge.study.plan import Planner, Step, fmt
from asrmerge.study.steps import Runner

Say = Callable[[str], None]


@dataclass
class Outcome:
    """What a study did: the plan (dry run) or the report, and the counts of steps kept and run."""

    text: str
    kept: int = 0
    ran: int = 0
    counts: dict[str, float] = field(default_factory=dict)


def _matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def dev_wer(root: Path, score: str, domains: list[str]) -> float:
    """Mean WER over ``domains`` in a ``wer --by domain`` document."""
    groups = json.loads((root / score).read_text())["groups"]
    return sum(groups[d]["wer"] for d in domains) / len(domains)


def study(opts: Options, *, dry_run: bool = False, say: Say = lambda _: None,
          pause: Callable[[Step], bool] | None = None) -> Outcome:
    """Run (or, with ``dry_run``, plan) the study that ``opts`` describes.

    ``pause``: steps not to run (``Runner``'s); the study stops at the first wave that holds one (Slurm jobs).

    Raises:
        Paused: with ``pause``, the steps held back.
        UsageError, InputError: bad options or inputs, before anything is written.
        AsrmergeError: a step failed (the steps finished before it are kept for the next run).
    """
    root = Path(opts.output)
    resumed = check_output(opts.output)
    data = check_data(opts)
    check_checkpoints(opts)
    cores = os.cpu_count() or 1
    pl = Planner(opts, data, str(root.resolve()) if root.exists() else os.path.abspath(opts.output),
                 threads=max(1, cores // opts.jobs) if opts.jobs > 1 else None)
    if dry_run:
        return _dry_run(pl, data)
    root.mkdir(parents=True, exist_ok=True)
    (root / "steps").mkdir(exist_ok=True)
    say(f"{'resume the' if resumed else 'new'} study in {opts.output}: {len(opts.finetunes)} fine-tunes, "
        f"{len(opts.algos)} algorithms, {len(data.test)} test domains ({len(data.ood)} out-of-domain)")
    t_start = time.perf_counter()
    run = Runner(root, opts.jobs, say, pause)
    run.run(pl.taskvecs())
    merges: dict[str, tuple[Step, dict[float | None, str]]] = {a: pl.merge(a) for a in opts.algos}
    run.run([s for s, _ in merges.values()])
    dev_runs: list[Step] = []
    dev_scores: list[Step] = []
    dev_files: dict[str, dict[float, str]] = {}
    for algo, (_, models) in merges.items():
        r, s, swept_files = pl.dev_runs(algo, models)
        dev_runs += r
        dev_scores += s
        dev_files[algo] = swept_files
    run.run(dev_runs)
    run.run(dev_scores)

    ids = list(opts.finetunes)
    systems: dict[str, dict[str, Any]] = {}
    for algo, (step, models) in merges.items():
        swept = dev_files[algo]
        dev = {fmt(v): dev_wer(root, f, ids) for v, f in swept.items()}
        lam: float | None = min(swept, key=lambda v: dev[fmt(v)]) if swept else next(iter(models))
        if swept:
            assert lam is not None
            if not (root / models[lam]).exists():  # removed after an earlier choice (the dev scores changed)
                say(f"{algo}: lambda {fmt(lam)} is chosen now, but its model was removed: merge again")
                run.redo(step)
            run.prune(step, [m for v, m in models.items() if v != lam])
        systems[algo] = {"kind": "merge", "model": models[lam], "lam": lam, "dev": dev}
        if swept and lam is not None:
            say(f"{algo}: lambda {fmt(lam)} chosen on dev ("
                + ", ".join(f"{k}: {100 * v:.2f}" for k, v in dev.items()) + ")")
    later: list[Step] = []
    if opts.betas:
        step, models_b = pl.beta_sweep(systems["boosted-tsvm"]["lam"])
        later.append(step)
        for b, m in models_b.items():
            systems[f"boosted-tsvm beta={fmt(b)}"] = {"kind": "beta", "model": m, "beta": b,
                                                      "lam": systems["boosted-tsvm"]["lam"]}
    run.run(later)
    inspected = systems.get("boosted-tsvm", systems[opts.algos[0]])["model"]
    plot = _matplotlib()
    run.run(pl.inspect(inspected, plot))

    evals: dict[str, str] = dict(pl.references())
    evals.update({k: v["model"] for k, v in systems.items()})
    runs: list[Step] = []
    scores: list[Step] = []
    files: dict[str, dict[str, str]] = {}
    for name, model in evals.items():
        r, s, f = pl.evaluation(name.replace(" ", "-").replace("=", ""), model)
        runs += r
        scores += s
        files[name] = f
    own: dict[str, str] = {}
    for name in ids:
        r1, s1, f1 = pl.own_domain(name)
        runs.append(r1)
        scores.append(s1)
        own[name] = f1
    run.run(runs)
    run.run(scores)

    from asrmerge.study import report

    table = report.Table(root, ids, data.ood, list(opts.extras), data.extra_languages, files, own, systems)
    def total(algo: str) -> float:
        value = table.rows[algo]["all"]
        return value if value is not None else float("inf")

    ranked = sorted(opts.algos, key=total)
    compares: dict[str, Step] = {}
    best = ranked[0]
    if pl.joint:
        compares["joint"] = pl.compare("compare-best-vs-joint", f"hyp/test/{best}.jsonl", "hyp/test/joint.jsonl",
                                       "compare/best-vs-joint.json")
    same, nxt = _next_distinct(root, best, ranked[1:])
    if nxt is not None:
        compares[nxt] = pl.compare("compare-best-vs-next", f"hyp/test/{best}.jsonl",
                                   f"hyp/test/{nxt}.jsonl", "compare/best-vs-next.json")
    run.run(list(compares.values()))
    docs = {k: json.loads((root / s.outputs[0]).read_text()) for k, s in compares.items()}

    (root / "commands.sh").write_text(pl.script(run.ran))
    meta = {"machine": f"{platform.machine()}, {cores} CPU cores, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M"), "wall_s": round(time.perf_counter() - t_start, 1),
            "step_s": {k: round(v, 1) for k, v in run.seconds.items()}, "kept": run.counts["kept"],
            "ran": run.counts["ran"], "base": pl.base, "finetunes": dict(pl.fts), "joint": pl.joint,
            "normalizer": opts.normalizer, "transcribe": {"language": opts.language, **opts.transcribe},
            "best": best, "same_as_best": same, "plot": plot}
    text = report.write(root, table, best, docs, meta)
    joined = f", {run.counts['joined']} joined from shard jobs" if run.counts["joined"] else ""
    say(f"done: {run.counts['ran']} steps run, {run.counts['kept']} kept{joined}; results in {opts.output}/results.md")
    return Outcome(text, run.counts["kept"], run.counts["ran"])


def _hypotheses(path: Path) -> dict[str, str]:
    """id -> hypothesis of a transcript (the records also name the model, which differs between systems)."""
    from asrmerge.io.jsonl import read_records

    return {rec["id"]: rec.get("hyp", "") for _, rec in read_records(path)}


def _next_distinct(root: Path, best: str, rest: list[str]) -> tuple[list[str], str | None]:
    """(the systems ranked after ``best`` whose test transcripts equal its own, word for word, the first that
    differs): a significance test of identical outputs says nothing, so the report compares the next distinct one."""
    mine = _hypotheses(root / "hyp" / "test" / f"{best}.jsonl")
    same: list[str] = []
    for name in rest:
        if _hypotheses(root / "hyp" / "test" / f"{name}.jsonl") != mine:
            return same, name
        same.append(name)
    return same, None


def _dry_run(pl: Planner, data: Data) -> Outcome:
    """The plan: every command (those after the lambda choice with ``{chosen}``), merges and transcriptions."""
    o = pl.opts
    steps = pl.taskvecs()
    merges = {a: pl.merge(a) for a in o.algos}
    steps += [s for s, _ in merges.values()]
    dev = []
    for algo, (_, models) in merges.items():
        r, s, _ = pl.dev_runs(algo, models)
        dev += r
        steps += r + s
    chosen = {a: (m[next(iter(m))] if len(m) == 1 else f"merged/{a}-lam{{chosen}}/") for a, (_, m) in merges.items()}
    if o.betas:
        boosted = merges["boosted-tsvm"][1]
        beta, _ = pl.beta_sweep(next(iter(boosted)) if len(boosted) == 1 else None)
        if len(boosted) > 1:
            beta.args[beta.args.index("-o"):beta.args.index("-o")] = ["-p", "lam={chosen}"]
        steps.append(beta)
    steps += pl.inspect(chosen.get("boosted-tsvm", chosen[o.algos[0]]), _matplotlib())
    systems = pl.references()
    systems += list(chosen.items()) + [(f"boosted-tsvm-beta{fmt(b)}", f"merged/boosted-tsvm-beta{fmt(b)}/")
                                       for b in o.betas]
    evals = []
    for name, model in systems:
        assert model is not None
        r, s, _ = pl.evaluation(name, model)
        evals += r
        steps += r + s
    for name in o.finetunes:
        r1, s1, _ = pl.own_domain(name)
        evals.append(r1)
        steps += [r1, s1]
    n_merges = sum(len(m) for _, m in merges.values()) + len(o.betas)
    per_dev = sum(data.dev[d] for d in o.finetunes)
    per_test = sum(data.test.values())
    lines = ["# asrmerge study plan (dry run): the commands, from the study folder; {chosen} is the lambda "
             "chosen on dev", *[pl.show(s) for s in steps], "",
             f"# {len(merges) + bool(o.betas)} merge commands writing {n_merges} models; "
             f"{len(dev) + len(evals)} transcriptions ({len(dev)} on dev, {per_dev} utterances each; "
             f"{len(evals)} on the test and extra sets, {per_test} test utterances per system); "
             f"{len(pl.fts)} task vectors"]
    from asrmerge.study.estimate import estimate

    est = estimate(pl, steps)
    return Outcome("\n".join([*lines, *est.lines]), counts={"merges": n_merges, "transcriptions": len(dev) + len(evals),
                                                            "steps": len(steps), **est.counts})
