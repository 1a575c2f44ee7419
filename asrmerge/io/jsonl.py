"""JSON Lines: one object per line, read with line numbers in errors, written and flushed one at a time."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from asrmerge.errors import InputError


def _clean(value: Any) -> Any:
    """JSON has no NaN or Infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(_clean(record), ensure_ascii=False, separators=(", ", ": "))


def write_record(record: dict[str, Any], stream: IO[str] | None = None) -> None:
    """Write one record as a line and flush, so pipes see it at once."""
    out = stream or sys.stdout
    out.write(dumps(record) + "\n")
    out.flush()


def read_records(source: str | Path | IO[str] | IO[bytes], *, label: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line of ``source`` (a path, ``-`` for stdin, or a stream).

    Raises:
        InputError: a line is not a JSON object; the message names the file and the line.
    """
    if isinstance(source, str | Path):
        path_label = label or str(source)
        if str(source) == "-":
            yield from read_records(sys.stdin.buffer, label=label or "-")
            return
        try:
            f = open(source, "rb")
        except OSError as e:
            raise InputError(e.strerror or str(e), subject=path_label, hint="check the path") from e
        with f:
            yield from read_records(f, label=path_label)
        return
    name = label or str(getattr(source, "name", "-"))
    for no, raw in enumerate(source, 1):
        try:
            line: str = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError as e:
            raise InputError(f"line {no}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})",
                             subject=name, hint="each line must be one JSON object in UTF-8") from None
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"line {no}: not valid JSON ({e.msg} at column {e.colno})", subject=name,
                             hint="each line must be one JSON object") from e
        except RecursionError:
            raise InputError(f"line {no}: JSON nested too deeply", subject=name,
                             hint="each line must be one JSON object") from None
        if not isinstance(rec, dict):
            raise InputError(f"line {no}: a JSON {type(rec).__name__}, not an object", subject=name,
                             hint="each line must be one JSON object")
        yield no, rec
