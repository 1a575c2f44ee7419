"""Is system A better than system B on the same utterances? MAPSSWE and a paired bootstrap.

**MAPSSWE** (matched-pairs sentence-segment word error test, NIST sctk's ``MP`` test; Gillick and Cox,
ICASSP 1989). For each segment i of n, Z_i = N_A,i - N_B,i, the difference of the two systems' error
counts (S + D + I). With mean m = sum(Z_i) / n and sample variance s^2 = sum((Z_i - m)^2) / (n - 1), the
statistic W = m / (s / sqrt(n)) is approximately standard normal when the systems are equally good
(n of about 50 or more), and the two-sided p-value is p = 2 (1 - Phi(|W|)) = erfc(|W| / sqrt(2)).
Segments here are **whole utterances** (sctk cuts utterances further at runs of words both systems get
right; using utterances is the common simplification, and keeps segments independent as the test assumes).
If every Z_i is equal, s = 0: W = 0 and p = 1 when they are all 0, else |W| is infinite and p = 0.

**Paired bootstrap** (Koehn, EMNLP 2004; Bisani and Ney, ICASSP 2004): draw n utterances with replacement
(``samples`` times, a fixed ``seed``), compute WER_A - WER_B on each draw (both systems on the same
draw), and report the 2.5th and 97.5th percentiles: a 95% confidence interval of the difference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from asrmerge.asr.scoring import Counts, Fields, Item, excluded, group_of
from asrmerge.errors import InputError

ALPHA = 0.05


def mapsswe(za: list[int], zb: list[int], alpha: float = ALPHA) -> dict[str, Any]:
    """The MAPSSWE test over matched segments.

    Args:
        za: system A's error count per segment.
        zb: system B's, for the same segments in the same order.
        alpha: the significance level reported in ``significant`` and ``better``.
    Returns:
        ``segments``, ``unit``, ``mean``, ``sd``, ``w``, ``p`` (``None`` with fewer than 2 segments),
        ``alpha``, ``significant`` and ``better`` (``a``, ``b``, or ``None`` when not significant).
    """
    n = len(za)
    z = [a - b for a, b in zip(za, zb, strict=True)]
    out: dict[str, Any] = {"segments": n, "unit": "utterance", "mean": None, "sd": None, "w": None, "p": None,
                           "alpha": alpha, "significant": False, "better": None}
    if n < 2:
        return out
    mean = sum(z) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in z) / (n - 1))
    if sd == 0:
        w = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        w = mean / (sd / math.sqrt(n))
    p = math.erfc(abs(w) / math.sqrt(2))
    out.update(mean=mean, sd=sd, w=w, p=p, significant=p < alpha)
    if p < alpha:
        out["better"] = "a" if mean < 0 else "b"
    return out


def bootstrap(ea: list[int], eb: list[int], ref: list[int], *, samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of WER_A - WER_B.

    Args:
        ea: system A's errors per utterance.
        eb: system B's errors per utterance.
        ref: reference words per utterance.
        samples: resamples to draw.
        seed: the random generator's seed (the same seed gives the same interval).
    Returns:
        ``samples``, ``seed``, ``ci95`` ([low, high], or ``None`` without data) and ``a_better_share``
        (the share of resamples where A's WER is lower).
    """
    n = len(ref)
    out: dict[str, Any] = {"samples": samples, "seed": seed, "ci95": None, "a_better_share": None}
    if n == 0 or samples < 1:
        return out
    rng = np.random.default_rng(seed)
    a, b, r = np.asarray(ea, dtype=np.int64), np.asarray(eb, dtype=np.int64), np.asarray(ref, dtype=np.int64)
    chunk = max(1, 4_000_000 // n)  # bound memory: chunk x n indices at a time
    diffs = []
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n))
        words = r[idx].sum(axis=1)
        valid = words > 0
        diffs.append((a[idx].sum(axis=1) - b[idx].sum(axis=1))[valid] / words[valid])
    d = np.concatenate(diffs)
    if d.size:
        out["ci95"] = [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]
        out["a_better_share"] = float((d < 0).mean())
    return out


