"""The checks a study makes on its inputs before any work: manifests, domains, references, checkpoints, -o.

Every problem is one line (exit 3 for an input, 2 for the output folder), raised before anything is
written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from asrmerge.errors import InputError, UsageError
from asrmerge.study.config import Options

SETS = ("dev", "test")


@dataclass
class Data:
    """What the manifests hold.

    Attributes:
        ood: the test domains without a fine-tune (out-of-domain), in order of first appearance.
        dev, test: records per domain.
        dev_where, test_where: ``transcribe --where`` conditions selecting the dev and test records.
        extra_languages: extra set -> the languages its records name (``language`` field), sorted.
    """

    ood: list[str]
    dev: dict[str, int]
    test: dict[str, int]
    dev_where: list[str] = field(default_factory=list)
    test_where: list[str] = field(default_factory=list)
    extra_languages: dict[str, list[str]] = field(default_factory=dict)


def _records(path: str, label: str) -> list[tuple[int, dict]]:
    from asrmerge.asr.manifest import read_manifest

    if not Path(path).is_file():
        raise InputError("no such manifest", subject=path, hint=f"check the path given to {label}")
    items = read_manifest(path)
    for u in items:
        if not u.path.is_file():
            raise InputError(f"line {u.line}: no such audio file {u.record['audio']!r}", subject=path,
                             hint="audio paths are relative to the manifest's folder")
        text = u.record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"line {u.line}: no reference (\"text\")", subject=path,
                             hint="every evaluation record needs its reference transcript in \"text\"")
    return [(u.line, u.record) for u in items]


def _domain(path: str, line: int, rec: dict) -> str:
    d = rec.get("domain")
    if not isinstance(d, str) or not d:
        raise InputError(f"line {line}: no \"domain\" field", subject=path,
                         hint="each dev and test record names its domain (a fine-tune's NAME, or an "
                              "out-of-domain one)")
    return d


def check_data(opts: Options) -> Data:
    """Read the manifests and check them against the fine-tunes' NAMEs.

    Raises:
        InputError: a missing manifest or audio file, a record without ``domain``, ``set`` (one manifest) or
            reference, a fine-tune whose domain has no dev or no test records.
    """
    dev: dict[str, int] = {}
    test: dict[str, int] = {}
    if opts.manifest is not None:
        for line, rec in _records(opts.manifest, "--manifest"):
            s = rec.get("set")
            if s not in SETS:
                raise InputError(f"line {line}: \"set\" is {s!r}", subject=opts.manifest,
                                 hint="with --manifest every record has \"set\": \"dev\" or \"test\" "
                                      "(or give --dev FILE --test FILE)")
            counts = dev if s == "dev" else test
            d = _domain(opts.manifest, line, rec)
            counts[d] = counts.get(d, 0) + 1
        sources = {"dev": opts.manifest, "test": opts.manifest}
    else:
        assert opts.dev is not None and opts.test is not None
        for path, counts in ((opts.dev, dev), (opts.test, test)):
            for line, rec in _records(path, "--dev" if counts is dev else "--test"):
                d = _domain(path, line, rec)
                counts[d] = counts.get(d, 0) + 1
        sources = {"dev": opts.dev, "test": opts.test}
    for name in opts.finetunes:
        if name not in dev and name not in test:
            raise InputError(f"no record has domain {name!r} (domains: {', '.join(sorted({*dev, *test}))})",
                             subject=_rel(sources["test"]),
                             hint=f"a fine-tune's NAME is the \"domain\" of its records; rename {name}= or fix "
                                  "the manifests")
        if name not in dev:
            raise InputError(f"domain {name!r} has no dev records", subject=_rel(sources["dev"]),
                             hint="lambda is chosen on every fine-tune's dev records; add some")
        if name not in test:
            raise InputError(f"domain {name!r} has no test records", subject=_rel(sources["test"]),
                             hint="each fine-tune is scored on its domain's test records; add some")
    ids = ",".join(opts.finetunes)
    data = Data(ood=[d for d in test if d not in opts.finetunes], dev=dev, test=test,
                dev_where=(["set=dev"] if opts.manifest else []) + [f"domain={ids}"],
                test_where=["set=test"] if opts.manifest else [])
    for name, path in opts.extras.items():
        langs = {rec["language"] for _, rec in _records(path, f"--extra {name}=")
                 if isinstance(rec.get("language"), str)}
        data.extra_languages[name] = sorted(langs)
    return data


def _rel(path: str) -> str:
    return os.path.relpath(path) if os.path.isabs(path) else path


def check_checkpoints(opts: Options) -> None:
    """The base opens, and every fine-tune (and the joint one) has its tensor names and shapes.

    Raises:
        InputError: a missing or unreadable checkpoint, a task vector given as a fine-tune, or a fine-tune of
            another base (the first header difference).
    """
    from asrmerge.compat import header_problems
    from asrmerge.io.checkpoint import open_checkpoint

    with open_checkpoint(opts.base) as base:
        if base.kind != "model":
            raise InputError("is a task vector, not a model", subject=f"--base {opts.base}",
                             hint="give the pre-trained model")
        named = [(f"{n}=", p) for n, p in opts.finetunes.items()]
        if opts.joint:
            named.append(("--joint ", opts.joint))
        for label, path in named:
            try:
                ft = open_checkpoint(path, base=base)
            except InputError as e:
                raise InputError(e.message, subject=f"{label}{path}", hint=e.hint) from None
            with ft:
                if ft.kind == "taskvec":
                    raise InputError("is a task vector, not a fine-tuned model", subject=f"{label}{path}",
                                     hint="give the fine-tuned checkpoint (or a LoRA adapter folder)")
                problems = header_problems(base, ft)
                if problems:
                    first = problems[0].removeprefix(f"{ft.label}: ")
                    more = f" (and {len(problems) - 1} more differences)" if len(problems) > 1 else ""
                    raise InputError(f"is not a fine-tune of {opts.base}: {first}{more}", subject=f"{label}{path}",
                                     hint="every fine-tune must start from --base")


def check_output(path: str) -> bool:
    """Whether ``path`` holds an earlier study (resumed); a file or another non-empty folder is refused.

    Raises:
        UsageError: ``path`` is a file, or a non-empty folder without a study's ``steps/``.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError("is a file, not a folder", subject=f"-o {path}", hint="give a new or earlier study folder")
    if p.is_dir() and any(p.iterdir()):
        if not (p / "steps").is_dir():
            raise UsageError("is a folder that holds something else than an earlier study", subject=f"-o {path}",
                             hint="give a new folder, or an earlier study's to resume it")
        return True
    return False
