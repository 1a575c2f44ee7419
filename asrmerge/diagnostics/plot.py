"""``--plot FILE``: one picture of an inspection (PNG or SVG), drawn with matplotlib's Agg backend.

Top row, one panel per layer type that has data: the normalised singular spectra sigma_i / sigma_1 (log
scale), the median over the group's tensors for each input, and the merged update dashed. Bottom row:
effective rank / r by depth for every layer type (inputs' mean solid, merged dashed; the legend below the
axes); the T x T heat maps of the mean relative task interference (pair STI_ij / (sum sigma_i + sum
sigma_j)), coloured from its smallest to its largest value, and of the cosine similarity (-1 to 1), their
diagonal grey (a task against itself has no value); and, with ``--merged``, kappa_s by depth against
gamma_c (else the energy TSV truncation keeps, e_keep, by depth). Tensors that every input leaves at zero
(a frozen encoder) are left out, and the title says how many.

matplotlib is an optional extra (``pip install 'asrmerge[plot]'``) and is imported only here, lazily.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from asrmerge.diagnostics.inspection import TensorResult
from asrmerge.diagnostics.layers import GROUPS
from asrmerge.diagnostics.report import Summary, all_zero, short_label, short_labels
from asrmerge.errors import AsrmergeError, UsageError

FORMATS = (".png", ".svg")
FLOOR = 1e-7  # sigma_i / sigma_1 below this is drawn at the floor (log scale)
COLORS = dict(zip(GROUPS, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:gray"), strict=True))


def check_path(path: str) -> Path:
    """The picture's path, if its suffix is a format we draw and its folder exists; a usage error otherwise."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot tell the picture format from {p.suffix or 'no suffix'!r}", subject=path,
                         hint="name the file .png or .svg")
    if not p.parent.is_dir():
        raise UsageError("its folder does not exist", subject=path, hint="create the folder first")
    return p


