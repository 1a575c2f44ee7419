"""Word (and character) error rates of JSONL records, per utterance, per group and pooled.

Corpus WER is total edits over total reference words, (S + D + I) / (S + D + H), counted on the
normalised texts; alignments are jiwer's (``process_words``, ``process_characters`` for CER, with jiwer's
default transforms after the normalizer), so the figures are jiwer's own. CER counts every character,
spaces included, as jiwer does; use it for languages written without spaces.

Records are never silently dropped: one with an ``error`` field (a failed transcription), without a
reference, or without a hypothesis is *excluded*, counted by reason, and reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from asrmerge.asr.manifest import key_of
from asrmerge.asr.normalizers import get as get_normalizer
from asrmerge.errors import InputError, UsageError
from asrmerge.io.jsonl import read_records

MISSING_GROUP = "(none)"


@dataclass
class Counts:
    """Edit counts of one utterance or of many (``+`` adds them)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0
    utterances: int = 0

    @property
    def ref(self) -> int:
        """Reference words (characters for CER): S + D + H."""
        return self.substitutions + self.deletions + self.hits

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        """errors / ref, or ``None`` without reference words."""
        return self.errors / self.ref if self.ref else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                      self.insertions + other.insertions, self.hits + other.hits, self.utterances + other.utterances)

    def as_dict(self, cer: bool = False) -> dict[str, Any]:
        """``wer``/``cer``, ``errors``, ``substitutions``, ``deletions``, ``insertions``, ``hits``,
        ``ref_words``/``ref_chars``, ``utterances``."""
        return {"cer" if cer else "wer": self.rate, "errors": self.errors, "substitutions": self.substitutions,
                "deletions": self.deletions, "insertions": self.insertions, "hits": self.hits,
                "ref_chars" if cer else "ref_words": self.ref, "utterances": self.utterances}


@dataclass
class Fields:
    """Where the texts are, and how to compare them."""

    ref: str = "text"
    hyp: str = "hyp"
    normalizer: str = "basic"
    cer: bool = False


@dataclass
class Item:
    """One record, with its origin; ``excluded`` says why it is not scored (``None``: it is)."""

    source: str
    line: int
    record: dict[str, Any]
    ref: str = ""
    hyp: str = ""
    excluded: str | None = None
    counts: Counts = field(default_factory=Counts)

    @property
    def key(self) -> str | None:
        return key_of(self.record)


EXCLUSIONS = ("error", "no_reference", "no_hypothesis")


def read(sources: Iterable[str], fields: Fields) -> list[Item]:
    """Read records from files (``-``: stdin), classify them, normalise their texts.

    Args:
        sources: paths, or ``-``.
        fields: field names and normalizer.
    Returns:
        Every record, in order, with ``excluded`` set to ``error``, ``no_reference`` or ``no_hypothesis``
        where it cannot be scored.
    Raises:
        InputError: a malformed line (named), or a reference or hypothesis that is not a string.
    """
    items = []
    for src in sources:
        items += classify(read_records(src), fields, src)
    return items


def classify(records: Iterable[tuple[int, dict[str, Any]]], fields: Fields, source: str) -> list[Item]:
    """:func:`read` on records already read (the Python API).

    Args:
        records: (line number, record) pairs.
        fields: field names and normalizer.
        source: names the records' origin in errors.
    Returns:
        An :class:`Item` per record, in order, excluded or with its texts normalised.
    Raises:
        InputError: a reference or hypothesis that is not a string (names the line).
    """
    norm = get_normalizer(fields.normalizer)
    items = []
    for line, rec in records:
        item = Item(source, line, rec)
        ref, hyp = rec.get(fields.ref), rec.get(fields.hyp)
        for name, value in ((fields.ref, ref), (fields.hyp, hyp)):
            if value is not None and not isinstance(value, str):
                raise InputError(f"line {line}: \"{name}\" is a {type(value).__name__}, not a string",
                                 subject=source, hint="are --ref-field and --hyp-field right?")
        if rec.get("error") is not None:
            item.excluded = "error"
        elif ref is None:
            item.excluded = "no_reference"
        elif hyp is None:
            item.excluded = "no_hypothesis"
        else:
            item.ref, item.hyp = norm(ref), norm(hyp)
        items.append(item)
    return items


def excluded(items: Iterable[Item]) -> dict[str, int]:
    """How many records were excluded, by reason.

    Args:
        items: as :func:`read` returns them.
    Returns:
        ``error``, ``no_reference`` and ``no_hypothesis`` counts, zeros included.
    """
    out = dict.fromkeys(EXCLUSIONS, 0)
    for it in items:
        if it.excluded:
            out[it.excluded] += 1
    return out


