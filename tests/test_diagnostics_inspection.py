"""svd-inspect's selection, record layout, streaming over checkpoints, summary, and CPU/CUDA agreement."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from asrmerge import taskvectors
from asrmerge.diagnostics.inspection import Settings, analyse, inspect_tensors
from asrmerge.diagnostics.layers import group, layer, select
from asrmerge.diagnostics.report import Summary
from asrmerge.diagnostics.sources import Sources
from asrmerge.errors import InputError, UsageError
from asrmerge.io.checkpoint import open_checkpoint
from asrmerge.io.jsonl import dumps
from tests.factory import tensors

SVD_TINY = 16  # 1+1 layers: encoder 4 attention + 2 FFN, decoder 8 attention + 2 FFN

INPUT_FIELDS = {"tensor", "group", "layer", "shape", "kind", "subject", "input", "fro", "spec", "nuc", "nrank",
                "erank", "srank", "rank90", "rank99", "p", "k_keep", "e_keep", "boost_c", "beta", "boost_j",
                "boost_gain", "spectrum", "rounding_loss"}
TASKS_FIELDS = {"tensor", "group", "layer", "shape", "kind", "T", "k", "norm", "sti", "sti_rel"}
PAIR_FIELDS = {"tensor", "group", "layer", "shape", "kind", "i", "j", "subjects", "k", "norm", "cos", "sti",
               "sti_rel", "ov_u", "ov_v"}
COLLAPSE_FIELDS = {"tensor", "group", "layer", "shape", "kind", "subject", "srank", "srank_max", "erank",
                   "erank_cat", "kappa_s", "kappa_e", "gamma_c", "collapse", "rank99", "k_keep", "retention"}


def test_default_selection_is_the_policy_svd_class(tiny_base: Path) -> None:
    with open_checkpoint(str(tiny_base)) as c:
        infos = list(c.infos.values())
    names = select(infos)
    assert len(names) == SVD_TINY and all(n.endswith(".weight") and "layer_norm" not in n for n in names)
    everything = select(infos, all_2d=True)
    assert set(everything) - set(names) == {"model.decoder.embed_tokens.weight", "model.encoder.embed_positions.weight",
                                            "model.decoder.embed_positions.weight"}
    assert select(infos, include=["*.encoder_attn.*"]) == [n for n in names if ".encoder_attn." in n]
    assert len(select(infos, include=["*.encoder_attn.*"])) == 4
    # globs match with or without the leading "model."
    assert select(infos, include=["decoder.layers.0.fc?.weight"]) == ["model.decoder.layers.0.fc1.weight",
                                                                      "model.decoder.layers.0.fc2.weight"]
    assert len(select(infos, exclude=["model.decoder.*", "*fc1*"])) == 5
    assert select(infos, include=["nothing*"]) == []


@pytest.mark.parametrize("name,g,depth", [
    ("model.encoder.layers.3.self_attn.q_proj.weight", "encoder.self_attn", 3),
    ("model.encoder.layers.11.fc2.weight", "encoder.fc", 11),
    ("model.decoder.layers.0.encoder_attn.out_proj.weight", "decoder.encoder_attn", 0),
    ("model.decoder.layers.5.self_attn.v_proj.weight", "decoder.self_attn", 5),
    ("model.decoder.layers.2.fc1.weight", "decoder.fc", 2),
    ("encoder.layers.4.fc1.weight", "encoder.fc", 4),
    ("model.decoder.embed_tokens.weight", "other", None),
])
def test_layer_type_and_depth(name: str, g: str, depth: int | None) -> None:
    assert group(name) == g and layer(name) == depth


def test_streaming_over_task_vectors_matches_an_independent_svd(tiny_tvs: list[str]) -> None:
    """Every record has the documented fields; fro and the spectrum agree with torch on the file's tensor."""
    with Sources(tiny_tvs) as src:
        names = select(src.ref.infos.values())
        results = list(inspect_tensors(src, names, Settings()))
    assert [r.name for r in results] == names
    raw = tensors(Path(tiny_tvs[1]))
    for res in results:
        kinds = [r["kind"] for r in res.records]
        assert kinds == ["input"] * 3 + ["tasks"] + ["pair"] * 3
        for rec in res.records:
            want = {"input": INPUT_FIELDS, "tasks": TASKS_FIELDS, "pair": PAIR_FIELDS}[rec["kind"]]
            assert set(rec) == want, set(rec) ^ want
            json.loads(dumps(rec))  # JSON-ready: no NaN, no tensors
        rec = res.records[1]
        a = raw[res.name].double()
        assert rec["subject"] == tiny_tvs[1] and rec["input"] == 1 and rec["shape"] == list(a.shape)
        assert rec["fro"] == pytest.approx(float(torch.linalg.matrix_norm(a)), rel=1e-5)
        assert rec["spectrum"] == pytest.approx(torch.linalg.svdvals(a).tolist(), rel=1e-4, abs=1e-9)
        assert rec["p"] == pytest.approx(1 / 3) and rec["rounding_loss"] is None
        assert [(p["i"], p["j"]) for p in res.records[4:]] == [(0, 1), (0, 2), (1, 2)]


