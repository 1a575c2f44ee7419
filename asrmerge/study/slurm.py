"""``asrmerge study --emit slurm DIR``: the study as Slurm batch jobs, chained by ``afterok`` dependencies.

Stage ``dev`` (what the user emits, then ``bash DIR/submit.sh``): a job for the task vectors; one per merge
command (``--steps merge-ALGO``); a job array per transcription of a swept lambda's model on dev, and per
system whose test transcriptions do not depend on the lambda choice (zero-shot, joint, merges without a
sweep, each fine-tune on its own domain), each task running the step's ``transcribe`` with ``--shard auto
--resume`` into ``shards/``; then the **choose** job. It runs ``asrmerge study --emit slurm DIR/test
--stage test``: the study itself, which joins the dev shards, scores them, chooses lambda, removes the
other models and runs the beta sweep, and stops before the test transcriptions that are not done. Those
(stage ``test``) become one job array per system in ``DIR/test``, followed by the **score** job, a plain
``asrmerge study`` run that joins every shard and writes the scores, comparisons and report. The jobs run
the study's own code with the options in ``DIR/study.json``, so a cluster run and a local one give the
same files; everything is kept when done, so running ``submit.sh`` (or the study) again continues.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from asrmerge.errors import AsrmergeError, UsageError
from asrmerge.study import shards
from asrmerge.study.config import Options, as_config
from asrmerge.study.inputs import check_checkpoints, check_data, check_output
from asrmerge.study.plan import Planner, Step
from asrmerge.study.steps import Paused, Runner

Say = Callable[[str], None]
SCHEDULERS = ("slurm",)
STAGES = ("dev", "test")
MARK = "asrmerge study --emit slurm"  # jobs.json's "written-by": DIR is ours to replace


@dataclass
class Job:
    """One batch script.

    Attributes:
        name: ``asrmerge-NAME`` in Slurm, ``NAME.sbatch`` in DIR.
        about: what it does (the script's header).
        lines: its commands, run from the study folder.
        after: the names of the jobs it waits for (``afterok``).
        array: its number of tasks (0: not an array).
        steps: the study steps it does.
    """

    name: str
    about: str
    lines: list[str]
    after: list[str] = field(default_factory=list)
    array: int = 0
    steps: list[str] = field(default_factory=list)


def check_emit(scheduler: str, dest: str, study: str) -> Path:
    """``--emit SCHEDULER DIR`` checked before any work: a known scheduler, a new or empty folder or one
    written by an earlier emit, apart from the study folder.

    Raises:
        UsageError: naming the problem.
    """
    if scheduler not in SCHEDULERS:
        raise UsageError(f"{scheduler!r} is not a scheduler asrmerge writes jobs for", subject="--emit",
                         hint="use --emit slurm DIR")
    d = Path(os.path.abspath(dest))
    s = Path(os.path.abspath(study))
    if d == s or s in d.parents or d in s.parents:
        raise UsageError(f"{dest} and the study folder {study} are inside each other", subject="--emit",
                         hint="write the jobs to a folder of their own, e.g. beside the study")
    if d.exists() and not d.is_dir():
        raise UsageError("is a file, not a folder", subject=f"--emit slurm {dest}", hint="give a new folder")
    if d.is_dir() and any(d.iterdir()):
        try:
            ours = json.loads((d / "jobs.json").read_text()).get("written-by") == MARK
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise UsageError("holds files that asrmerge study --emit did not write", subject=f"--emit slurm {dest}",
                             hint="give a new or empty folder (an earlier emit's folder is replaced)")
    return d


def emit(opts: Options, dest: Path, *, stage: str = "dev", sbatch: list[str] | None = None, array_size: int = 4,
         python: str = sys.executable, say: Say = lambda _: None) -> str:
    """Write the jobs of ``stage`` to ``dest`` (checked by :func:`check_emit`) and return a summary.

    ``dev`` checks the inputs as a run would, makes the study folder (and ``steps/``) and writes nothing
    else to it. ``test`` runs the study here up to its test transcriptions (see the module's text).

    Raises:
        UsageError, InputError: bad options or inputs (nothing written).
        AsrmergeError: a step of the study failed (``test``).
    """
    if stage not in STAGES:
        raise UsageError(f"{stage!r} is not one of {', '.join(STAGES)}", subject="--stage")
    if array_size < 1:
        raise UsageError(f"{array_size} is not a positive number", subject="--array-size")
    root = Path(opts.output)
    config = dest / "study.json"
    if stage == "dev":
        logs = dest / "logs"
        check_output(opts.output)
        data = check_data(opts)
        check_checkpoints(opts)
        (root / "steps").mkdir(parents=True, exist_ok=True)  # what a run makes first; the keys need it
        pl = Planner(opts, data, str(root.resolve()))
        jobs = _dev_jobs(pl, Runner(root, 1, say), array_size, config)
        choose = [f"asrmerge study --config {q(config)} --emit slurm {q(dest / 'test')} --stage test "
                  f"--array-size {array_size}" + "".join(f" --sbatch={q(o)}" for o in sbatch or []),
                  f"bash {q(dest / 'test' / 'submit.sh')}"]
        jobs.append(Job("choose", "joins the dev shards, scores them, chooses lambda per algorithm (the other "
                        "models removed), runs the beta sweep and svd-inspect, then writes the test-set jobs "
                        f"to {dest / 'test'} and submits them", choose, after=[j.name for j in jobs]))
    else:
        logs = dest.parent / "logs"
        from asrmerge.study.runner import study

        def later(s: Step) -> bool:
            return s.verb == "transcribe" and not s.outputs[0].startswith("hyp/dev/")

        try:
            study(opts, say=say, pause=later)
            held: list[tuple[Step, str]] = []
        except Paused as p:
            held = p.steps
        jobs = _arrays(held, array_size)
        jobs.append(Job("score", "joins every shard, scores every system, compares the best merge and writes "
                        f"the report ({opts.output}/results.md)", [f"asrmerge study --config {q(config)}"],
                        after=[j.name for j in jobs]))
    _write(dest, stage, jobs, opts, sbatch or [], logs, python)
    arrays = [j for j in jobs if j.array]
    n, a = len(jobs), len(arrays)
    return (f"wrote {n} Slurm job{'s' * (n != 1)} ({a} transcription array{'s' * (a != 1)} of {array_size} tasks) "
            f"to {dest}; "
            f"submit them with: bash {q(dest / 'submit.sh')}")


def q(path: str | Path) -> str:
    return shlex.quote(str(path))


def _study(config: Path, ids: list[str]) -> str:
    return f"asrmerge study --config {q(config)} --steps {','.join(ids)}"


def _dev_jobs(pl: Planner, run: Runner, size: int, config: Path) -> list[Job]:
    """The jobs up to the lambda choice, without those whose steps are all done."""
    def done(step: Step) -> bool:
        return run.state(step, run.register(step)) == "kept"

    jobs: list[Job] = []
    tvs = pl.taskvecs()
    if not all([done(s) for s in tvs]):
        jobs.append(Job("taskvec", "makes the task vectors", [_study(config, [s.id for s in tvs])],
                        steps=[s.id for s in tvs]))
    merges = {a: pl.merge(a) for a in pl.opts.algos}
    made: dict[str, str] = {}  # a model's folder -> the merge job that makes it
    for algo, (step, models) in merges.items():
        if not done(step):
            jobs.append(Job(f"merge-{algo}", f"merges with {algo}" + " over its lambda grid" * (len(models) > 1),
                            [_study(config, [step.id])], after=[j.name for j in jobs[:1] if j.name == "taskvec"],
                            steps=[step.id]))
            made.update({m: f"merge-{algo}" for m in models.values()})
    dev = [r for algo, (_, models) in merges.items() for r in pl.dev_runs(algo, models)[0]]
    early: list[Step] = []
    systems = pl.references() + [(a, next(iter(m.values()))) for a, (_, m) in merges.items() if len(m) == 1]
    for name, model in systems:
        early += pl.evaluation(name, model)[0]
    early += [pl.own_domain(n)[0] for n in pl.opts.finetunes]
    todo = [(s, run.register(s)) for s in [*dev, *early]]
    for job in _arrays([(s, k) for s, k in todo if run.state(s, k) != "kept"], size):
        job.after = sorted({made[m] for m in _models(job, todo) if m in made})
        jobs.append(job)
    return jobs


def _models(job: Job, todo: list[tuple[Step, str]]) -> list[str]:
    return [s.args[1] for s, _ in todo if s.id in job.steps]


def _system(step: Step) -> str:
    """The array a transcription goes to: ``dev-TAG``, ``own-NAME`` or ``test-SYSTEM`` (its test and extra sets)."""
    folder, stem = os.path.dirname(step.outputs[0]), Path(step.outputs[0]).stem
    return {"hyp/dev": f"dev-{stem}", "hyp/own": f"own-{stem}"}.get(folder, f"test-{stem}")


def _arrays(steps: list[tuple[Step, str]], size: int) -> list[Job]:
    """One job array per system: each task transcribes its shard of each of the system's transcriptions."""
    groups: dict[str, list[tuple[Step, str]]] = {}
    for s, key in steps:
        groups.setdefault(_system(s), []).append((s, key))
    jobs = []
    for name, members in groups.items():
        lines = ['K=${SLURM_ARRAY_TASK_ID:?"not a Slurm array task: submit it with submit.sh"}',
                 "N=${SLURM_ARRAY_TASK_COUNT:?}"]
        for s, key in members:
            words = [shlex.quote(w) for w in shards.shard_args(s, key, "@SHARD@")]
            lines += [f"mkdir -p {q(shards.folder(s, key))}",
                      "asrmerge " + " ".join(words).replace("@SHARD@", '"$K-of-$N.jsonl"')]
        sets = ", ".join(os.path.dirname(s.outputs[0]).removeprefix("hyp/") for s, _ in members)
        jobs.append(Job(name, f"transcribes {Path(members[0][0].outputs[0]).stem} ({sets}), shard K of N per "
                        "task", lines, array=size, steps=[s.id for s, _ in members]))
    return jobs


def _script(job: Job, opts: Options, sbatch: list[str], logs: Path, python: str) -> str:
    out = f"{logs}/%x-%A_%a.out" if job.array else f"{logs}/%x-%j.out"
    head = ["#!/usr/bin/env bash", f"#SBATCH --job-name=asrmerge-{job.name}", f"#SBATCH --output={out}"]
    head += [f"#SBATCH --array=1-{job.array}"] * bool(job.array) + [f"#SBATCH {o}" for o in sbatch]
    head += ["#", f"# asrmerge study {opts.output}, job {job.name}: {job.about}.",
             f"# Written by {MARK}; submit.sh submits it after the jobs it needs ({', '.join(job.after) or 'none'}).",
             "# Every step is kept once done: after a failure, run submit.sh again.",
             "set -euo pipefail",
             f'asrmerge() {{ "${{ASRMERGE_PYTHON:-{python}}}" -m asrmerge "$@"; }}',
             f"cd {q(opts.output)}"]
    return "\n".join([*head, *job.lines]) + "\n"


def _submit(jobs: list[Job], dest: Path, stage: str, opts: Options) -> str:
    var = {j.name: f"j{i}" for i, j in enumerate(jobs, 1)}
    lines = ["#!/usr/bin/env bash",
             f"# Submits the {stage}-stage jobs of asrmerge study {opts.output} to Slurm, each after the jobs it",
             "# needs (--dependency=afterok; a failed job cancels those after it), and prints their names and ids.",
             f"# Run: bash {q(dest / 'submit.sh')}   (again after a failure: finished work is kept)",
             "set -euo pipefail"]
    for j in jobs:
        dep = (" --kill-on-invalid-dep=yes --dependency=afterok:" + ":".join(f"${var[a]}" for a in j.after)
               if j.after else "")
        v = var[j.name]
        lines += [f"{v}=$(sbatch --parsable{dep} {q(dest / (j.name + '.sbatch'))})", f"{v}=${{{v}%%;*}}",
                  f'echo "asrmerge-{j.name} ${v}"']
    return "\n".join(lines) + "\n"


def _write(dest: Path, stage: str, jobs: list[Job], opts: Options, sbatch: list[str], logs: Path,
           python: str) -> None:
    """DIR, all at once: written in a temporary folder beside it, renamed into place (an earlier emit's
    folder replaced, its logs kept)."""
    files = {f"{j.name}.sbatch": _script(j, opts, sbatch, logs, python) for j in jobs}
    files["submit.sh"] = _submit(jobs, dest, stage, opts)
    files["study.json"] = json.dumps(as_config(opts), indent=1) + "\n"
    files["jobs.json"] = json.dumps({"written-by": MARK, "study": opts.output, "stage": stage,
                                     "jobs": [{"name": j.name, "script": f"{j.name}.sbatch", "array": j.array,
                                               "after": j.after, "steps": j.steps} for j in jobs]}, indent=1) + "\n"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.emit-"))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        if logs.parent == dest:
            if (dest / "logs").is_dir():
                os.rename(dest / "logs", tmp / "logs")
            else:
                (tmp / "logs").mkdir()
        else:
            logs.mkdir(exist_ok=True)
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
            os.rename(dest, old / "x")
            os.rename(tmp, dest)
            shutil.rmtree(old)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_steps(opts: Options, ids: list[str], say: Say = lambda _: None) -> str:
    """Run only the study's steps ``ids`` (``--steps``), the steps before them being done.

    Raises:
        AsrmergeError: a step before them is not done, or no step has such an id.
    """
    from asrmerge.study.runner import study

    wanted = set(ids)
    try:
        study(opts, say=say, pause=lambda s: s.id not in wanted)
        stopped, seen = None, None
    except Paused as p:
        stopped, seen = p.steps[0][0].id, set(p.seen)
    for sid in ids:
        if seen is not None and sid not in seen or not (Path(opts.output) / "steps" / f"{sid}.json").is_file():
            why = f"the study stopped before it, at {stopped} (not done yet)" if stopped else "no step has this id"
            raise AsrmergeError(why, subject=f"--steps {sid}",
                                hint="run the jobs in their order (bash DIR/submit.sh), or the whole study")
    return f"done: {', '.join(ids)}"
