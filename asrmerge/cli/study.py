"""``asrmerge study``: the paper's experiment on the user's fine-tunes and test sets, one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from asrmerge.cli import common

HELP = """Merge fine-tunes with every algorithm and compare them with zero-shot, each fine-tune and a joint
fine-tune on the user's dev and test sets: the paper's experiment, one resumable command.

Each FINETUNE is NAME=CHECKPOINT, NAME being the "domain" its records carry in the manifests; test
domains without a fine-tune are out-of-domain. Lambda is chosen per algorithm on the fine-tunes' dev
records (one merge per sweep), and the test records and --extra sets are scored at it. Every step is an
asrmerge command (taskvec, merge, svd-inspect, transcribe, wer) run in DIR and listed in DIR/commands.sh;
results.md, table.json, per-domain.jsonl, chart.png and svd-summary.json go to DIR.

Run it again after a failure or kill -9: finished steps are kept (stderr says "kept"), the rest done.

Examples:

\b
  asrmerge study --base base/ news=ft-news/ kids=ft-kids/ --joint ft-all/ --dev dev.jsonl --test test.jsonl \\
      --extra english=en.jsonl --algos ta,tsvm,boosted-tsvm --lam 0.6,1.0,1.4 --beta 0.3,1.0 -o study/
  asrmerge study ... --algos iso-c --variant iso-c-full=iso-c:rank_mode=full   # both rules side by side
  asrmerge study --config study.toml                 # the same options in a file; flags win
  asrmerge study --config study.toml --dry-run       # the commands it would run, their disk and time
  asrmerge study --config study.toml --emit slurm jobs/ --sbatch=--partition=gpu --sbatch=--gres=gpu:1
  bash jobs/submit.sh                                # the study as chained Slurm jobs (man asrmerge-study, HPC)