def test_fine_tunes_with_a_base_give_the_task_vectors_numbers(tiny_base: Path, tiny_fts: list[Path],
                                                                tiny_tvs: list[str]) -> None:
    def numbers(src: Sources) -> list[dict]:
        names = select(src.ref.infos.values(), include=["*fc1*", "*q_proj*"])
        return [{k: v for k, v in r.items() if k not in ("subject", "subjects", "rounding_loss")}
                for res in inspect_tensors(src, names, Settings()) for r in res.records]

    with Sources([str(f) for f in tiny_fts], base=str(tiny_base)) as a, Sources(tiny_tvs) as b:
        got, want = numbers(a), numbers(b)
    assert len(got) == len(want) == 5 * 7  # 3 q_proj + 2 fc1, 3 inputs + tasks + 3 pairs
    for x, y in zip(got, want, strict=True):
        for k, v in y.items():
            assert x[k] == (pytest.approx(v, rel=1e-4, abs=1e-9) if isinstance(v, float) else v), k


def test_merged_records_and_rounding_loss(tiny_base: Path, tiny_fts: list[Path]) -> None:
    with Sources([str(f) for f in tiny_fts[:2]], base=str(tiny_base), merged=str(tiny_fts[2])) as src:
        res = next(inspect_tensors(src, select(src.ref.infos.values()), Settings()))
    kinds = [r["kind"] for r in res.records]
    assert kinds == ["input", "input", "merged", "tasks", "pair", "collapse"]
    merged, coll = res.records[2], res.records[-1]
    assert set(merged) == INPUT_FIELDS and set(coll) == COLLAPSE_FIELDS
    assert merged["subject"] == str(tiny_fts[2]) and merged["input"] is None
    assert coll["kappa_s"] == pytest.approx(merged["srank"] / max(r["srank"] for r in res.records[:2]))
    assert len(coll["retention"]) == 2 and all(0 <= r <= 1 + 1e-5 for r in coll["retention"])
    # fp32 base, updates that are differences of fp32 models: nothing is lost by storing W_0 + tau in fp32
    assert [r["rounding_loss"] for r in res.records[:3]] == [0.0, 0.0, 0.0]
    assert res.merged_spectrum is not None and len(res.spectra) == 2


def test_one_input_has_no_pairs_and_keeps_everything(tiny_tvs: list[str]) -> None:
    with Sources(tiny_tvs[:1]) as src:
        res = next(inspect_tensors(src, select(src.ref.infos.values()), Settings()))
    assert [r["kind"] for r in res.records] == ["input"]
    rec = res.records[0]
    assert rec["p"] == 1.0 and rec["k_keep"] == rec["nrank"] and rec["e_keep"] == pytest.approx(1.0)


def test_no_pairs_needs_no_singular_vectors(tiny_tvs: list[str]) -> None:
    with Sources(tiny_tvs) as src:
        res = next(inspect_tensors(src, select(src.ref.infos.values()), Settings(pairs=False)))
    assert [r["kind"] for r in res.records] == ["input"] * 3


