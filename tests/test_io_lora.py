"""PEFT LoRA adapters as inputs: made by peft itself on the tiny random Whisper, compared with peft's own
merge_and_unload(); refusals and base checks as one-line errors; adapters in taskvec, merge and svd-inspect."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from asrmerge.cli.main import app
from tests.conftest import cli
from tests.factory import make_lora, make_whisper, tensors

EMBED = "model.decoder.embed_tokens.weight"
KINDS = {
    "plain": dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),
    "rslora": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=True),
    "patterns": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1", "fc2"],
                     rank_pattern={"fc1": 2, "decoder.layers.0.self_attn.q_proj": 3},
                     alpha_pattern={"v_proj": 3, r"encoder\.layers\.\d+\.fc2": 5}),
    "modules_to_save": dict(r=2, target_modules=["q_proj"], modules_to_save=["conv1", "encoder.layer_norm"],
                            bias="lora_only"),
    "layers": dict(r=2, target_modules=["embed_tokens", "conv1", "conv2", "proj_out"]),
    "extras": dict(r=2, target_modules=["fc2"], lora_bias=True, trainable_token_indices=[3, 5, 50257]),
    "bias_all": dict(r=3, target_modules=["v_proj"], bias="all"),
}


@pytest.fixture(scope="module")
def adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {k: make_lora(tiny_base, root / k, seed=10 + i, **cfg) for i, (k, cfg) in enumerate(KINDS.items())}


def peft_merged(base: Path, adapter: Path):
    """peft's own merge_and_unload() of ``adapter`` into ``base``."""
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = WhisperForConditionalGeneration.from_pretrained(base)
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stderr


