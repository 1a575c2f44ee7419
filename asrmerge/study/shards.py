"""Transcriptions written by shard jobs (``asrmerge study --emit slurm``), and their joining.

Each task of a transcription's job array runs the step's own ``transcribe`` command with ``--shard auto
--resume`` and ``-o shards/ID/KEY/K-of-N.jsonl`` (ID: the step, KEY: its key, so that shards of another
command are never mixed in). :func:`join` writes them, in manifest order, to the step's output once they
hold a hypothesis for every record the step selects: the records the unsharded command would have
written. The shard files stay (a resubmitted array task finds its shard done and transcribes nothing);
those of the step's other keys are removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from asrmerge.study.plan import Step


def folder(step: Step, key: str) -> str:
    """Where the shard files of ``step`` with ``key`` go, relative to the study folder."""
    return f"shards/{step.id}/{key}"


def shard_args(step: Step, key: str, name: str) -> list[str]:
    """The transcription's command for one array task: its shard (``--shard auto``) to the file ``name`` in
    :func:`folder`."""
    args = list(step.args)
    args[args.index("-o") + 1] = f"{folder(step, key)}/{name}"
    return [*args, "--shard", "auto"]


def _selected(root: Path, step: Step) -> list[str]:
    """The keys of the records the transcription selects (its manifest, ``--where``), in manifest order."""
    from asrmerge.asr.manifest import parse_where, read_manifest, select_where

    args = step.args
    where = [args[i + 1] for i, a in enumerate(args) if a == "--where"]
    items = select_where(read_manifest(str(root / args[2])), parse_where(where))
    return [u.key for u in items]


def join(root: Path, step: Step, key: str) -> int:
    """Write the step's output from its shard files when they are complete.

    Returns:
        The number of shard files joined; 0 when there are none, or some record has no hypothesis yet
        (nothing is written then).
    """
    from asrmerge.asr.manifest import key_of
    from asrmerge.io.writer import replace_text

    here = root / folder(step, key)
    files = sorted(here.glob("*.jsonl")) if here.is_dir() else []
    if not files:
        return 0
    lines: dict[str, str] = {}
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a record cut short by a killed task
                continue
            k = key_of(rec) if isinstance(rec, dict) else None
            if k is not None and "error" not in rec:
                lines.setdefault(k, line)
    wanted = _selected(root, step)
    if any(k not in lines for k in wanted):
        return 0
    out = root / step.outputs[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_text(out, "".join(lines[k] + "\n" for k in wanted))
    for other in here.parent.iterdir():
        if other.name != key:
            shutil.rmtree(other, ignore_errors=True)
    return len(files)
