"""Stream an inspection tensor by tensor: read every input's copy of one tensor, decompose, emit records.

Memory holds one tensor's inputs (and their SVD) at a time. The T task vectors of a tensor, and the merged
update, have one shape, so they are decomposed as one batch; singular values only (``svdvals``) unless
singular vectors are needed: for the pair and task interference records (T >= 2, unless ``pairs`` is off)
and for retention (``--merged``). Record kinds, in order per tensor (docs/algorithms.md section 8.4):

- ``input`` (one per input) and ``merged``: the single-matrix quantities of :mod:`asrmerge.diagnostics.spectra`;
- ``tasks``: STI and sti_rel of all inputs together;
- ``pair`` (one per i < j): cos, STI_ij, its relative value, and the subspace overlaps ov_u, ov_v;
- ``collapse``: kappa_s, kappa_e, the collapse flag, and each task's retention in M.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from asrmerge.diagnostics import collapse as col
from asrmerge.diagnostics import interference as inter
from asrmerge.diagnostics.layers import group, layer
from asrmerge.diagnostics.sources import Sources
from asrmerge.diagnostics.spectra import TOP, matrix_stats, rounding_loss
from asrmerge.io.tensors import torch_dtype
from asrmerge.linalg.svd import svd, svdvals
from asrmerge.progress import NoProgress, Progress


@dataclass(frozen=True)
class Settings:
    """What to compute, and where.

    Attributes:
        rank_frac: p of ``k_keep``/``e_keep`` and of the retained top-k (None: 1/T).
        beta: beta of ``boost_j``/``boost_gain``.
        sti_k: triplets per task in STI and overlaps (None: floor(r/T)); capped at r.
        sti_norm: ``l1`` or ``fro``.
        collapse_threshold: gamma_c.
        pairs: compute ``tasks`` and ``pair`` records (T >= 2).
        full: list every singular value (else the top 64).
        compute: the dtype of the arithmetic and the SVD.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (see :func:`asrmerge.device.resolve`).
        rounding_dtype: safetensors code of the storage dtype ``rounding_loss`` assumes (None: the base's).
    """

    rank_frac: float | None = None
    beta: float = 0.3
    sti_k: int | None = None
    sti_norm: str = "l1"
    collapse_threshold: float = 1.0
    pairs: bool = True
    full: bool = False
    compute: torch.dtype = torch.float32
    device: str = "cpu"
    rounding_dtype: str | None = None


@dataclass
class TensorResult:
    """Everything one tensor gave: its JSONL records, and the full spectra (for pictures)."""

    name: str
    group: str
    layer: int | None
    shape: tuple[int, int]
    records: list[dict[str, Any]]
    spectra: list[torch.Tensor] = field(default_factory=list)
    merged_spectrum: torch.Tensor | None = None


def analyse(name: str, taus: torch.Tensor, *, labels: list[str], settings: Settings,
            merged: torch.Tensor | None = None, merged_label: str = "merged",
            base: torch.Tensor | None = None) -> TensorResult:
    """Every record of section 8 for one tensor.

    Args:
        name: the tensor's canonical name.
        taus: the T inputs' task vectors, stacked (T, m, n), in the compute dtype.
        labels: the T inputs' names (``subject`` of their records).
        settings: what to compute.
        merged: the merged update M (m, n), or None.
        merged_label: ``subject`` of the merged record.
        base: W_0 as stored, for ``rounding_loss`` (None: not reported).
    Returns:
        the :class:`TensorResult`.
    Paper: docs/algorithms.md section 8; TSV (arXiv:2412.00081), Subspace Boosting (arXiv:2506.16506), BoostedTSV-M
    (arXiv:2603.05354), Roy & Vetterli (EUSIPCO 2007).
    """
    T, m, n = taus.shape
    r = min(m, n)
    dev, compute = settings.device, settings.compute
    x = taus.to(dev, compute)
    stack = torch.cat([x, merged.to(dev, compute)[None]]) if merged is not None else x
    pairs = settings.pairs and T >= 2
    if pairs or merged is not None:
        u, s, vh = svd(stack, name=name)
    else:
        s = svdvals(stack)
    p = settings.rank_frac if settings.rank_frac is not None else 1.0 / T
    g, depth = group(name), layer(name)
    where: dict[str, Any] = {"tensor": name, "group": g, "layer": depth, "shape": [m, n]}
    dtype = torch_dtype(settings.rounding_dtype or _code(base)) if base is not None else None

    def subject(i: int, kind: str, label: str) -> dict[str, Any]:
        stats = matrix_stats(s[i], (m, n), compute, rank_frac=p, beta=settings.beta,
                             top=None if settings.full else TOP)
        loss = rounding_loss(stack[i], base, dtype) if base is not None and dtype is not None else None
        return {**where, "kind": kind, "subject": label, "input": i if kind == "input" else None, **stats,
                "rounding_loss": loss}

    records = [subject(t, "input", labels[t]) for t in range(T)]
    if merged is not None:
        records.append(subject(T, "merged", merged_label))
    rhos = [rec["nrank"] for rec in records]

    if pairs:
        k = max(1, min(settings.sti_k or r // T, r))
        trip = [inter.truncate(u[t], s[t], vh[t], k, rhos[t]) for t in range(T)]
        total, rel = inter.sti(trip, settings.sti_norm)
        records.append({**where, "kind": "tasks", "T": T, "k": k, "norm": settings.sti_norm, "sti": total,
                        "sti_rel": rel})
        cos = inter.cosines(x)
        for i in range(T):
            for j in range(i + 1, T):
                value, rel_ij = inter.pair_sti(trip[i], trip[j], settings.sti_norm)
                records.append({**where, "kind": "pair", "i": i, "j": j, "subjects": [labels[i], labels[j]],
                                "k": k, "norm": settings.sti_norm, "cos": cos[i][j], "sti": value,
                                "sti_rel": rel_ij, "ov_u": inter.overlap(trip[i].u, trip[j].u),
                                "ov_v": inter.overlap(trip[i].v, trip[j].v)})

    if merged is not None:
        mrec = records[T]
        q = mrec["rank99"]
        keep = [inter.truncate(u[t], s[t], vh[t], records[t]["k_keep"], rhos[t]) for t in range(T)]
        sranks = [rec["srank"] for rec in records[:T]]
        cat = col.pooled_erank([s[t, :rhos[t]] for t in range(T)])
        records.append({**where, "kind": "collapse", "subject": merged_label, "srank": mrec["srank"],
                        "srank_max": max(sranks), "erank": mrec["erank"], "erank_cat": cat,
                        **col.ratios(mrec["srank"], mrec["erank"], sranks, cat, settings.collapse_threshold),
                        "rank99": q, "k_keep": [rec["k_keep"] for rec in records[:T]],
                        "retention": col.retention(u[T, :, :q], vh[T, :q, :].mT, keep)})

    spectra = [s[t].detach().to("cpu", torch.float64) for t in range(T)]
    ms = s[T].detach().to("cpu", torch.float64) if merged is not None else None
    return TensorResult(name, g, depth, (m, n), records, spectra, ms)


def _code(base: torch.Tensor | None) -> str:
    from asrmerge.io.tensors import st_code

    return st_code(base.dtype) if base is not None else "F32"


def inspect_tensors(sources: Sources, names: list[str], settings: Settings,
            progress: Progress | None = None) -> Iterator[TensorResult]:
    """Analyse ``names`` one tensor at a time, reading each from every input just before it is needed.

    Args:
        sources: the opened, checked inputs.
        names: the tensors to inspect (:func:`asrmerge.diagnostics.layers.select`).
        settings: what to compute.
        progress: told of every finished tensor.
    Returns:
        one :class:`TensorResult` per name, in order.
    Paper: docs/algorithms.md section 8.
    """
    progress = progress or NoProgress()
    progress.start(len(names), "svd-inspect")
    merged_label = sources.merged.label if sources.merged else "merged"
    for name in names:
        taus, merged, base = sources.read(name, settings.compute)
        yield analyse(name, taus, labels=sources.labels, settings=settings, merged=merged,
                      merged_label=merged_label, base=base)
        del taus, merged, base
        progress.advance(name)
