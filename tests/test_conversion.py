"""convert: CTranslate2 and openai-whisper to Hugging Face and back, on synthetic and real Whisper weights."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from asrmerge.assets import packaged_model
from asrmerge.io.checkpoint import open_checkpoint
from tests.conftest import AUDIO, cli
from tests.ct2_writer import ct2_variables, write_model_bin
from tests.factory import tensors


@pytest.fixture()
def ct2_tiny(tiny_base16: Path, tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    sd = tensors(tiny_base16)
    folder = tmp_path / "ct2"
    folder.mkdir()
    write_model_bin(folder / "model.bin", ct2_variables(sd, layers=1, heads=2))
    return folder, sd


def test_ct2_folder_converts_to_the_same_tensors(ct2_tiny, tmp_path: Path) -> None:
    folder, sd = ct2_tiny
    r = cli("convert", str(folder), "-o", f"{tmp_path}/hf/")
    assert r.returncode == 0, r.stderr
    got = tensors(tmp_path / "hf")
    assert set(got) == set(sd)
    assert all(got[n].dtype == sd[n].dtype and torch.equal(got[n], sd[n]) for n in sd)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (cfg["d_model"], cfg["encoder_layers"], cfg["encoder_attention_heads"], cfg["dtype"]) == (16, 1, 2, "float16")


def test_split_parts_in_two_folders(ct2_tiny, tmp_path: Path) -> None:
    folder, sd = ct2_tiny
    data = (folder / "model.bin").read_bytes()
    (folder / "model.bin").unlink()
    (tmp_path / "p2").mkdir()
    (folder / "model.bin.part1").write_bytes(data[: len(data) // 3])
    (tmp_path / "p2" / "model.bin.part2").write_bytes(data[len(data) // 3:])
    out = tmp_path / "hf.safetensors"
    r = cli("convert", str(folder), "--part", str(tmp_path / "p2" / "model.bin.part2"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    got = tensors(out)
    assert all(torch.equal(got[n], sd[n]) for n in sd)
    # without the second part the model is truncated: a clear error, exit 3, no output
    r = cli("convert", str(folder), "-o", str(tmp_path / "x.safetensors"))
    assert r.returncode == 3
    assert b"truncated" in r.stderr and b"model.bin.partN missing" in r.stderr
    assert r.stderr.count(b"\n") == 1
    assert not (tmp_path / "x.safetensors").exists()


def test_int8_ct2_model_is_refused(ct2_tiny, tmp_path: Path) -> None:
    folder, sd = ct2_tiny
    v = ct2_variables(sd, layers=1, heads=2)
    v["encoder/layer_0/ffn/linear_0/weight_scale"] = torch.ones(32)
    write_model_bin(folder / "model.bin", v)
    r = cli("convert", str(folder), "-o", f"{tmp_path}/o/")
    assert r.returncode == 3 and b"int8-quantised" in r.stderr
    assert not (tmp_path / "o").exists()


def test_openai_roundtrip_is_exact(tiny_base: Path, tmp_path: Path) -> None:
    pt = tmp_path / "m.pt"
    r = cli("convert", str(tiny_base), "-o", str(pt))
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(pt, weights_only=True)
    assert ckpt["dims"]["n_audio_state"] == 16 and "encoder.blocks.0.attn.query.weight" in ckpt["model_state_dict"]
    assert "encoder.blocks.0.attn.key.bias" not in ckpt["model_state_dict"]
    r = cli("convert", str(pt), "--config", str(tiny_base), "-o", f"{tmp_path}/back/")
    assert r.returncode == 0, r.stderr
    a, b = tensors(tiny_base), tensors(tmp_path / "back")
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)


def test_the_closing_note_says_the_dtype(ct2_tiny, tmp_path: Path) -> None:
    """fp16 sources stay fp16 (transformers then runs fp16, also on a CPU): the note says so, and how to cast."""
    folder, _ = ct2_tiny
    r = cli("convert", str(folder), "-o", f"{tmp_path}/hf/")
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().splitlines()[-1] == (
        f"wrote {tmp_path}/hf/: fp16 weights, as in {folder} (transformers runs them in fp16 unless given "
        "dtype=torch.float32; --dtype fp32 writes fp32)")
    r = cli("convert", str(folder), "--dtype", "fp32", "-o", str(tmp_path / "w.safetensors"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().splitlines() == [f"wrote {tmp_path}/w.safetensors: fp32 weights"]
    r = cli("convert", str(folder), "-o", f"{tmp_path}/q/", "-q")
    assert b"wrote" not in r.stderr


def test_a_folder_without_tokenizer_is_written_with_a_warning(tiny_asr: Path, tmp_path: Path) -> None:
    """An openai .pt carries no tokenizer: the folder loads in transformers with an empty vocabulary."""
    pt = tmp_path / "m.pt"
    assert cli("convert", str(tiny_asr), "-o", str(pt)).returncode == 0
    r = cli("convert", str(pt), "-o", f"{tmp_path}/back/")
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().splitlines()[0] == (
        f"asrmerge convert: warning: {tmp_path}/back/ has no tokenizer files ({pt} carries none), so transformers "
        "cannot decode with it: convert again with --config DIR, a Hugging Face folder of the same Whisper size")
    assert r.stderr.decode().splitlines()[1].startswith(f"wrote {tmp_path}/back/: ")
    assert (tmp_path / "back" / "model.safetensors").is_file()
    r = cli("convert", str(pt), "--config", str(tiny_asr), "-o", f"{tmp_path}/with/")
    assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr
    assert (tmp_path / "with" / "tokenizer.json").is_file()
    r = cli("convert", str(pt), "-o", str(tmp_path / "w.safetensors"))  # a file never has a tokenizer beside it
    assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr


def test_malicious_pt_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"dims": {}, "model_state_dict": Evil()}, tmp_path / "evil.pt")
    r = cli("convert", str(tmp_path / "evil.pt"), "-o", f"{tmp_path}/o/")
    assert r.returncode == 3
    assert b"never unpickles" in r.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_real_tiny_en_is_bit_exact_and_transcribes(real_tiny_en: Path) -> None:
    """The packaged tiny.en converts losslessly: fused CTranslate2 matrices equal our split ones."""
    folder, _ = packaged_model("packaged:tiny.en")
    raw = _read_ct2(folder / "model.bin")
    hf = tensors(real_tiny_en)
    n_layers = 4
    for i in range(n_layers):
        for part in ("encoder", "decoder"):
            s = f"model.{part}.layers.{i}.self_attn"
            fused = torch.cat([hf[f"{s}.q_proj.weight"], hf[f"{s}.k_proj.weight"], hf[f"{s}.v_proj.weight"]])
            assert torch.equal(fused, raw[f"{part}/layer_{i}/self_attention/linear_0/weight"])
            assert torch.equal(hf[f"model.{part}.layers.{i}.fc2.weight"], raw[f"{part}/layer_{i}/ffn/linear_1/weight"])
        c = f"model.decoder.layers.{i}.encoder_attn"
        assert torch.equal(torch.cat([hf[f"{c}.k_proj.weight"], hf[f"{c}.v_proj.weight"]]),
                           raw[f"decoder/layer_{i}/attention/linear_1/weight"])
    assert torch.equal(hf["model.decoder.embed_tokens.weight"], raw["decoder/embeddings/weight"])
    # every float parameter of the CTranslate2 file is accounted for, bar the zero k biases it stores
    k_bias = sum(384 for _ in range(2 * n_layers)) + 384 * n_layers
    ct2_numel = sum(t.numel() for t in raw.values() if t.dim() > 0)
    assert sum(t.numel() for t in hf.values()) == ct2_numel - k_bias
    assert all(t.dtype == torch.float16 for t in hf.values())

    import soundfile as sf
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(real_tiny_en), dtype=torch.float32)
    audio, sr = sf.read(AUDIO / "jfk.wav")
    text = asr(audio)["text"]
    assert "ask not what your country can do for you" in text


def _read_ct2(path: Path) -> dict[str, torch.Tensor]:
    """A minimal independent reader of CTranslate2 model.bin (the layout in asrmerge/io/ct2.py's docstring)."""
    data = path.read_bytes()
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    def name() -> str:
        return take(struct.unpack("<H", take(2))[0]).rstrip(b"\0").decode()

    take(4), name(), take(4)
    out = {}
    dtypes = {0: torch.float32, 1: torch.int8, 2: torch.int16, 4: torch.float16}
    for _ in range(struct.unpack("<I", take(4))[0]):
        n = name()
        rank = take(1)[0]
        dims = struct.unpack(f"<{rank}I", take(4 * rank))
        dt = dtypes[take(1)[0]]
        nbytes = struct.unpack("<I", take(4))[0]
        out[n] = torch.frombuffer(bytearray(take(nbytes)), dtype=dt).reshape(dims)
    return out


def test_packaged_base_converts_and_knows_portuguese(real_base: Path) -> None:
    gen = json.loads((real_base / "generation_config.json").read_text())
    assert gen["lang_to_id"]["<|pt|>"] == 50267 and gen["task_to_id"]["transcribe"] == 50359
    assert gen["is_multilingual"] is True and len(gen["alignment_heads"]) == 8
    with open_checkpoint(str(real_base)) as c, open_checkpoint("packaged:base") as p:
        assert c.fingerprint() == p.fingerprint()
        assert len(c.names()) == 245
    from transformers import WhisperTokenizer

    tok = WhisperTokenizer.from_pretrained(real_base)
    assert tok.convert_tokens_to_ids("<|0.00|>") == 50364 and len(tok) == 51865
