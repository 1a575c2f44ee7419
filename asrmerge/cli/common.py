"""What every command shares: options, error reporting, progress and output checks.

Messages go to stderr through rich (which honours ``NO_COLOR``); stdout carries data only. Errors are one
line, ``asrmerge CMD: error: SUBJECT: MESSAGE; HINT``, with the exit codes of :mod:`asrmerge.errors`;
``--debug`` (or ``ASRMERGE_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from asrmerge.errors import EXIT_FAILURE, EXIT_INTERRUPTED, AsrmergeError

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


class Dtype(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class ComputeDtype(str, Enum):
    fp32 = "fp32"
    fp64 = "fp64"


Output = Annotated[str, typer.Option("-o", "--output", metavar="PATH",
                                     help="'-' (stdout, the default), FILE.safetensors, or DIR/ (a Hugging Face folder).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar and no notes on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the Python traceback of an error.")]
DtypeOpt = Annotated[Dtype | None, typer.Option("--dtype", help="Output dtype of float tensors.")]
ComputeOpt = Annotated[ComputeDtype, typer.Option("--compute-dtype", help="Arithmetic dtype (inputs are upcast).")]
ShardSize = Annotated[str | None, typer.Option("--shard-size", metavar="SIZE",
                                               help="Shard a folder output's weights (e.g. 2GB, 500MiB).")]


_console: Console | None = None


def console() -> Console:
    """The stderr console (created on first use, so ``--help`` never imports rich)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, highlight=False)
    return _console


def note(message: str, quiet: bool = False) -> None:
    """A one-line informational message on stderr, unless ``--quiet``."""
    if not quiet:
        console().print(message, markup=False, soft_wrap=True)


def warn(cmd: str, message: str) -> None:
    console().print(f"asrmerge {cmd}: warning: {message}", markup=False, style="yellow", soft_wrap=True)


def command_line() -> str:
    """The command line as typed, for provenance metadata."""
    return shlex.join(["asrmerge", *sys.argv[1:]])


def debug_on(flag: bool) -> bool:
    return flag or os.environ.get("ASRMERGE_DEBUG", "") not in ("", "0")


def fail(cmd: str, err: AsrmergeError) -> typer.Exit:
    """Print ``err`` as one line per problem and return the ``typer.Exit`` to raise."""
    out = console()
    for line in [str(err), *err.more]:
        out.print(f"asrmerge {cmd}: error: {line}", markup=False, style="red", soft_wrap=True)
    return typer.Exit(err.exit_code)


def run(cmd: str, debug: bool, fn: Callable[[], T]) -> T:
    """Call library code, mapping its errors to one-line messages and exit codes."""
    try:
        return fn()
    except AsrmergeError as e:
        if debug_on(debug):
            raise
        raise fail(cmd, e) from None
    except KeyboardInterrupt:
        if debug_on(debug):
            raise
        console().print(f"asrmerge {cmd}: interrupted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except MemoryError:
        if debug_on(debug):
            raise
        raise fail(cmd, AsrmergeError("out of memory", hint="free memory, or use a machine with more")) from None
    except OSError as e:
        if debug_on(debug):
            raise
        raise fail(cmd, AsrmergeError(e.strerror or str(e), subject=e.filename)) from None
    except Exception as e:  # a bug: say so in one line, with the way to see more
        if debug_on(debug):
            raise
        console().print(f"asrmerge {cmd}: internal error: {type(e).__name__}: {e} (rerun with --debug for the "
                        "traceback, and please report it)", markup=False, style="red", soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None


class RichProgress:
    """A :class:`asrmerge.progress.Progress` drawn on stderr with rich (only on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), TextColumn("{task.fields[item]}"), console=console(), transient=True)
        self._task: Any = None

    def start(self, total: int, description: str) -> None:
        if self._task is None:
            self._p.start()
        else:
            self._p.remove_task(self._task)
        self._task = self._p.add_task(description, total=total, item="")

    def advance(self, item: str = "", amount: int = 1) -> None:
        if self._task is not None:
            self._p.update(self._task, advance=amount, item=item[-60:])

    def stop(self) -> None:
        if self._task is not None:
            self._p.stop()


@contextmanager
def progress(quiet: bool) -> Iterator[Any]:
    """A progress reporter: rich bars on a terminal, nothing when piped or ``--quiet``."""
    from asrmerge.progress import NoProgress

    if quiet or not sys.stderr.isatty():
        yield NoProgress()
        return
    p = RichProgress()
    try:
        yield p
    finally:
        p.stop()


def size(text: str | None) -> int | None:
    from asrmerge.io.tensors import parse_size

    return parse_size(text) if text else None


def code(dtype: Dtype | ComputeDtype | None) -> str | None:
    """The safetensors code of a dtype option."""
    from asrmerge.io.tensors import CLI_DTYPES

    return CLI_DTYPES[dtype.value] if dtype is not None else None


def plural(n: int, noun: str) -> str:
    """``1 utterance``, ``2 utterances``; ``1 hypothesis``, ``2 hypotheses``."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun[:-2] + 'es' if noun.endswith('is') else noun + 's'}"


def dtype_name(code: str) -> str:
    """The option spelling (``fp16``) of a safetensors dtype code (``F16``)."""
    from asrmerge.io.tensors import CLI_DTYPES

    return {v: k for k, v in CLI_DTYPES.items()}.get(code, code)


def compute(dtype: ComputeDtype) -> Any:
    import torch

    return torch.float64 if dtype == ComputeDtype.fp64 else torch.float32
