"""The ``--summary`` of an inspection: mean and median of the main quantities per layer type (docs/algorithms.md section 8.4).

Groups are {encoder, decoder} x {self_attn, encoder_attn, fc} (plus ``other`` with ``--all``) and ``all``.
Input quantities are pooled over every input and tensor of a group; the T x T ``interference`` and
``cosine`` matrices (the heat map) average the pair records over every tensor.

A tensor that every input leaves at zero (a frozen encoder: fine-tuning never moved it) has erank, srank
and ranks of 0 and no interference; it would drag every mean toward 0, so it is left out of the averages
and counted under ``left_out`` instead (per layer type).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from asrmerge.diagnostics.inspection import TensorResult
from asrmerge.diagnostics.layers import GROUPS

SUBJECT_KEYS = ("erank", "srank", "nrank", "rank90", "rank99", "e_keep", "fro", "boost_gain", "rounding_loss")
TASKS_KEYS = ("sti", "sti_rel")
PAIR_KEYS = ("cos", "sti_rel", "ov_u", "ov_v")
COLLAPSE_KEYS = ("kappa_s", "kappa_e")


def short_label(label: str) -> str:
    """An input's name for a table or legend: the file or folder name without .safetensors/.st, at most 14
    characters (a longer one loses its middle, keeping the end, where names of a series differ).

    Args:
        label: the input as given on the command line.
    Returns:
        the short name.
    """
    name = Path(label.rstrip("/")).name or label
    for suffix in (".safetensors", ".st"):
        name = name.removesuffix(suffix)
    return name if len(name) <= 14 else name[:4] + "…" + name[-9:]


def short_labels(labels: list[str]) -> list[str]:
    """:func:`short_label` of each input, numbered ``0:name``, ``1:name``, ... when two would read the same."""
    names = [short_label(x) for x in labels]
    return names if len(set(names)) == len(names) else [f"{i}:{n}" for i, n in enumerate(names)]


def mean_median(values: list[float]) -> dict[str, float | None]:
    """``{"mean": ..., "median": ...}`` of the values (None when there are none)."""
    if not values:
        return {"mean": None, "median": None}
    return {"mean": statistics.fmean(values), "median": float(statistics.median(values))}


def _numbers(records: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if isinstance(r.get(key), int | float) and not isinstance(r[key], bool)]


class Summary:
    """Collects :class:`TensorResult` records and aggregates them by layer type.

    Args:
        labels: the inputs' names, in order.
        merged_label: the merged update's name, or None.
    """

    def __init__(self, labels: list[str], merged_label: str | None = None) -> None:
        self.labels = labels
        self.merged_label = merged_label
        self._by_group: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        self._tensors: dict[str, int] = defaultdict(int)
        self._zero: dict[str, int] = defaultdict(int)  # tensors every input leaves at zero, per group

    def add(self, result: TensorResult) -> None:
        """Take one tensor's records.

        Args:
            result: what :func:`asrmerge.diagnostics.inspection.analyse` gave for one tensor.
        """
        if all_zero(result):
            self._zero[result.group] += 1
            return
        self._tensors[result.group] += 1
        for rec in result.records:
            self._by_group[result.group][rec["kind"]].append(rec)

    def _group(self, name: str, kinds: dict[str, list[dict[str, Any]]], tensors: int) -> dict[str, Any]:
        """One ``groups`` entry: mean and median of each record kind's main fields."""
        out: dict[str, Any] = {"group": name, "tensors": tensors}
        out["input"] = {k: mean_median(_numbers(kinds["input"], k)) for k in SUBJECT_KEYS}
        out["merged"] = ({k: mean_median(_numbers(kinds["merged"], k)) for k in SUBJECT_KEYS}
                         if kinds.get("merged") else None)
        out["tasks"] = {k: mean_median(_numbers(kinds["tasks"], k)) for k in TASKS_KEYS} if kinds.get("tasks") else None
        out["pairs"] = {k: mean_median(_numbers(kinds["pair"], k)) for k in PAIR_KEYS} if kinds.get("pair") else None
        if kinds.get("collapse"):
            recs = kinds["collapse"]
            ret = [float(v) for r in recs for v in r["retention"] if v is not None]
            out["collapse"] = {**{k: mean_median(_numbers(recs, k)) for k in COLLAPSE_KEYS},
                               "collapsed": sum(1 for r in recs if r["collapse"]), "retention": mean_median(ret)}
        else:
            out["collapse"] = None
        return out

    def matrix(self, key: str) -> list[list[float | None]] | None:
        """The T x T mean of a pair field (``sti_rel``, ``cos``, ...) over every tensor; None without pairs.

        Args:
            key: a field of the ``pair`` records.
        Returns:
            T x T nested lists (None on the diagonal: pairs are i < j, and the matrix is symmetric), or None
            with fewer than two inputs or no pair records.
        """
        T = len(self.labels)
        if T < 2:
            return None
        sums = [[0.0] * T for _ in range(T)]
        counts = [[0] * T for _ in range(T)]
        for kinds in self._by_group.values():
            for rec in kinds.get("pair", []):
                v = rec.get(key)
                if v is None:
                    continue
                for a, b in ((rec["i"], rec["j"]), (rec["j"], rec["i"])):
                    sums[a][b] += float(v)
                    counts[a][b] += 1
        if not any(any(row) for row in counts):
            return None
        return [[sums[a][b] / counts[a][b] if counts[a][b] else None for b in range(T)] for a in range(T)]

    def result(self) -> dict[str, Any]:
        """The summary as one JSON-ready object: ``subjects``, ``merged``, ``tensors``, ``groups``, ``interference``,
        ``cosine``, and ``left_out`` (``zero_tensors``, per group: the all-zero tensors not averaged)."""
        groups = [self._group(g, self._by_group[g], self._tensors[g]) for g in GROUPS if g in self._by_group]
        everything: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for kinds in self._by_group.values():
            for kind, recs in kinds.items():
                everything[kind].extend(recs)
        total = sum(self._tensors.values())
        if total:
            groups.append(self._group("all", everything, total))
        zero = {g: self._zero[g] for g in GROUPS if self._zero.get(g)}
        return {"subjects": self.labels, "merged": self.merged_label, "tensors": total, "groups": groups,
                "interference": self.matrix("sti_rel"), "cosine": self.matrix("cos"),
                "left_out": {"zero_tensors": zero}}


def all_zero(result: TensorResult) -> bool:
    """Whether every input of the tensor is zero (its Frobenius norm is 0): nothing to average."""
    inputs = [r for r in result.records if r["kind"] == "input"]
    return bool(inputs) and all(r.get("fro") == 0 for r in inputs)


def left_out_note(summary: dict[str, Any]) -> str | None:
    """One sentence naming the all-zero tensors left out of the averages, or None when there are none."""
    zero = summary.get("left_out", {}).get("zero_tensors") or {}
    if not zero:
        return None
    n = sum(zero.values())
    where = ", ".join(f"{g} {k}" for g, k in zero.items())
    frozen = "; a frozen encoder?" if all(g.startswith("encoder.") for g in zero) else ""
    return (f"left out of the averages: {n} tensor{'s' if n != 1 else ''} that every input leaves at zero "
            f"({where}{frozen})")