def pair(a: list[Item], b: list[Item], a_label: str, b_label: str) -> list[tuple[Item, Item]]:
    """Match the records of two systems by utterance key (``id``, else ``audio``), in A's order.

    Raises:
        InputError: a record without a key, a key twice in one file, an utterance only one system has
            (naming the first), or different references for the same utterance.
    """
    index = [_index(a, a_label), _index(b, b_label)]
    for (mine, label), (theirs, other) in (((index[0], a_label), (index[1], b_label)),
                                           ((index[1], b_label), (index[0], a_label))):
        for key, item in mine.items():
            if key not in theirs:
                raise InputError(f"id {key!r} (line {item.line} of {label}) is not in {other}", subject=other,
                                 hint="score both systems on the same utterances (the same manifest, every shard)")
    pairs = []
    for key, ia in index[0].items():
        ib = index[1][key]
        if ia.excluded is None and ib.excluded is None and ia.ref != ib.ref:
            raise InputError(f"id {key!r}: the references differ from {a_label}'s", subject=b_label,
                             hint="were both systems run on the same manifest, with the same --ref-field?")
        pairs.append((ia, ib))
    return pairs


def _index(items: list[Item], label: str) -> dict[str, Item]:
    out: dict[str, Item] = {}
    for it in items:
        key = it.key
        if key is None:
            raise InputError(f"line {it.line}: no \"id\" (or \"audio\")", subject=label,
                             hint="--compare matches utterances by id")
        if key in out:
            raise InputError(f"id {key!r} is on lines {out[key].line} and {it.line}", subject=label,
                             hint="each utterance once per system")
        out[key] = it
    return out


def compare(pairs: list[tuple[Item, Item]], fields: Fields, labels: tuple[str, str], *, by: str | None = None,
            samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Score two systems on matched utterances: both rates, their difference, MAPSSWE and the bootstrap.

    Pairs where either record is excluded (error, no reference, no hypothesis) are left out of both systems,
    and counted under ``excluded``.

    Args:
        pairs: from :func:`pair`, with items scored (:func:`asrmerge.asr.scoring.score`).
        fields: as read.
        labels: names of A and B (their files).
        by: a record field (A's) to compare per group too.
        samples: bootstrap resamples.
        seed: bootstrap seed.
    Returns:
        The JSON-ready document (see ``man asrmerge-wer``).
    """
    metric = "cer" if fields.cer else "wer"
    kept = [(x, y) for x, y in pairs if x.excluded is None and y.excluded is None]
    doc: dict[str, Any] = {"metric": metric, "normalizer": fields.normalizer, "ref_field": fields.ref,
                           "hyp_field": fields.hyp, **_figures(kept, fields, labels, samples, seed)}
    doc["excluded"] = {"a": excluded(x for x, _ in pairs), "b": excluded(y for _, y in pairs),
                       "pairs": len(pairs) - len(kept)}
    if by is not None:
        groups: dict[str, list[tuple[Item, Item]]] = {}
        for x, y in kept:
            groups.setdefault(group_of(x, by), []).append((x, y))
        doc["by"] = by
        doc["groups"] = {g: _figures(p, fields, labels, samples, seed) for g, p in groups.items()}
    return doc


def _figures(kept: list[tuple[Item, Item]], fields: Fields, labels: tuple[str, str], samples: int,
             seed: int) -> dict[str, Any]:
    ca = sum((x.counts for x, _ in kept), Counts())
    cb = sum((y.counts for _, y in kept), Counts())
    ea, eb = [x.counts.errors for x, _ in kept], [y.counts.errors for _, y in kept]
    diff = ca.rate - cb.rate if ca.rate is not None and cb.rate is not None else None
    return {"utterances": len(kept),
            "a": {"file": labels[0], **ca.as_dict(fields.cer)}, "b": {"file": labels[1], **cb.as_dict(fields.cer)},
            "difference": diff, "mapsswe": mapsswe(ea, eb),
            "bootstrap": bootstrap(ea, eb, [x.counts.ref for x, _ in kept], samples=samples, seed=seed)}
