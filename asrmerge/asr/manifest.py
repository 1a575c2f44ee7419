"""Transcription manifests: reading them, sharding them across batch jobs, and resuming an output.

A manifest is JSON lines, one record per utterance: ``audio`` (a path, relative to the manifest's folder,
or to the working folder for stdin), optional ``id``, ``text`` (the reference) and any other fields.
An utterance is known by its **key**: ``id`` when the record has one, else its ``audio`` string; resuming
and ``wer --compare`` match utterances by key.

Sharding is round-robin over records: shard K of N (K counts from 1) takes records K, K+N, K+2N, ...
(1-based positions), so every record belongs to exactly one shard, shards are balanced, and the assignment
depends only on the manifest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrmerge.errors import InputError, UsageError
from asrmerge.io.jsonl import read_records
from asrmerge.io.writer import replace_text


@dataclass(frozen=True)
class Utterance:
    """One manifest record and where its audio is.

    Attributes:
        line: its line number in the manifest.
        record: the record as read (written back with ``hyp`` and ``model`` added).
        path: the audio file, resolved against the manifest's folder.
        key: ``id`` (as a string) if the record has one, else ``audio``.
    """

    line: int
    record: dict[str, Any]
    path: Path
    key: str


def key_of(record: Mapping[str, Any]) -> str | None:
    """An utterance's key.

    Args:
        record: a manifest or output record.
    Returns:
        Its ``id`` (as a string), else its ``audio``, else ``None``.
    """
    value = record.get("id")
    if value is None:
        value = record.get("audio")
    return None if value is None else str(value)


def read_manifest(source: str) -> list[Utterance]:
    """Every utterance of a manifest file (``-``: stdin), checked before any audio is read.

    Args:
        source: a path, or ``-``.
    Returns:
        The utterances in manifest order.
    Raises:
        InputError: a line is not a JSON object, or has no usable ``audio`` or ``id`` (names the line).
    """
    # absolute, so that an error about a missing file names the folder it was looked for in
    folder = Path.cwd() if source == "-" else Path(os.path.abspath(source)).parent
    return utterances(read_records(source), folder, source)


def utterances(records: Iterable[tuple[int, dict[str, Any]]], folder: Path, source: str) -> list[Utterance]:
    """:func:`read_manifest` on records already read (the Python API).

    Args:
        records: (line number, record) pairs.
        folder: where relative ``audio`` paths are resolved.
        source: names the records' origin in errors.
    Returns:
        The utterances in order.
    Raises:
        InputError: a record has no usable ``audio`` or ``id`` (names the line).
    """
    out = []
    for line, rec in records:
        audio = rec.get("audio")
        if not isinstance(audio, str) or not audio:
            raise InputError(f"line {line}: no \"audio\" path", subject=source,
                             hint="each record needs \"audio\": a file path relative to the manifest's folder")
        if "id" in rec and not isinstance(rec["id"], str | int):
            raise InputError(f"line {line}: \"id\" is a {type(rec['id']).__name__}", subject=source,
                             hint="ids are strings or integers")
        path = Path(audio).expanduser()
        out.append(Utterance(line, rec, path if path.is_absolute() else folder / path, key_of(rec) or audio))
    return out


def parse_where(specs: list[str] | None) -> list[tuple[str, frozenset[str]]]:
    """``--where FIELD=VALUE[,VALUE...]`` conditions (repeatable; all must hold).

    Args:
        specs: the option's values.
    Returns:
        (field, accepted values as text) per condition.
    Raises:
        UsageError: a value without ``=`` or with an empty field name.
    """
    out = []
    for spec in specs or []:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{spec!r} is not FIELD=VALUE", subject="--where",
                             hint="e.g. --where set=test --where domain=news,kids")
        out.append((name.strip(), frozenset(values.split(","))))
    return out


def select_where(items: list[Utterance], conditions: list[tuple[str, frozenset[str]]]) -> list[Utterance]:
    """The utterances whose record has, for every condition, the field with one of its values.

    A value matches the field's JSON scalar as text (``"set": "dev"`` matches ``set=dev``, ``"n": 3``
    matches ``n=3``); a record without the field never matches.
    """
    def text(value: Any) -> str | None:
        if value is None or isinstance(value, dict | list):
            return None
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return [u for u in items if all(text(u.record.get(f)) in values for f, values in conditions)]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``, and where that came from (for messages)."""

    index: int
    count: int
    source: str = "--shard"

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"

    def select(self, items: list[Utterance]) -> list[Utterance]:
        """This shard's records.

        Args:
            items: the whole manifest, in order.
        Returns:
            The items at positions ``index``, ``index + count``, ``index + 2 count``, ... (0-based).
        """
        return items[self.index :: self.count]


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> Shard:
    """``--shard``: ``K/N`` (K from 1 to N), ``auto`` (Slurm array, torch.distributed), or none.

    ``auto`` reads ``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_COUNT`` (or ``_MIN``/``_MAX``/``_STEP``),
    and ``RANK`` with ``WORLD_SIZE``; with both, each array task's ranks split its shard further. With
    neither it is the whole manifest (1/1).

    Args:
        text: the option's value, or ``None`` for no sharding.
        env: the environment (default ``os.environ``).
    Returns:
        The shard.
    Raises:
        UsageError: a malformed value, K outside 1..N, or inconsistent environment variables.
    """
    if text is None:
        return Shard(0, 1, "")
    env = os.environ if env is None else env
    if text == "auto":
        return _auto(env)
    k, sep, n = text.partition("/")
    try:
        index, count = int(k), int(n)
    except ValueError:
        raise UsageError(f"{text!r} is not K/N or auto", subject="--shard",
                         hint="e.g. --shard 3/8 (the third of 8 shards, K from 1 to N)") from None
    if not sep or count < 1 or not 1 <= index <= count:
        raise UsageError(f"{text!r}: K must be between 1 and N", subject="--shard",
                         hint=f"K counts from 1: use 1/{max(count, 1)} .. {max(count, 1)}/{max(count, 1)}, "
                         "or --shard auto in a Slurm array")
    return Shard(index - 1, count, "--shard")


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not an integer", subject="--shard auto") from None


