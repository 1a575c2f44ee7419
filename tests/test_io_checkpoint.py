"""Opening checkpoints: folders, shards, files, stdin, canonical names, tied weights, fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from asrmerge.errors import InputError
from asrmerge.io.checkpoint import EMBED, open_checkpoint
from asrmerge.io.tensors import TensorInfo
from asrmerge.io.writer import CheckpointWriter
from tests.factory import tensors


def test_folder_and_file_read_the_same_tensors(tiny_base: Path) -> None:
    ref = tensors(tiny_base)
    with open_checkpoint(str(tiny_base)) as a, open_checkpoint(str(tiny_base / "model.safetensors")) as b:
        assert a.names() == b.names()
        assert "proj_out.weight" not in a.infos
        for name in a.names():
            assert torch.equal(a.get(name), ref[name])
        assert "config.json" in a.support_files() and b.support_files() == {}


def test_sharded_folder_reads_like_one_file(tiny_base: Path, tmp_path: Path) -> None:
    with open_checkpoint(str(tiny_base)) as src:
        infos = list(src.infos.values())
        with CheckpointWriter(f"{tmp_path}/sharded/", infos, metadata={}, shard_size=200_000,
                              support=src.support_files()) as w:
            for i in infos:
                w.write(i.name, src.get(i.name))
        shards = sorted(p.name for p in (tmp_path / "sharded").glob("model-*.safetensors"))
        assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
        index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"]) == set(src.names())
        with open_checkpoint(f"{tmp_path}/sharded") as sh:
            assert set(sh.names()) == set(src.names())
            assert all(torch.equal(sh.get(n), src.get(n)) for n in src.names())
            assert sh.fingerprint() == src.fingerprint()


def test_missing_shard_is_named(tiny_base: Path, tmp_path: Path) -> None:
    with open_checkpoint(str(tiny_base)) as src:
        infos = list(src.infos.values())
        with CheckpointWriter(f"{tmp_path}/s/", infos, metadata={}, shard_size=200_000) as w:
            for i in infos:
                w.write(i.name, src.get(i.name))
    victim = sorted((tmp_path / "s").glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(InputError, match=f"shard {victim.name}.*missing"):
        open_checkpoint(str(tmp_path / "s"))


def test_whispermodel_names_gain_the_model_prefix(tiny_base: Path, tmp_path: Path) -> None:
    ref = tensors(tiny_base)
    bare = {k.removeprefix("model."): v for k, v in ref.items()}
    save_file(bare, tmp_path / "bare.safetensors")
    with open_checkpoint(str(tmp_path / "bare.safetensors")) as c, open_checkpoint(str(tiny_base)) as b:
        assert c.names() == b.names()
        assert c.fingerprint() == b.fingerprint()


def test_tied_proj_out_is_one_tensor_and_must_match(tiny_base: Path, tmp_path: Path) -> None:
    ref = tensors(tiny_base)
    both = {**ref, "proj_out.weight": ref[EMBED].clone()}
    save_file(both, tmp_path / "both.safetensors")
    with open_checkpoint(str(tmp_path / "both.safetensors")) as c:
        assert "proj_out.weight" not in c.infos
        assert torch.equal(c.get(EMBED), ref[EMBED])
    both["proj_out.weight"] = ref[EMBED] + 1
    save_file(both, tmp_path / "differ.safetensors")
    with open_checkpoint(str(tmp_path / "differ.safetensors")) as c, pytest.raises(InputError, match="different values"):
        c.get(EMBED)


def test_fingerprint_ignores_exact_upcasts_and_sees_fine_tunes(tiny_base16: Path, tiny_base: Path,
                                                               tiny_fts: list[Path], tmp_path: Path) -> None:
    ref = tensors(tiny_base16)
    save_file({k: v.float() for k, v in ref.items()}, tmp_path / "up.safetensors")
    with open_checkpoint(str(tiny_base16)) as a, open_checkpoint(str(tmp_path / "up.safetensors")) as b:
        assert a.fingerprint() == b.fingerprint()
        assert a.fingerprint().startswith("fp1:") and len(a.fingerprint()) == 36
    with open_checkpoint(str(tiny_base)) as base, open_checkpoint(str(tiny_fts[0])) as ft:
        assert base.fingerprint() != ft.fingerprint()


def test_folder_without_weights_and_pickled_folder_are_explained(tmp_path: Path, tiny_base: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no model.safetensors"):
        open_checkpoint(str(tmp_path / "empty"))
    pt = tmp_path / "pt"
    shutil.copytree(tiny_base, pt)
    (pt / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, pt / "pytorch_model.bin")
    with pytest.raises(InputError, match="pickled weights.*safe_serialization"):
        open_checkpoint(str(pt))


def test_pickle_is_read_only_where_allowed(tmp_path: Path) -> None:
    torch.save({"dims": {}, "model_state_dict": {}}, tmp_path / "m.pt")
    with pytest.raises(InputError, match="pickle|zip"):
        open_checkpoint(str(tmp_path / "m.pt"))


def test_dtype_is_the_majority_float_dtype(tmp_path: Path) -> None:
    save_file({"big": torch.zeros(100, dtype=torch.float16), "small": torch.zeros(3)}, tmp_path / "m.safetensors")
    with open_checkpoint(str(tmp_path / "m.safetensors")) as c:
        assert c.dtype == "F16"
        assert c.infos["small"] == TensorInfo("small", (3,), "F32")


@pytest.mark.parametrize(("weight_map", "what"), [
    (["model-00001-of-00001.safetensors"], "has a weight_map that is not an object"),
    ({"a": 5}, "tensor 'a' maps to 5, not a file name"),
    ({"a": None}, "tensor 'a' maps to null, not a file name"),
    ({"a": "../elsewhere.safetensors"}, "not a file name in the folder"),
    (None, "has no weight_map"),
])
def test_a_damaged_index_says_what_is_wrong(tmp_path: Path, weight_map: object, what: str) -> None:
    save_file({"a": torch.zeros(2)}, tmp_path / "model-00001-of-00001.safetensors")
    doc = {"metadata": {}} if weight_map is None else {"weight_map": weight_map}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="model.safetensors.index.json") as e:
        open_checkpoint(str(tmp_path))
    assert what in str(e.value)


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000])
def test_an_index_that_is_not_json_says_so(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "model.safetensors.index.json").write_bytes(raw)
    with pytest.raises(InputError, match="model.safetensors.index.json is not JSON"):
        open_checkpoint(str(tmp_path))
