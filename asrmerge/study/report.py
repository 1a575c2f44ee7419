"""A study's results: the paper-style table, per-domain WER, the sweeps, significance, a chart.

Columns: ID (mean test WER over the fine-tunes' domains), OOD (over the test domains without a
fine-tune), all (over every test domain), and one per extra set: the mean over its languages when its
records name them (CER for languages written without spaces), else its corpus WER. Domain means are
unweighted, as in the paper. Every path written is relative to the study folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asrmerge.study.plan import CER_LANGS, fmt

OWN = "fine-tunes (own domain)"


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


class Table:
    """Every system's figures, read from the score files.

    Args:
        root: the study folder.
        ids: the fine-tunes' domains; ood: the other test domains.
        extras: the extra sets' names; languages: the languages of each.
        files: system -> set -> score file (``test``, each extra, ``NAME:cer``).
        own: fine-tune NAME -> its score on its own domain.
        systems: merge systems (algorithms and beta sweep) -> kind, model, lambda, dev WER per lambda.
    """

    def __init__(self, root: Path, ids: list[str], ood: list[str], extras: list[str],
                 languages: dict[str, list[str]], files: dict[str, dict[str, str]], own: dict[str, str],
                 systems: dict[str, dict[str, Any]]) -> None:
        self.root, self.ids, self.ood, self.extras, self.systems = root, ids, ood, extras, systems
        load = self._load
        self.docs = {s: {k: load(f) for k, f in sets.items()} for s, sets in files.items()}
        self.own = {n: load(f)["groups"][n] for n, f in own.items()}
        self.rows: dict[str, dict[str, float | None]] = {}
        for name in self.docs:
            if name in systems and systems[name]["kind"] == "beta":
                continue
            self.rows[name] = self.row(name, languages)
        self.rows = self._ordered(languages)
        self.betas = {n: self.row(n, languages) for n, s in systems.items() if s["kind"] == "beta"}

    def _load(self, f: str) -> dict[str, Any]:
        return json.loads((self.root / f).read_text())

    def _ordered(self, languages: dict[str, list[str]]) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        if "zero-shot" in self.docs:
            out["zero-shot"] = self.rows["zero-shot"]
        out[OWN] = {"id": _mean([self.own[n]["wer"] for n in self.ids]), "ood": None, "all": None,
                    **{e: None for e in self.extras}}
        if "joint" in self.docs:
            out["joint"] = self.rows["joint"]
        out.update({k: v for k, v in self.rows.items() if k in self.systems})
        return out

    def row(self, name: str, languages: dict[str, list[str]]) -> dict[str, float | None]:
        groups = self.docs[name]["test"]["groups"]
        r: dict[str, float | None] = {
            "id": _mean([groups[d]["wer"] for d in self.ids if d in groups]),
            "ood": _mean([groups[d]["wer"] for d in self.ood if d in groups]),
            "all": _mean([groups[d]["wer"] for d in (*self.ids, *self.ood) if d in groups])}
        for e in self.extras:
            doc = self.docs[name][e]
            if languages[e]:
                cer = self.docs[name].get(f"{e}:cer")
                per = [cer["groups"][g]["cer"] if cer and g in CER_LANGS else fig["wer"]
                       for g, fig in doc["groups"].items()]
                r[e] = _mean(per)
            else:
                r[e] = doc["wer"] if "wer" in doc else doc["micro"]["wer"]
        return r

    def per_domain(self) -> list[dict[str, Any]]:
        out = []
        for name in self.rows:
            if name == OWN:
                out += [{"system": f"fine-tune:{n}", "domain": n, **self.own[n]} for n in self.ids]
                continue
            groups = self.docs[name]["test"]["groups"]
            out += [{"system": name, "domain": d, **groups[d]} for d in (*self.ids, *self.ood) if d in groups]
        return out


def write(root: Path, t: Table, best: str, compare: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    """results.md, table.json, per-domain.jsonl and chart.png (when matplotlib is there) in ``root``.

    Returns:
        results.md's text.
    """
    cols = ["id", "ood", "all", *t.extras]
    heads = ["ID", "OOD", "all", *t.extras]
    lines = ["# Multi-domain merge study", "",
             f"Base `{meta['base']}`; {len(t.ids)} fine-tunes, each on its own domain ("
             + ", ".join(f"{n}: `{p}`" for n, p in meta["finetunes"].items()) + ")"
             + (f"; joint fine-tune `{meta['joint']}`" if meta["joint"] else "")
             + f". In-domain (ID): {', '.join(t.ids)}; out-of-domain (OOD): {', '.join(t.ood) or 'none'}"
             + (f"; extra sets: {', '.join(t.extras)}" if t.extras else "")
             + ". Lambda chosen per algorithm on the ID dev sets (mean WER), test scored at it. WER % "
             f"(normalizer {meta['normalizer']}), domain means unweighted; lower is better.", "",
             "| system | lambda | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(cols)]
    for name, r in t.rows.items():
        s = t.systems.get(name)
        lam = "—" if s is None else ("default" if s["lam"] is None else fmt(s["lam"]))
        mark = " (best)" if name == best else ""
        lines.append(f"| {name}{mark} | {lam} | " + " | ".join(_pct(r[c]) for c in cols) + " |")
    domains = [*t.ids, *t.ood]
    lines += ["", "## Per domain (test WER %)", "", "| system | " + " | ".join(domains) + " |",
              "|---|" + "---|" * len(domains)]
    for name in t.rows:
        if name == OWN:
            cells = [_pct(t.own[d]["wer"]) if d in t.own else "—" for d in domains]
        else:
            groups = t.docs[name]["test"]["groups"]
            cells = [_pct(groups.get(d, {}).get("wer")) for d in domains]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    swept = {n: s for n, s in t.systems.items() if s["kind"] == "merge" and s["dev"]}
    if swept:
        lines += ["", "## Lambda sweep (ID dev WER %)", "", "| algorithm | dev WER by lambda | chosen |", "|---|---|---|"]
        for n, s in swept.items():
            lines.append(f"| {n} | " + ", ".join(f"{k}: {_pct(v)}" for k, v in s["dev"].items())
                         + f" | {fmt(s['lam'])} |")
    if t.betas:
        lam = next(iter(t.systems[n] for n in t.systems if t.systems[n]["kind"] == "beta"))["lam"]
        lines += ["", f"## BoostedTSV-M beta sweep (lambda {'default' if lam is None else fmt(lam)}; test WER %)", "",
                  "| beta | " + " | ".join(heads) + " |", "|---|" + "---|" * len(cols)]
        for n, r in t.betas.items():
            lines.append(f"| {fmt(t.systems[n]['beta'])} | " + " | ".join(_pct(r[c]) for c in cols) + " |")
    if compare:
        lines += ["", f"## Significance: {best} (A, the best merge on all test domains) against B", "",
                  "| B | utterances | WER A | WER B | A - B | MAPSSWE W | p | bootstrap 95% CI of A - B |",
                  "|---|---|---|---|---|---|---|---|"]
        for b, doc in compare.items():
            ms, ci, diff = doc["mapsswe"], doc["bootstrap"]["ci95"], doc["difference"]
            cells = [b, str(doc["utterances"]), _pct(doc["a"]["wer"]), _pct(doc["b"]["wer"]),
                     "—" if diff is None else f"{100 * diff:+.2f}", "—" if ms["w"] is None else f"{ms['w']:.3f}",
                     "—" if ms["p"] is None else f"{ms['p']:.3g}",
                     "—" if ci is None else f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "MAPSSWE over utterances, two-sided; " + ", ".join(
            f"against {b}: {'significant' if d['mapsswe']['significant'] else 'not significant'} at "
            f"{d['mapsswe']['alpha']}" for b, d in compare.items()) + "."]
    if meta.get("same_as_best"):
        lines += ["", f"Not compared with {best}: {', '.join(meta['same_as_best'])} (the same transcript of every "
                  "test utterance; a significance test of identical outputs says nothing)."]
    files = ["`commands.sh` (every asrmerge command, in order: `bash commands.sh` replays the study)",
             "`table.json`", "`per-domain.jsonl`", "`svd-summary.json` (svd-inspect of the task vectors and the "
             "inspected merge)"]
    if meta["plot"]:
        files += ["`svd-inspect.png`", "`chart.png`"]
    lines += ["", "## Run", "", f"Machine: {meta['machine']}, {meta['date']}. Wall time {meta['wall_s']:.0f} s ("
              + ", ".join(f"{k} {v:.0f} s" for k, v in meta["step_s"].items()) + f"); {meta['ran']} steps run, "
              f"{meta['kept']} kept from an earlier run.", "", "Files: " + ", ".join(files) + "."]
    text = "\n".join(lines) + "\n"
    (root / "per-domain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in t.per_domain()))
    (root / "table.json").write_text(json.dumps(
        {"columns": cols, "rows": t.rows, "betas": t.betas,
         "lambda": {n: {"chosen": s["lam"], "dev": s.get("dev", {})} for n, s in t.systems.items()
                    if s["kind"] == "merge"},
         "compare": compare, "meta": meta}, indent=2) + "\n")
    if meta["plot"]:
        _chart(root / "chart.png", t.rows, cols, heads)
    (root / "results.md").write_text(text)
    return text


def _chart(path: Path, rows: dict[str, dict[str, float | None]], cols: list[str], heads: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(names) + 2), 4.5))
    width = 0.8 / len(cols)
    for i, (key, label) in enumerate(zip(cols, heads, strict=True)):
        ax.bar([j + i * width for j in range(len(names))], [100 * (rows[n][key] or 0) for n in names], width,
               label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("WER %")
    ax.set_title("Merged vs fine-tuned vs zero-shot")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