def score(items: list[Item], cer: bool = False) -> None:
    """Align every scorable item's texts (one jiwer call for all) and set its :class:`Counts`.

    Args:
        items: as :func:`read` returns them; excluded ones are left alone.
        cer: align characters (spaces included) instead of words.
    """
    import jiwer

    todo = [it for it in items if it.excluded is None]
    if not todo:
        return
    refs, hyps = [it.ref for it in todo], [it.hyp for it in todo]
    out = jiwer.process_characters(refs, hyps) if cer else jiwer.process_words(refs, hyps)
    for it, chunks in zip(todo, out.alignments, strict=True):
        c = Counts(utterances=1)
        for ch in chunks:
            if ch.type == "equal":
                c.hits += ch.ref_end_idx - ch.ref_start_idx
            elif ch.type == "substitute":
                c.substitutions += ch.ref_end_idx - ch.ref_start_idx
            elif ch.type == "delete":
                c.deletions += ch.ref_end_idx - ch.ref_start_idx
            elif ch.type == "insert":
                c.insertions += ch.hyp_end_idx - ch.hyp_start_idx
        it.counts = c


def require_scorable(items: list[Item], fields: Fields, label: str) -> None:
    """Refuse input where nothing can be scored, saying why.

    Args:
        items: as :func:`read` returns them.
        fields: the field names asked for.
        label: the inputs' names, for the message.
    Raises:
        UsageError: no record has the reference (or hypothesis) field: probably a wrong field name.
        InputError: no records at all, or every record excluded for mixed reasons.
    """
    if any(it.excluded is None for it in items):
        return
    if not items:
        raise InputError("no records", subject=label, hint="is the input empty? did transcribe fail?")
    why = excluded(items)
    if why["no_reference"] == len(items):
        raise UsageError(f"no record has a reference field \"{fields.ref}\"", subject=label,
                         hint="name it with --ref-field")
    if why["no_hypothesis"] == len(items):
        raise UsageError(f"no record has a hypothesis field \"{fields.hyp}\"", subject=label,
                         hint="name it with --hyp-field")
    raise InputError(f"no record can be scored ({describe(why)})", subject=label)


def describe(why: dict[str, int]) -> str:
    """The non-zero exclusion counts in words.

    Args:
        why: as :func:`excluded` returns it.
    Returns:
        For example ``2 with an error, 1 without a reference``.
    """
    words = {"error": "with an error", "no_reference": "without a reference", "no_hypothesis": "without a hypothesis"}
    return ", ".join(f"{n} {words[k]}" for k, n in why.items() if n)


def group_of(item: Item, by: str) -> str:
    """The group of ``item`` for ``--by``: its field ``by`` as a string, or :data:`MISSING_GROUP`."""
    value = item.record.get(by)
    return MISSING_GROUP if value is None else str(value)


def summary(items: list[Item], fields: Fields, by: str | None = None) -> dict[str, Any]:
    """The corpus figures as one JSON-ready document.

    Args:
        items: scored items (:func:`score`).
        fields: as read.
        by: a record field to group by.
    Returns:
        ``metric``, ``normalizer``, ``ref_field``, ``hyp_field``, ``micro`` (pooled over all utterances),
        ``excluded`` (counts by reason); with ``by``: ``by``, ``groups`` (name -> figures, in order of first
        appearance) and ``macro`` (the unweighted mean of the groups' rates, over groups with a reference).
    """
    scored = [it for it in items if it.excluded is None]
    doc: dict[str, Any] = {"metric": "cer" if fields.cer else "wer", "normalizer": fields.normalizer,
                           "ref_field": fields.ref, "hyp_field": fields.hyp}
    if by is not None:
        groups: dict[str, Counts] = {}
        for it in scored:
            g = group_of(it, by)
            groups[g] = groups.get(g, Counts()) + it.counts
        if scored and set(groups) == {MISSING_GROUP}:
            raise UsageError(f"no record has a field \"{by}\"", subject="--by", hint="group by a field the records have")
        rates = [c.rate for c in groups.values() if c.rate is not None]
        doc["by"] = by
        doc["groups"] = {g: c.as_dict(fields.cer) for g, c in groups.items()}
        doc["macro"] = {doc["metric"]: sum(rates) / len(rates) if rates else None, "groups": len(rates)}
    doc["micro"] = sum((it.counts for it in scored), Counts()).as_dict(fields.cer)
    doc["excluded"] = excluded(items)
    return doc


def utterance_record(item: Item, fields: Fields) -> dict[str, Any]:
    """An input record with its own figures added (``--jsonl``).

    Args:
        item: a scored (or excluded) item.
        fields: as read.
    Returns:
        The record plus ``wer``/``cer``, ``errors``, ``substitutions``, ``deletions``, ``insertions``, ``hits``
        and ``ref_words``/``ref_chars``; an excluded record gets a null rate and ``excluded`` (the reason).
    """
    if item.excluded is not None:
        return {**item.record, "cer" if fields.cer else "wer": None, "excluded": item.excluded}
    figures = item.counts.as_dict(fields.cer)
    del figures["utterances"]
    return {**item.record, **figures}
