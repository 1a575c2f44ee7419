"""One ``transcribe`` run before the model loads: where its records go, which utterances are its shard, and
which of those an earlier run already wrote (``--resume``).

:func:`prepare` checks the options and ``-o`` before anything is read; :func:`select` then reads the
manifest, takes this run's shard and, with ``--resume``, leaves out the utterances the output already has.
Sharding and resuming are described in :mod:`asrmerge.asr.manifest`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from asrmerge.asr import manifest as mf
from asrmerge.asr.model import check_chunk_length
from asrmerge.errors import InputError, UsageError
from asrmerge.inputs import check_stdin
from asrmerge.io import writer as wr


@dataclass
class Job:
    """What one run transcribes, and where.

    Attributes:
        manifest: the manifest as given (``-``: stdin).
        dest: the checked ``-o``.
        shard: this run's shard (1/1 without ``--shard``).
        resume: append to ``dest`` after the records it has (``--resume``).
        where: the ``--where FIELD=VALUE`` conditions (all must hold).
        read: how many utterances the manifest holds (after :func:`select`).
        items: the manifest's utterances that meet ``where`` (after :func:`select`).
        selected: this shard's utterances.
        done: the keys ``dest`` already has (``--resume``).
        todo: this shard's utterances that ``dest`` lacks, in manifest order.
    """

    manifest: str
    dest: wr.Destination
    shard: mf.Shard
    resume: bool = False
    where: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    read: int = 0
    items: list[mf.Utterance] = field(default_factory=list)
    selected: list[mf.Utterance] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    todo: list[mf.Utterance] = field(default_factory=list)

    @property
    def extra(self) -> list[str]:
        """The keys ``dest`` has that are not in this shard, sorted (kept as they are)."""
        return sorted(self.done - {u.key for u in self.selected})


def prepare(model: str, manifest: str, output: str, *, config: str | None = None, shard: str | None = None,
            resume: bool = False, force: bool = False, chunk_length: int = 30,
            where: list[str] | None = None, env: Mapping[str, str] | None = None) -> Job:
    """Check the inputs, ``--shard`` and ``-o`` before anything is read.

    Args:
        model: the model as given (``-``: stdin).
        manifest: the manifest as given (``-``: stdin).
        output: ``-o`` as given (``-``: stdout).
        config: ``--config DIR``, or ``None``.
        shard: ``--shard`` as given (``K/N``, ``auto``), or ``None``.
        resume: ``--resume``.
        force: ``--force``: replace an ``-o`` that is not an earlier transcribe output.
        chunk_length: ``--chunk-length``, checked here with the other options.
        where: ``--where FIELD=VALUE`` as given (every condition must hold).
        env: the environment ``--shard auto`` reads (default ``os.environ``).
    Returns:
        The job, with nothing selected yet.
    Raises:
        UsageError: ``--resume`` without a file, stdin twice or a terminal, a bad ``--chunk-length`` or
            ``--shard``, a bad ``-o``.
        InputError: ``--resume`` onto a file that is not a transcribe output.
    """
    if resume and output == "-":
        raise UsageError("needs -o FILE", subject="--resume", hint="write to a file: -o hyp.jsonl --resume")
    check_stdin([model, manifest], hint="give the manifest as a file")
    if manifest == "-" and sys.stdin.isatty():
        raise UsageError("stdin is a terminal, not a manifest", subject="-",
                         hint="give MANIFEST as a file, or pipe JSON lines in")
    check_chunk_length(chunk_length)
    part = mf.parse_shard(shard, env)
    conditions = mf.parse_where(where)
    inputs = [model, manifest, *([config] if config else [])]
    dest = wr.check_destination(output, force=force or resume, inputs=inputs, owner=wr.TRANSCRIPT)
    if resume and dest.kind != "file":
        raise UsageError("needs -o FILE, a regular file", subject="--resume", hint="write to a file: -o hyp.jsonl --resume")
    if resume and dest.mode == "force":
        assert dest.path is not None
        raise InputError(f"is not an output of asrmerge transcribe ({wr.transcript_problem(dest.path)})",
                         subject=output, hint="--resume appends only to those; choose another -o")
    return Job(manifest, dest, part, resume, conditions)


def select(job: Job) -> Job:
    """Read the manifest, take this run's shard, and leave out what ``--resume`` finds done.

    Args:
        job: from :func:`prepare`.
    Returns:
        ``job``, with ``items``, ``selected``, ``done`` and ``todo`` filled in.
    Raises:
        InputError: an unreadable manifest, two records with one key (``--resume``), a damaged output.
    """
    job.items = mf.read_manifest(job.manifest)
    job.read = len(job.items)
    if job.where:
        job.items = mf.select_where(job.items, job.where)
    if job.resume:
        mf.check_unique(job.items, job.manifest)
    job.selected = job.shard.select(job.items)
    job.done = mf.resume_done(job.dest.path) if job.resume and job.dest.path is not None else set()
    job.todo = [u for u in job.selected if u.key not in job.done]
    return job


@contextmanager
def output(job: Job) -> Iterator[IO[str]]:
    """The text stream the job's records go to: appended to with ``--resume``, else written anew (an empty
    shard still leaves its empty file)."""
    with wr.open_text(job.dest, append=job.resume) as out:
        yield out