def one_line(err: str, cmd: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"asrmerge {cmd}: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-6) -> bool:
    err = float((actual.double() - expected.double()).norm())
    return err <= tol * float(expected.double().norm()) if float(expected.norm()) > 0 else err == 0.0


@pytest.mark.parametrize("kind", list(KINDS))
def test_taskvec_of_an_adapter_is_peft_merge_and_unload_minus_the_base(kind: str, adapters: dict[str, Path],
                                                                      tiny_base: Path, tmp_path: Path) -> None:
    code, err = invoke("taskvec", str(tiny_base), str(adapters[kind]), "-o", str(tmp_path / "tv.safetensors"))
    assert code == 0, err
    tv = load_file(tmp_path / "tv.safetensors")
    base = tensors(tiny_base)
    merged = peft_merged(tiny_base, adapters[kind])
    state = merged.state_dict()
    assert merged.proj_out.weight.data_ptr() == merged.model.decoder.embed_tokens.weight.data_ptr()  # still tied
    assert set(tv) == set(base)
    changed = 0
    for name, t in tv.items():
        delta = state[name] - base[name]
        assert close(t, delta), f"{kind}: {name}"
        changed += bool(delta.any())
    assert changed >= 3  # the adapter really changes several tensors


def test_apply_an_adapter_gives_the_peft_merged_model(adapters: dict[str, Path], tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "applied"
    code, err = invoke("taskvec", "--apply", str(tiny_base), str(adapters["patterns"]), "-o", f"{out}/")
    assert code == 0, err
    got = tensors(out)
    state = peft_merged(tiny_base, adapters["patterns"]).state_dict()
    for name, t in got.items():
        assert close(t - tensors(tiny_base)[name], state[name] - tensors(tiny_base)[name], 1e-5), name
    from transformers import WhisperForConditionalGeneration

    WhisperForConditionalGeneration.from_pretrained(out)


def test_a_pickled_adapter_model_bin_reads_the_same(adapters: dict[str, Path], tiny_base: Path, tmp_path: Path) -> None:
    """Older peft saved adapter_model.bin (a pickle): read with torch.load(weights_only=True), same tau."""
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(adapters["plain"] / "adapter_config.json", old)
    torch.save(load_file(adapters["plain"] / "adapter_model.safetensors"), old / "adapter_model.bin")
    for src, dst in ((adapters["plain"], "a.st"), (old, "b.st")):
        code, err = invoke("taskvec", str(tiny_base), str(src), "-o", str(tmp_path / dst))
        assert code == 0, err
    a, b = load_file(tmp_path / "a.st"), load_file(tmp_path / "b.st")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_adapter_factors_are_kept_per_tensor(adapters: dict[str, Path], tiny_base: Path) -> None:
    from asrmerge.io.checkpoint import open_checkpoint

    with open_checkpoint(str(tiny_base)) as base, open_checkpoint(str(adapters["patterns"]), base=base) as ad:
        assert ad.is_adapter and ad.kind == "taskvec" and ad.base_fingerprint() == base.fingerprint()
        ranks = {n: f.rank for n in ad.names() if (f := ad.lora_factors(n)) is not None}
        assert ranks["model.decoder.layers.0.self_attn.q_proj.weight"] == 3  # rank_pattern by full name
        assert ranks["model.encoder.layers.0.self_attn.q_proj.weight"] == 4
        assert ranks["model.encoder.layers.0.fc1.weight"] == 2
        assert ranks["model.encoder.layers.0.self_attn.k_proj.weight"] == 0  # untouched: rank 0
        f = ad.lora_factors("model.encoder.layers.0.fc2.weight")
        assert f is not None and f.scale == pytest.approx(5 / 4)  # alpha_pattern as a regex
        f = ad.lora_factors("model.decoder.layers.0.self_attn.v_proj.weight")
        assert f is not None and f.scale == pytest.approx(3 / 4)
        name = "model.encoder.layers.0.fc2.weight"
        fc2 = ad.lora_factors(name)
        assert fc2 is not None and torch.allclose(fc2.delta(), ad.get(name), rtol=0, atol=1e-12)
        assert ad.lora_factors("model.encoder.layers.0.fc1.bias") is None


def test_dora_and_other_peft_types_are_refused(tiny_base: Path, tmp_path: Path) -> None:
    dora = make_lora(tiny_base, tmp_path / "dora", seed=1, r=2, target_modules=["q_proj"], use_dora=True)
    code, err = invoke("taskvec", str(tiny_base), str(dora), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "DoRA", "merge_and_unload")
    ia3 = tmp_path / "ia3"
    from peft import IA3Config, get_peft_model
    from transformers import WhisperForConditionalGeneration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_peft_model(WhisperForConditionalGeneration.from_pretrained(tiny_base),
                       IA3Config(target_modules=["k_proj", "fc2"], feedforward_modules=["fc2"])).save_pretrained(ia3)
    code, err = invoke("merge", "--algo", "ta", "--base", str(tiny_base), str(ia3), str(dora), "-o", str(tmp_path / "m.st"))
    assert code == 3
    one_line(err, "merge", "IA3", "LoRA adapters only")
    assert not (tmp_path / "m.st").exists() and not (tmp_path / "x.st").exists()


def edited(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "adapter_config.json").read_text())
    cfg.update(changes)
    (dst / "adapter_config.json").write_text(json.dumps(cfg))
    return dst


def test_unreadable_adapters_are_refused_in_one_line(adapters: dict[str, Path], tiny_base: Path, tmp_path: Path) -> None:
    pissa = edited(adapters["plain"], tmp_path / "pissa", init_lora_weights="pissa_niter_4")
    code, err = invoke("taskvec", str(tiny_base), str(pissa), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "init_lora_weights=pissa_niter_4", "path_initial_model_for_weight_conversion")
    odd = edited(adapters["plain"], tmp_path / "odd")
    sd = load_file(odd / "adapter_model.safetensors")
    sd["base_model.model.model.encoder.layers.0.fc1.lora_E"] = torch.zeros(4)
    save_file(sd, odd / "adapter_model.safetensors")
    code, err = invoke("taskvec", str(tiny_base), str(odd), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "lora_E", "does not know")
    tied = make_lora(tiny_base, tmp_path / "tied", seed=3, r=2, target_modules=["v_proj"], modules_to_save=["proj_out"])
    code, err = invoke("taskvec", str(tiny_base), str(tied), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "unties", "proj_out")
    wrong_rank = edited(adapters["plain"], tmp_path / "rank", r=8)
    code, err = invoke("taskvec", str(tiny_base), str(wrong_rank), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "gives rank 8", "damaged")
    (wrong_rank / "adapter_model.safetensors").unlink()
    code, err = invoke("taskvec", str(tiny_base), str(wrong_rank), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "adapter_model.safetensors")
    assert not (tmp_path / "x.st").exists()


def test_the_adapter_is_checked_against_the_base(adapters: dict[str, Path], tiny_base: Path, tiny_fts: list[Path],
                                                 tmp_path: Path) -> None:
    wide = make_whisper(tmp_path / "wide", seed=0, d_model=32, ffn=64)
    other = make_lora(wide, tmp_path / "other", seed=1, r=2, target_modules=["q_proj"])
    code, err = invoke("taskvec", str(tiny_base), str(other), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "q_proj.weight: shape [32, 32] vs [16, 16]", str(wide))
    named = edited(adapters["plain"], tmp_path / "named", base_model_name_or_path="openai/whisper-small.en")
    code, err = invoke("taskvec", str(tiny_base), str(named), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", "openai/whisper-small.en (width 768, vocabulary 51864)", "width 16 and vocabulary 51865")
    moved = edited(adapters["plain"], tmp_path / "moved", base_model_name_or_path=str(tiny_fts[0]))
    code, err = invoke("taskvec", str(tiny_base), str(moved), "-o", str(tmp_path / "x.st"))
    assert code == 3
    one_line(err, "taskvec", f"was trained on {tiny_fts[0]}", "fp1:")
    copy = shutil.copytree(tiny_base, tmp_path / "copy")  # the same weights elsewhere: accepted
    code, err = invoke("taskvec", str(copy), str(adapters["plain"]), "-o", str(tmp_path / "x.st"))
    assert code == 0, err


def test_an_adapter_needs_its_base(adapters: dict[str, Path], tiny_base: Path, tmp_path: Path) -> None:
    """Through real processes: exit 2 and a hint that names --base (and taskvec --apply for transcribe)."""
    ad = str(adapters["plain"])
    r = cli("svd-inspect", ad, ad)
    assert r.returncode == 2
    one_line(r.stderr.decode(), "svd-inspect", "is a PEFT LoRA adapter", "--base BASE")
    r = cli("merge", "--algo", "ta", ad, ad, "-o", str(tmp_path / "m.st"))
    assert r.returncode == 2
    one_line(r.stderr.decode(), "merge", "is a PEFT LoRA adapter", "--base BASE")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "x.wav"}\n')
    r = cli("transcribe", ad, str(manifest))
    assert r.returncode == 2
    one_line(r.stderr.decode(), "transcribe", "is a PEFT LoRA adapter", "asrmerge taskvec --apply BASE ADAPTER")


def test_merge_mixes_fine_tunes_task_vectors_and_adapters(adapters: dict[str, Path], tiny_base: Path,
                                                          tiny_fts: list[Path], tmp_path: Path) -> None:
    """merge --base BASE FT ADAPTER TV equals the same merge of the three task vectors (peft's for the adapter)."""
    from asrmerge.merge.api import merge

    code, err = invoke("taskvec", str(tiny_base), str(tiny_fts[1]), "-o", str(tmp_path / "tv1.st"))
    assert code == 0, err
    base = tensors(tiny_base)
    state = peft_merged(tiny_base, adapters["rslora"]).state_dict()
    taus = [{n: tensors(tiny_fts[0])[n] - base[n] for n in base}, {n: state[n] - base[n] for n in base},
            load_file(tmp_path / "tv1.st")]
    for algo, memory in (("tsvm", "512MiB"), ("ties", "16KiB")):  # ties streams the large tensors in row chunks
        out = tmp_path / f"{algo}.st"
        code, err = invoke("merge", "--algo", algo, "--base", str(tiny_base), str(tiny_fts[0]), str(adapters["rslora"]),
                           str(tmp_path / "tv1.st"), "--memory", memory, "-o", str(out))
        assert code == 0, err
        expected = merge(algo, taus, base=base, taskvecs=True)
        assert isinstance(expected, dict)
        got = load_file(out)
        for n in base:
            assert close(got[n] - base[n], expected[n] - base[n], 1e-5), f"{algo} {n}"
        with safe_open(out, "pt") as f:
            meta = f.metadata()
        assert json.loads(meta["asrmerge.input_kinds"]) == ["model", "lora", "taskvec"]


def test_svd_inspect_sees_each_adapters_rank(adapters: dict[str, Path], tiny_base: Path) -> None:
    r = CliRunner().invoke(app, ["svd-inspect", "--base", str(tiny_base), str(adapters["plain"]),
                                 str(adapters["patterns"]), "--no-pairs"])
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    ranks = {(x["subject"], x["tensor"]): x["nrank"] for x in recs if x["kind"] == "input"}
    assert ranks[(str(adapters["plain"]), "model.encoder.layers.0.fc1.weight")] == 4
    assert ranks[(str(adapters["patterns"]), "model.encoder.layers.0.fc1.weight")] == 2
    assert ranks[(str(adapters["patterns"]), "model.decoder.layers.0.self_attn.q_proj.weight")] == 3
    assert ranks[(str(adapters["patterns"]), "model.decoder.layers.0.self_attn.k_proj.weight")] == 0
