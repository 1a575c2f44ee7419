"""What the commands show on an 80-column terminal: tables that keep the distinguishing end of names and never
cut a number, a progress line whose count and time stay whole, svd-inspect --plot without a screenful of
records, and the summary's note on all-zero (frozen) tensors."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from asrmerge import taskvectors
from asrmerge.cli.common import abbreviate
from tests.conftest import ROOT, read_pty

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(args: list[str], columns: int = 80, cwd: Path | None = None) -> str:
    """``asrmerge ARGS`` with stdout and stderr on a pseudo-terminal ``columns`` wide; the text, styles removed."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "xterm"}
    p = subprocess.Popen([sys.executable, "-m", "asrmerge", *args], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    out = read_pty(master)
    assert p.wait(timeout=600) == 0, out
    return ANSI.sub("", out).replace("\r\n", "\n")


def assert_fits(text: str, columns: int = 80) -> None:
    from rich.cells import cell_len

    wide = [line for line in text.splitlines() if cell_len(line) > columns]
    assert not wide, wide


def test_abbreviate_keeps_the_layer_and_the_module() -> None:
    names = ["model.decoder.layers.5.encoder_attn.k_proj.weight", "model.encoder.layers.5.self_attn.k_proj.weight"]
    assert abbreviate(names, 60) == names
    assert abbreviate(names, 40) == ["m.d.layers.5.encoder_attn.k_proj.weight", "m.e.layers.5.self_attn.k_proj.weight"]
    assert abbreviate(names, 34) == ["m.d.l.5.encoder_attn.k_proj.weight", "m.e.l.5.self_attn.k_proj.weight"]
    assert abbreviate(names, 24) == ["m.d.l.5.e.k_proj.weight", "m.e.l.5.s.k_proj.weight"]
    assert abbreviate(["agricultura-campo", "medicina-tel"], 12) == ["agr…ra-campo", "medicina-tel"]
    assert all(len(n) <= 10 for n in abbreviate(names, 10))


@pytest.fixture(scope="module")
def tvs(tiny_base: Path, tiny_fts: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("term-tvs")
    out = []
    for i, ft in enumerate(tiny_fts):
        taskvectors.make(str(tiny_base), str(ft), str(root / f"tv{i}.safetensors"))
        out.append(str(root / f"tv{i}.safetensors"))
    return out


def test_taskvec_stats_at_80_columns(tvs: list[str]) -> None:
    """Every row names its tensor distinctly (the layer number and module kept), every number whole."""
    text = on_terminal(["taskvec", "--stats", tvs[0]])
    assert_fits(text)
    piped = subprocess.run([sys.executable, "-m", "asrmerge", "taskvec", "--stats", tvs[0]], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    stats = [json.loads(x) for x in piped.stdout.decode().splitlines()]
    rows = [line.split() for line in text.splitlines() if line.startswith(("model.", "m."))]
    assert len(rows) == len(stats) and len({r[0] for r in rows}) == len(stats)
    for r, s in zip(rows, stats, strict=True):
        if "…" in r[0]:  # the middle elided: the end kept
            assert s["tensor"].endswith(r[0].split("…")[-1]) and len(r[0].split("…")[-1]) >= 20, (r, s)
        else:  # leading parts cut to their first letter
            full, short = s["tensor"].split("."), r[0].split(".")
            assert len(full) == len(short) and all(a == b or a[0] == b for a, b in zip(full, short, strict=True))
        rel = "-" if s["rel_norm"] is None else f"{s['rel_norm']:.3%}"
        assert f"{s['norm']:.4g}" in r and f"{s['max_abs']:.3g}" in r and rel in r
    layer = next(r[0] for r in rows if ".self_attn.k_proj" in r[0] or ".s.k_proj" in r[0])
    assert ".0." in layer


def _hyps(tmp_path: Path) -> tuple[Path, Path]:
    """Two systems on three domains, one of them looping: WERs over 300% and wide confidence intervals."""
    refs = {f"{d}-{i}": ("um dois tres quatro", d) for d in ("agricultura-campo", "medicina-tel", "meteo-estudio")
            for i in range(3)}
    a, b = [], []
    for k, (ref, d) in refs.items():
        a.append({"id": k, "text": ref, "domain": d, "hyp": ("todem " * 14 if d == "medicina-tel" else ref)})
        b.append({"id": k, "text": ref, "domain": d, "hyp": "um dois tres" if k.endswith("0") else ref})
    for name, recs in (("a.jsonl", a), ("b.jsonl", b)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    return tmp_path / "a.jsonl", tmp_path / "b.jsonl"


def test_wer_tables_at_80_columns(tmp_path: Path) -> None:
    a, b = _hyps(tmp_path)
    text = on_terminal(["wer", "--compare", str(a), str(b), "--by", "domain"])
    assert_fits(text)
    doc = json.loads(subprocess.run([sys.executable, "-m", "asrmerge", "wer", "--compare", str(a), str(b), "--by",
                                     "domain", "--json"], capture_output=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
    assert doc["a"]["wer"] > 1
    for scope in [doc, *doc["groups"].values()]:
        lo, hi = scope["bootstrap"]["ci95"]
        for number in (f"{100 * scope['a']['wer']:.2f}%", f"{100 * scope['difference']:+.2f}", f"{100 * lo:+.2f}",
                       f"{100 * hi:+.2f}", f"{scope['mapsswe']['p']:.3g}"):
            assert number in text, (number, text)
    first = [line.split()[0] for line in text.splitlines() if "…" in line]
    assert first and all(n.endswith("campo") for n in first)  # only the long domain name is abbreviated, its end kept
    text = on_terminal(["wer", str(a), "--by", "domain"])
    assert_fits(text)
    assert "350.00%" in text and "agricultura-campo" in text  # 14 words for 4: 4 substitutions, 10 insertions


def test_svd_inspect_summary_at_80_columns(tvs: list[str], tiny_base: Path, tiny_fts: list[Path]) -> None:
    text = on_terminal(["svd-inspect", "--base", str(tiny_base), *map(str, tiny_fts[:2]), "--merged", str(tiny_fts[2]),
                        "--summary", "-q"])
    assert_fits(text)
    for header in ("retention", "collapse", "sti_rel", "rank90", "rank99", "e_keep", "erank", "κ_s"):
        assert re.search(rf"(?<![\w…]){header}(?![\w…])", text), header
    # only a layer type's name may lose its middle
    assert all(line.split()[0].endswith("attn") for line in text.splitlines() if "…" in line)


def test_merge_progress_line_at_80_columns() -> None:
    """The tensor name gives way; the bar narrows; done/total and the time left stay whole."""
    from rich.console import Console

    from asrmerge.cli.common import RichProgress

    for columns in (80, 60):
        out = Console(width=columns, file=open(os.devnull, "w"), force_terminal=True)
        p = RichProgress(out)
        p.start(245, "merge tsvm")
        for _ in range(100):
            p.advance("model.decoder.layers.5.encoder_attn_layer_norm.weight")
        shown = Console(width=columns, record=True, file=open(os.devnull, "w"))
        shown.print(p._p.make_tasks_table(p._p.tasks))
        p.stop()
        line = shown.export_text().rstrip("\n")
        assert len(line) <= columns and "\n" not in line, line
        assert re.search(r" 100/245 (-:--:--|\d+:\d\d:\d\d) ", line), line
        assert line.startswith("merge tsvm ") and line.endswith(".weight") and ".l.5." in line, line


def test_plot_on_a_terminal_prints_the_summary_not_the_records(tvs: list[str], tmp_path: Path) -> None:
    png = tmp_path / "r.png"
    text = on_terminal(["svd-inspect", *tvs, "--plot", str(png)])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert '"kind"' not in text and "between tasks" in text and text.rstrip().endswith(f"wrote {png}")


def _frozen_encoder(tv: str, out: Path) -> str:
    """``tv`` with every encoder tensor zero: what a fine-tune with a frozen encoder gives."""
    from safetensors import safe_open

    with safe_open(tv, "pt") as f:
        meta = f.metadata()
    t = load_file(tv)
    save_file({k: torch.zeros_like(v) if k.startswith("model.encoder.") else v for k, v in t.items()}, out,
              metadata=meta)
    return str(out)


def test_all_zero_tensors_are_left_out_and_said(tvs: list[str], tmp_path: Path) -> None:
    """A frozen encoder's tensors (zero in every input) would pull every mean to 0: left out, and counted."""
    frozen = [_frozen_encoder(tv, tmp_path / f"f{i}.safetensors") for i, tv in enumerate(tvs)]
    r = subprocess.run([sys.executable, "-m", "asrmerge", "svd-inspect", *frozen, "--summary", "--json"],
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout)
    assert s["left_out"] == {"zero_tensors": {"encoder.self_attn": 4, "encoder.fc": 2}}
    assert [g["group"] for g in s["groups"]] == ["decoder.self_attn", "decoder.encoder_attn", "decoder.fc", "all"]
    assert s["groups"][-1]["tensors"] == s["tensors"] == 10 and s["groups"][-1]["input"]["erank"]["median"] > 1
    text = on_terminal(["svd-inspect", *frozen, "--summary", "-q"])
    assert ("left out of the averages: 6 tensors that every input leaves at zero (encoder.self_attn 4, "
            "encoder.fc 2; a frozen encoder?)") in " ".join(text.split())
    svg = tmp_path / "frozen.svg"
    r = subprocess.run([sys.executable, "-m", "asrmerge", "svd-inspect", *frozen[:2], "--merged", frozen[2],
                        "--plot", str(svg), "-q"], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr.decode()
    picture = svg.read_text()
    assert "6 more left out: zero in every input (a frozen encoder?)" in picture and "encoder.self_attn" not in picture
    assert "merged (" not in picture and "merged: f2" in picture