"""


def _algos(incomplete: str) -> list[str]:
    from asrmerge.merge.registry import names

    return [n for n in names() if n.startswith(incomplete.rsplit(",", 1)[-1])]


def study(
    finetunes: Annotated[list[str] | None, typer.Argument(metavar="FINETUNE", show_default=False,
                         help="NAME=CHECKPOINT: a fine-tune and the domain it was tuned on.")] = None,
    base: Annotated[str | None, typer.Option("--base", metavar="BASE", help="The pre-trained model.")] = None,
    joint: Annotated[str | None, typer.Option("--joint", metavar="CHECKPOINT",
                     help="The fine-tune on every domain at once (the paper's Full-FT).")] = None,
    zero_shot: Annotated[bool | None, typer.Option("--zero-shot/--no-zero-shot",
                         help="Evaluate the base model too (default: yes).", show_default=False)] = None,
    dev: Annotated[Path | None, typer.Option("--dev", metavar="FILE",
                   help="Manifest of the dev records (with \"domain\").")] = None,
    test: Annotated[Path | None, typer.Option("--test", metavar="FILE",
                    help="Manifest of the test records (with \"domain\").")] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", metavar="FILE",
                        help="One manifest instead, each record with \"set\": \"dev\" or \"test\".")] = None,
    extra: Annotated[list[str] | None, typer.Option("--extra", metavar="NAME=FILE",
                     help="An extra evaluation set (repeat), each record decoded in its \"language\".")] = None,
    algos: Annotated[str | None, typer.Option("--algos", metavar="A,B,...", autocompletion=_algos,
                     help="Merge algorithms (default: all of merge --list).")] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", metavar="NAME=ALGO:KEY=VALUE",
                       help="An algorithm with fixed parameters, a system of its own (repeat), e.g. "
                       "iso-c-full=iso-c:rank_mode=full.")] = None,
    lam: Annotated[list[str] | None, typer.Option("--lam", metavar="[ALGO:]GRID",
                   help="Lambda values to choose from on dev, for all or one algorithm (repeat).")] = None,
    beta: Annotated[str | None, typer.Option("--beta", metavar="GRID",
                    help="BoostedTSV-M beta sweep at its chosen lambda.")] = None,
    language: Annotated[str | None, typer.Option("--language", metavar="LANG",
                        help="Language of the dev and test records (default: detected).")] = None,
    chunk_length: Annotated[int | None, typer.Option("--chunk-length", metavar="SECONDS",
                            help="transcribe --chunk-length.", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", metavar="N", help="transcribe --batch-size.",
                          show_default=False)] = None,
    beam_size: Annotated[int | None, typer.Option("--beam-size", metavar="N", help="transcribe --beam-size.",
                         show_default=False)] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", metavar="N",
                              help="transcribe --max-new-tokens.", show_default=False)] = None,
    normalizer: Annotated[str | None, typer.Option("--normalizer", metavar="whisper-en|basic|none",
                          help="wer --normalizer (default: basic).")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", metavar="N",
                    help="Transcriptions run side by side (default 1), the cores shared among them.")] = None,
    device: Annotated[str | None, typer.Option("--device", metavar="DEV",
                      help="Device of merge, svd-inspect and transcribe (default: theirs).")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", metavar="DIR",
                      help="The study folder: a new one, or an earlier study's to resume it.")] = None,
    config: Annotated[Path | None, typer.Option("--config", metavar="FILE",
                      help="Options in a TOML (or .json) file; flags win.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                       help="Print the plan (commands, counts, disk and time); run nothing.")] = False,
    emit: Annotated[tuple[str, str] | None, typer.Option("--emit", metavar="slurm DIR", show_default=False,
                    help="Write Slurm batch jobs to DIR instead of running; then bash DIR/submit.sh.")] = None,
    sbatch: Annotated[list[str] | None, typer.Option("--sbatch", metavar="OPTION",
                      help="With --emit: an sbatch option for every job, e.g. --sbatch=--partition=gpu (repeat).")]
    = None,
    array_size: Annotated[int, typer.Option("--array-size", metavar="N",
                          help="With --emit: tasks per transcription job array.")] = 4,
    stage: Annotated[str, typer.Option("--stage", metavar="dev|test",
                     help="With --emit: dev, the jobs up to the lambda choice; test (the choose job's): run the "
                          "study to its test transcriptions here, then write their jobs.")] = "dev",
    steps: Annotated[str | None, typer.Option("--steps", metavar="ID,...",
                     help="Run only these steps (names in DIR/steps/), those before them done (Slurm jobs).")]
    = None,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    def job() -> str:
        from asrmerge.errors import UsageError
        from asrmerge.study import config as cf
        from asrmerge.study import slurm
        from asrmerge.study.runner import study as run_study

        if emit is None and (sbatch or array_size != 4 or stage != "dev"):
            raise UsageError("go with --emit slurm DIR", subject="--sbatch, --array-size, --stage")
        if (emit or steps) and dry_run:
            raise UsageError("--dry-run runs nothing already", subject="--emit" if emit else "--steps",
                             hint="drop --dry-run")
        if emit and steps:
            raise UsageError("--emit and --steps exclude each other", subject="--steps")

        flags: dict[str, Any] = {
            "finetunes": finetunes or [], "base": base, "joint": joint, "zero-shot": zero_shot, "dev": dev,
            "test": test, "manifest": manifest, "extra": extra or [], "algos": algos, "variant": variant or None,
            "lam": lam or None,
            "beta": beta, "language": language, "chunk-length": chunk_length, "batch-size": batch_size,
            "beam-size": beam_size, "max-new-tokens": max_new_tokens, "normalizer": normalizer, "jobs": jobs,
            "device": device, "output": output}
        opts = cf.build(flags, cf.read_config(str(config)) if config else {})
        say = (lambda _: None) if quiet else (lambda m: common.note(f"asrmerge study: {m}"))
        if emit:
            dest = slurm.check_emit(emit[0], emit[1], opts.output)
            return slurm.emit(opts, dest, stage=stage, sbatch=sbatch, array_size=array_size, say=say)
        if steps:
            return slurm.run_steps(opts, [s for s in steps.split(",") if s], say=say)
        return run_study(opts, dry_run=dry_run, say=say).text

    text = common.call("study", debug, job)
    typer.echo(text.rstrip("\n"))