def test_sources_refuse_what_does_not_belong_together(tiny_base: Path, tiny_base16: Path, tiny_fts: list[Path],
                                                      tiny_tvs: list[str], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="a model, not a task vector"):
        Sources([str(tiny_fts[0])])
    with pytest.raises(UsageError, match="task vector, not a base model"):
        Sources([str(tiny_fts[0])], base=tiny_tvs[0])
    with pytest.raises(UsageError, match="merged model"):
        Sources(tiny_tvs, merged=str(tiny_fts[0]))
    with pytest.raises(UsageError, match="stdin"):
        Sources(["-", "-"])
    with pytest.raises(InputError, match="was made from base"):
        Sources(tiny_tvs, base=str(tiny_base16))  # same shapes, other weights
    other = tmp_path / "tv16.safetensors"
    taskvectors.make(str(tiny_base16), str(tiny_fts[0]), str(other))
    with pytest.raises(InputError, match="inspect task vectors of one base model together"):
        Sources([tiny_tvs[0], str(other)])


def test_summary_is_the_mean_and_median_of_the_records(tiny_tvs: list[str]) -> None:
    with Sources(tiny_tvs) as src:
        results = list(inspect_tensors(src, select(src.ref.infos.values()), Settings()))
    summary = Summary(tiny_tvs)
    for r in results:
        summary.add(r)
    s = summary.result()
    assert s["tensors"] == SVD_TINY and s["subjects"] == tiny_tvs and s["merged"] is None
    assert [g["group"] for g in s["groups"]] == ["encoder.self_attn", "encoder.fc", "decoder.self_attn",
                                                 "decoder.encoder_attn", "decoder.fc", "all"]
    fc = [r for res in results if res.group == "decoder.fc" for r in res.records]
    g = next(g for g in s["groups"] if g["group"] == "decoder.fc")
    eranks = [r["erank"] for r in fc if r["kind"] == "input"]
    assert g["tensors"] == 2 and len(eranks) == 6
    assert g["input"]["erank"] == {"mean": pytest.approx(statistics.fmean(eranks)),
                                   "median": pytest.approx(statistics.median(eranks))}
    cos = [r["cos"] for r in fc if r["kind"] == "pair"]
    assert g["pairs"]["cos"]["mean"] == pytest.approx(statistics.fmean(cos))
    assert g["merged"] is None and g["collapse"] is None
    m = s["interference"]
    assert m is not None and [m[i][i] for i in range(3)] == [None] * 3
    assert m[0][1] == m[1][0] == pytest.approx(statistics.fmean(
        [r["sti_rel"] for res in results for r in res.records if r["kind"] == "pair" and (r["i"], r["j"]) == (0, 1)]))
    json.loads(dumps(s))


@pytest.mark.cuda
def test_cpu_and_cuda_agree() -> None:
    """Section 7.14: SVD-family results agree between CPU and CUDA to 1e-4 relative (fp32)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 256, 64, generator=g) @ torch.diag(torch.logspace(0, -3, 64))
    m = x.sum(0)
    cpu = analyse("model.encoder.layers.0.fc1.weight", x, labels=list("abc"), settings=Settings(device="cpu"), merged=m)
    gpu = analyse("model.encoder.layers.0.fc1.weight", x, labels=list("abc"), settings=Settings(device="cuda"), merged=m)
    for a, b in zip(cpu.records, gpu.records, strict=True):
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, rel=1e-4, abs=1e-7), k
            elif k == "spectrum":
                assert b[k] == pytest.approx(v, rel=1e-4, abs=1e-7)


def test_short_labels_stay_distinct() -> None:
    from asrmerge.diagnostics.report import short_label, short_labels

    assert short_label("runs/news/tv.safetensors") == "tv" and short_label("ft-kids/") == "ft-kids"
    assert short_label("-") == "-" and short_label("a-very-long-task-vector-name.st") == "a-ve…ctor-name"
    assert short_labels(["a/model.safetensors", "b/model.safetensors"]) == ["0:model", "1:model"]
    assert short_labels(["news.st", "kids.st"]) == ["news", "kids"]