def _auto(env: Mapping[str, str]) -> Shard:
    shard = Shard(0, 1, "none")
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    if task is not None:
        lo, hi = _int(env, "SLURM_ARRAY_TASK_MIN"), _int(env, "SLURM_ARRAY_TASK_MAX")
        step = _int(env, "SLURM_ARRAY_TASK_STEP") or 1
        count = _int(env, "SLURM_ARRAY_TASK_COUNT")
        lo = 0 if lo is None else lo
        if count is None and hi is not None:
            count = (hi - lo) // step + 1
        if count is None or (task - lo) % step or not 0 <= (task - lo) // step < count:
            raise UsageError(f"cannot place SLURM_ARRAY_TASK_ID={task} in an array (min {lo}, step {step}, "
                             f"count {count})", subject="--shard auto",
                             hint="use a plain range (--array=0-7 or 1-8), or pass --shard K/N")
        shard = Shard((task - lo) // step, count, "Slurm array")
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    if rank is not None and world is not None and world > 1:
        if not 0 <= rank < world:
            raise UsageError(f"RANK={rank} is not below WORLD_SIZE={world}", subject="--shard auto")
        source = "torch.distributed" if shard.source == "none" else f"{shard.source} x torch.distributed"
        shard = Shard(shard.index * world + rank, shard.count * world, source)
    return shard


def resume_done(path: Path) -> set[str]:
    """The keys an earlier run wrote to ``path``, ready to append after them.

    Records with an ``error`` field are dropped from the file and retried, and so is a last line cut short
    by a killed job: if either is found, the file is rewritten (atomically) without them.

    Args:
        path: the output file of the run being resumed; a missing file means nothing is done.
    Returns:
        The keys of the records that have a hypothesis.
    Raises:
        InputError: a line other than the last is not a JSON object (names the line).
    """
    if not path.exists():
        return set()
    raws = path.read_bytes().splitlines(keepends=True)
    lines = []
    for no, raw in enumerate(raws, 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            if no == len(raws) and not raw.endswith(b"\n"):
                lines.append("\0")  # a record cut short inside a character: dropped below
                continue
            raise InputError(f"line {no}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})",
                             subject=str(path), hint="--resume appends to an output of asrmerge transcribe; "
                             "is this one?") from None
    keep: list[str] = []
    done: set[str] = set()
    changed = False
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if no == len(lines) and not line.endswith("\n"):
                changed = True  # a record cut short when the job was killed: transcribe it again
                continue
            raise InputError(f"line {no}: not valid JSON", subject=str(path),
                             hint="--resume appends to an output of asrmerge transcribe; is this one?") from None
        if not isinstance(rec, dict):
            raise InputError(f"line {no}: not a JSON object", subject=str(path), hint="is this a transcribe output?")
        key = key_of(rec)
        if "error" in rec or key is None:
            changed = True
            continue
        done.add(key)
        if not line.endswith("\n"):
            changed, line = True, line + "\n"  # complete, but appending must start on a line of its own
        keep.append(line)
    if changed:
        replace_text(path, "".join(keep))
    return done


def check_unique(items: list[Utterance], label: str) -> None:
    """Refuse two records with the same key (``--resume`` could not tell them apart).

    Args:
        items: the manifest's utterances.
        label: the manifest's name, for the message.
    Raises:
        InputError: naming the key and both lines.
    """
    seen: dict[str, int] = {}
    for u in items:
        if u.key in seen:
            raise InputError(f"id {u.key!r} is on lines {seen[u.key]} and {u.line}", subject=label,
                             hint="--resume needs a unique \"id\" per record")
        seen[u.key] = u.line
