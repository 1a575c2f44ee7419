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


def _devices(incomplete: str) -> list[str]:
    from asrmerge.device import NAMES

    return [name for name in NAMES if name.startswith(incomplete)]


Output = Annotated[str, typer.Option("-o", "--output", metavar="PATH",
                                     help="'-' (stdout, the default), FILE.safetensors, or DIR/ (a Hugging Face folder).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar and no notes on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the Python traceback of an error.")]
DtypeOpt = Annotated[Dtype | None, typer.Option("--dtype", help="Output dtype of float tensors.")]
ComputeOpt = Annotated[ComputeDtype, typer.Option("--compute-dtype", help="Arithmetic dtype (inputs are upcast).")]
Force = Annotated[bool, typer.Option("--force", help="Replace an -o that is not an earlier asrmerge output "
                                                   "(a folder keeps every file that is not the model's).")]
DeviceOpt = Annotated[str, typer.Option("--device", metavar="DEV", envvar="ASRMERGE_DEVICE", autocompletion=_devices,
                                        help="auto (CUDA when available, cuda:$LOCAL_RANK under torchrun; else the "
                                             "CPU), cpu, cuda, cuda:N, or mps (transcribe only).")]
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


def call(cmd: str, debug: bool, fn: Callable[[], T]) -> T:
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
    """A :class:`asrmerge.progress.Progress` drawn on stderr with rich (only on a terminal).

    One line: what runs, a bar, done/total, time left, and the current item (a tensor's name, a rate). The
    bar narrows, then the item is abbreviated (:func:`abbreviate`), so that the line fits the terminal and
    the count and the time are never cut.
    """

    def __init__(self, out: Console | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        self._bar = BarColumn()
        self._p = Progress(TextColumn("{task.description}", table_column=Column(no_wrap=True)), self._bar,
                           MofNCompleteColumn(table_column=Column(no_wrap=True)),
                           TimeRemainingColumn(table_column=Column(no_wrap=True)),
                           TextColumn("{task.fields[item]}", table_column=Column(no_wrap=True)),
                           console=out or console(), transient=True)
        self._task: Any = None
        self._fixed = 0

    def start(self, total: int, description: str) -> None:
        if self._task is None:
            self._p.start()
        else:
            self._p.remove_task(self._task)
        self._task = self._p.add_task(description, total=total, item="")
        # description, count (done/total), time left (h:mm:ss) and the four spaces between the five columns
        self._fixed = len(description) + 2 * len(str(total)) + 1 + 7 + 4

    def advance(self, item: str = "", amount: int = 1) -> None:
        if self._task is not None:
            room = self._p.console.width - self._fixed
            self._bar.bar_width = max(5, min(40, room - 40))
            self._p.update(self._task, advance=amount, item=abbreviate([item], max(1, room - self._bar.bar_width - 1))[0])

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


def size(text: str | None, option: str) -> int | None:
    """Bytes in a size option (``2GB``); ``option`` names it in errors."""
    from asrmerge.io.tensors import parse_size

    return parse_size(text, option=option) if text is not None else None


def sweep(dest: str, quiet: bool) -> None:
    """Remove the temporaries a killed run left beside ``dest`` (see asrmerge.io.writer), in one note line."""
    from asrmerge.io.writer import sweep_temporaries

    removed = sweep_temporaries(dest)
    if removed:
        note(f"removed {len(removed)} temporar{'y' if len(removed) == 1 else 'ies'} left by killed asrmerge runs "
             f"beside {dest}: {', '.join(removed)}", quiet)


def code(dtype: Enum | None) -> str | None:
    """The safetensors code of a dtype option."""
    from asrmerge.io.tensors import CLI_DTYPES

    return CLI_DTYPES[dtype.value] if dtype is not None else None


def abbreviate(names: list[str], width: int) -> list[str]:
    """``names`` in at most ``width`` terminal cells each, their distinguishing ends kept.

    Dotted names lose the middle of their leading parts first, as loggers abbreviate class names, all names
    to the same depth so that they line up (``model.decoder.layers.5.fc1.weight`` -> ``m.d.l.5.fc1.weight``):
    the layer number and the module's own name stay. A name still too long, and any other text, loses its
    middle to an ellipsis, keeping a third of the room for its start and the rest for its end.
    """
    from rich.cells import cell_len

    def shorten(name: str, depth: int) -> str:
        parts = name.split(".")
        done = 0
        for i in range(len(parts) - 2):  # never the last two parts (fc1.weight)
            if done < depth and parts[i] and not parts[i].isdigit():
                parts[i], done = parts[i][0], done + 1
        return ".".join(parts)

    def elide(text: str) -> str:
        if cell_len(text) <= width:
            return text
        if width < 2:
            return text[len(text) - width:] if width > 0 else ""
        head = (width - 1) // 3
        return text[:head] + "…" + text[len(text) - (width - 1 - head):]

    deepest = max((len(n.split(".")) for n in names), default=0)
    for depth in range(deepest + 1):
        short = [shorten(n, depth) for n in names]
        if all(cell_len(n) <= width for n in short):
            return short
    return [elide(shorten(n, deepest)) for n in names]


def fit_table(title: str | None, columns: list[tuple[str, str]], rows: list[list[str]], *, name_column: int | None = 0,
              ends: list[bool] | None = None, width: int | None = None, **table_kw: Any) -> Any:
    """A rich table of ``rows`` that fits the terminal without cutting a number or a header word.

    Every column gets its natural width while they fit. Otherwise the columns with several words in a cell or
    header (``rel. norm``, a confidence interval) wrap between words first, then the name column
    (``name_column``) gives up room, its cells abbreviated (:func:`abbreviate`); a word is never cut.

    Args:
        title: the table's title.
        columns: (header, justify) per column.
        rows: the cells, as text.
        name_column: the column whose cells may be abbreviated (``None``: none).
        ends: per row, whether a section ends after it.
        width: the terminal's width (default: stdout's console).
        table_kw: further ``rich.table.Table`` options (box, padding, ...).
    Returns:
        The table, under its title (a line of its own, which a narrow table does not wrap).
    """
    from rich.cells import cell_len
    from rich.console import Console, Group
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    width = width or Console().width
    texts = [[h for h, _ in columns][j:j + 1] + [r[j] for r in rows] for j in range(len(columns))]
    natural = [max(cell_len(t) for t in col) for col in texts]
    least = [max(cell_len(w) for t in col for w in (t.split() or [""])) for col in texts]
    probe = Table(**table_kw)
    for _ in columns:
        probe.add_column(width=1)
    probe.add_row(*["x"] * len(columns))
    room = width - (Measurement.get(Console(width=10_000), Console(width=10_000).options, probe).maximum - len(columns))
    widths = list(natural)
    excess = sum(widths) - room
    while excess > 0:  # first wrap the widest wrappable column (a header, a range) between words
        j = max(range(len(widths)), key=lambda k: widths[k] - least[k] if k != name_column else -1)
        spare = widths[j] - least[j] if j != name_column else 0
        if spare <= 0:
            break
        cut = min(excess, spare)
        widths[j] -= cut
        excess -= cut
    if excess > 0 and name_column is not None:  # then abbreviate the names, down to 8 cells
        cut = min(excess, widths[name_column] - min(natural[name_column], 8))
        widths[name_column] -= cut
    names = abbreviate([r[name_column] for r in rows], widths[name_column]) if name_column is not None else []
    table = Table(**table_kw)
    for j, (header, justify) in enumerate(columns):
        table.add_column(header, justify=justify, width=widths[j], no_wrap=j == name_column)  # type: ignore[arg-type]
    for i, row in enumerate(rows):
        cells = [names[i] if j == name_column else c for j, c in enumerate(row)]
        table.add_row(*cells, end_section=bool(ends and ends[i]))
    return Group(Text(title, style="table.title"), table) if title else table


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