def require_matplotlib() -> None:
    """Raise a one-line error naming the extra to install when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise AsrmergeError("--plot needs matplotlib, which is not installed", subject="--plot",
                            hint="pip install 'asrmerge[plot]'") from e


class PlotData:
    """What the picture needs from each tensor: normalised spectra, erank and kappa_s by depth, pair values."""

    def __init__(self, labels: list[str], merged_label: str | None = None, gamma_c: float = 1.0) -> None:
        self.labels = labels
        self.merged_label = merged_label
        self.gamma_c = gamma_c
        self.summary = Summary(labels, merged_label)
        self.spectra: dict[str, list[list[Any]]] = defaultdict(lambda: [[] for _ in range(len(labels) + 1)])
        self.depth: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.tensors = 0
        self.zero = 0  # tensors every input leaves at zero: left out
        self.zero_encoder = True  # ... all of them in the encoder (a frozen encoder)

    def add(self, result: TensorResult) -> None:
        """Take one tensor's spectra and records.

        Args:
            result: what :func:`asrmerge.diagnostics.inspection.analyse` gave for one tensor.
        """
        import numpy as np

        self.summary.add(result)
        if all_zero(result):
            self.zero += 1
            self.zero_encoder = self.zero_encoder and result.group.startswith("encoder.")
            return
        self.tensors += 1
        subjects = [*result.spectra, *([result.merged_spectrum] if result.merged_spectrum is not None else [])]
        for i, s in enumerate(subjects):
            top = float(s[0]) if s.numel() else 0.0
            if top > 0:
                self.spectra[result.group][i].append(np.maximum(s.numpy() / top, FLOOR).astype(np.float32))
        if result.layer is None:
            return
        r = min(result.shape)
        for rec in result.records:
            if rec["kind"] in ("input", "merged"):
                self.depth[(result.group, rec["kind"])][result.layer].append(rec["erank"] / r)
                if rec["kind"] == "input" and rec["e_keep"] is not None:
                    self.depth[(result.group, "e_keep")][result.layer].append(rec["e_keep"])
            elif rec["kind"] == "collapse" and rec["kappa_s"] is not None:
                self.depth[(result.group, "kappa_s")][result.layer].append(rec["kappa_s"])


def _by_depth(ax: Any, data: PlotData, kinds: list[tuple[str, str, str]], ylabel: str, title: str) -> bool:
    """One line per layer type and kind (colour: layer type; style: inputs' mean or merged) against depth."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    handles = []
    layers: set[int] = set()
    kinds_drawn: set[str] = set()
    for g in GROUPS:
        color = COLORS[g]
        drew = False
        for kind, style, _ in kinds:
            series = data.depth.get((g, kind))
            if not series:
                continue
            xs = sorted(series)
            layers.update(xs)
            kinds_drawn.add(kind)
            ax.plot(xs, [float(np.mean(series[x])) for x in xs], style, color=color, markersize=4, linewidth=1.3)
            drew = True
        if drew:
            handles.append(Line2D([], [], color=color, linewidth=3, label=g))
    if len(kinds_drawn) > 1:
        for _, style, name in kinds:
            handles.append(Line2D([], [], color="black", linestyle="--" if "--" in style else "-",
                                  marker=style.lstrip("-"), markersize=4, label=name))
    if layers:
        ax.set_xlim(min(layers) - 0.5, max(layers) + 0.5)
        if len(layers) <= 16:
            ax.set_xticks(sorted(layers))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.ticklabel_format(axis="y", useOffset=False)  # e_keep near 1 would read "1e-13+9.99e-1"
    if kinds[0][0] == "e_keep":
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
    if handles:  # below the axes, where it covers no line
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return bool(handles)


def _heat(ax: Any, fig: Any, matrix: list[list[float | None]] | None, labels: list[str], title: str,
          cmap: str, vmin: float | None, vmax: float | None) -> None:
    """A T x T heat map with its values written in the cells and a grey diagonal, or a note with one input.

    ``vmin``/``vmax`` None: from the smallest to the largest value off the diagonal. When every value is the
    same (one pair, T = 2) a colour scale would say nothing: the cells get one pale colour and no bar.
    """
    import numpy as np
    from matplotlib.colors import ListedColormap

    ax.set_title(title, fontsize=10)
    if matrix is None:
        ax.text(0.5, 0.5, "one input: no pairs", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    values = m[~np.isnan(m)]
    low = float(values.min()) if vmin is None and values.size else vmin
    high = float(values.max()) if vmax is None and values.size else vmax
    flat = values.size == 0 or (vmin is None and vmax is None and np.isclose(low or 0.0, high or 0.0))
    diagonal = np.where(np.eye(len(m), dtype=bool), 1.0, np.nan)
    ax.imshow(np.ma.masked_invalid(diagonal), cmap=ListedColormap(["#d9d9d9"]), vmin=0, vmax=1)
    im = ax.imshow(np.ma.masked_invalid(m), cmap=ListedColormap(["#fde0c5"]) if flat else cmap,
                   vmin=None if flat else low, vmax=None if flat else high)
    names = short_labels(labels)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for (a, b), v in np.ndenumerate(m):
        if a == b:
            ax.text(b, a, "—", ha="center", va="center", fontsize=8, color="#707070")
        elif not np.isnan(v):
            ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if not flat and im.norm(v) > 0.6 else "black")
    if not flat:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def draw(data: PlotData, path: str | Path, title: str | None = None) -> None:
    """Draw the picture and write it to ``path`` (format from the suffix), atomically.

    Args:
        data: the collected :class:`PlotData`.
        path: a ``.png`` or ``.svg`` file name (checked with :func:`check_path`).
        title: the figure title (default: the inputs and the number of tensors).
    Paper: docs/algorithms.md section 8 (the quantities drawn).
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    dest = check_path(str(path))
    groups = [g for g in GROUPS if g in data.spectra]
    fig = plt.figure(figsize=(18, 9.5), dpi=110)
    outer = fig.add_gridspec(2, 1, height_ratios=(1, 1.15), hspace=0.38)
    top = outer[0].subgridspec(1, max(len(groups), 1), wspace=0.28)  # no empty panels
    colors = plt.get_cmap("tab10")
    for c, g in enumerate(groups):
        ax = fig.add_subplot(top[0, c])
        per_subject = data.spectra[g]
        for i, spectra in enumerate(per_subject):
            if not spectra:
                continue
            n = min(len(s) for s in spectra)
            median = np.median(np.stack([s[:n] for s in spectra]), axis=0)
            is_merged = i == len(data.labels)
            label = _merged_name(data.merged_label) if is_merged else short_labels(data.labels)[i]
            ax.plot(np.arange(1, n + 1), median, "--" if is_merged else "-", linewidth=2 if is_merged else 1.2,
                    color="black" if is_merged else colors(i % 10), label=label)
        ax.set_yscale("log")
        low, high = max(FLOOR, ax.get_ylim()[0]), ax.get_ylim()[1]
        ax.set_ylim(low, high)
        # label 1, 0.5, 0.2, 0.1, ... over short ranges, only the decades over long ones
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if high / low < 100 else (1.0,)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        count = max(len(x) for x in per_subject)
        ax.set_title(f"{g} ({count} tensor{'' if count == 1 else 's'})", fontsize=10)
        ax.set_xlabel("index i")
        if c == 0:
            ax.set_ylabel("median σ_i / σ_1")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")  # the spectra fall from the top left: that corner stays empty
    bottom = outer[1].subgridspec(1, 4, wspace=0.4, width_ratios=(1.3, 1, 1, 1.3))
    _by_depth(fig.add_subplot(bottom[0, 0]), data, [("input", "-o", "inputs (mean)"), ("merged", "--x", "merged")],
              "erank / r", "effective rank by depth")
    _heat(fig.add_subplot(bottom[0, 1]), fig, data.summary.matrix("sti_rel"), data.labels,
          "task interference (mean pair sti_rel)", "magma_r", None, None)
    _heat(fig.add_subplot(bottom[0, 2]), fig, data.summary.matrix("cos"), data.labels,
          "cosine of task vectors (mean)", "coolwarm", -1.0, 1.0)
    ax = fig.add_subplot(bottom[0, 3])
    if data.merged_label is not None:
        if _by_depth(ax, data, [("kappa_s", "-o", "")], "κ_s",
                     "κ_s = srank(M) / max_t srank(τ_t) by depth\n(below the dotted line γ_c: rank collapse)"):
            ax.axhline(data.gamma_c, color="black", linewidth=1, linestyle=":")
    else:
        _by_depth(ax, data, [("e_keep", "-o", "")], "e_keep", "energy kept by TSV-M truncation, E(k_keep)")
    names = ", ".join(short_labels(data.labels))
    merged = f"; merged: {short_label(data.merged_label)}" if data.merged_label else ""
    frozen = " (a frozen encoder?)" if data.zero_encoder else ""
    zero = f", {data.zero} more left out: zero in every input{frozen}" if data.zero else ""
    fig.suptitle(title or f"asrmerge svd-inspect: {len(data.labels)} inputs ({names}){merged}; {data.tensors} "
                 f"tensors{zero}", fontsize=12)
    # matplotlib creates the temporary file itself, so the picture gets the usual permissions (umask)
    tmp = str(dest.with_name(f".{dest.name}.{os.getpid()}.tmp{dest.suffix}"))
    try:
        fig.savefig(tmp, format=dest.suffix.lower().lstrip("."), bbox_inches="tight")
        os.replace(tmp, dest)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _merged_name(label: str | None) -> str:
    """The merge's legend entry: its short name, with "merged" said once (not "merged (merged)")."""
    name = short_label(label or "merged")
    return name if "merged" in name.lower() else f"merged: {name}"
