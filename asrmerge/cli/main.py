"""The ``asrmerge`` Typer app: one subcommand per module, and ``main()`` for the console script.

``main()`` restores default SIGPIPE handling (``| head`` ends quietly) and turns SIGTERM into a clean
exit, so an output being written is removed rather than left half-written.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from asrmerge import __version__
from asrmerge.cli import convert, merge, study, svd_inspect, taskvec, transcribe, wer

HELP = f"""asrmerge {__version__}: merge Whisper checkpoints fine-tuned on many domains into one model.

Small tools over safetensors files and JSON lines, composable in shell pipelines and batch jobs:

\b
  asrmerge convert packaged:base -o base/            # CTranslate2/openai -> Hugging Face
  asrmerge taskvec base/ ft-news/ -o news.st         # task vector = fine-tuned - base
  asrmerge merge --algo boosted-tsvm --base base/ news.st kids.st -o merged/
  asrmerge svd-inspect news.st kids.st --summary     # spectra, interference, rank collapse
  asrmerge transcribe merged/ dev.jsonl > hyp.jsonl  # Whisper inference over a JSONL manifest
  asrmerge wer --by domain hyp.jsonl                 # WER per domain, macro and micro averages
  asrmerge wer --compare a.jsonl b.jsonl             # which system is better (MAPSSWE, bootstrap)
  asrmerge study --config study.toml -o study/       # the paper's experiment on your fine-tunes

Exit codes: 0 ok, 1 failure, 2 usage error, 3 unusable input (missing, damaged, incompatible,
non-finite), 130 interrupted. See man asrmerge and man asrmerge-COMMAND.
"""

app = typer.Typer(
    name="asrmerge",
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

app.command("convert", help=convert.HELP, no_args_is_help=True)(convert.convert)
app.command("taskvec", help=taskvec.HELP, no_args_is_help=True)(taskvec.taskvec)
app.command("merge", help=merge.HELP, no_args_is_help=True)(merge.merge)
app.command("svd-inspect", help=svd_inspect.HELP, no_args_is_help=True)(svd_inspect.svd_inspect)
app.command("transcribe", help=transcribe.HELP, no_args_is_help=True)(transcribe.transcribe)
app.command("wer", help=wer.HELP)(wer.wer)
app.command("study", help=study.HELP, no_args_is_help=True)(study.study)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asrmerge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """asrmerge: merge Whisper checkpoints."""


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point of the ``asrmerge`` console script and ``python -m asrmerge``."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="asrmerge")


if __name__ == "__main__":
    main()
    sys.exit(0)
