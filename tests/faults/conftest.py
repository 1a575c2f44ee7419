"""Inputs the fault cases share (read-only): tiny checkpoints, earlier outputs, pickles, damaged files."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.faults.files import HEADERS, evil


@dataclass
class World:
    """Inputs every case may read, never write."""

    root: Path
    base: Path  # tiny Whisper, Hugging Face folder (no asrmerge metadata)
    ft: Path
    ft2: Path
    tv: Path  # a task vector file written by asrmerge
    model_out: Path  # a model folder written by asrmerge (taskvec --apply)
    big: Path  # base's tensors with one value 1e6 (fp16 cannot hold it)
    asr: Path  # tiny Whisper with the real tokenizer
    asr_nan: Path  # the same with one NaN weight
    manifest: Path  # one utterance (absolute audio path): a second of noise
    marker: Path  # created if anything ever unpickles one of the pickles
    pickles: dict[str, Path]
    headers: dict[str, Path]

    def transcript(self, n: int = 2) -> bytes:
        """An earlier output of transcribe (records with "model")."""
        return b"".join(json.dumps({"id": f"u{i}", "audio": "x.wav", "hyp": "hi", "model": "m"}).encode() + b"\n"
                        for i in range(n))


@pytest.fixture(scope="session")
def world(tiny_base: Path, tiny_fts: list[Path], tiny_asr: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    from asrmerge import taskvectors

    root = tmp_path_factory.mktemp("faults-inputs")
    tv = root / "tv.safetensors"
    taskvectors.make(str(tiny_base), str(tiny_fts[0]), str(tv))
    model_out = root / "model-out"
    taskvectors.make_applied(str(tiny_base), str(tv), f"{model_out}/", scale=0.5)
    sd = load_file(tiny_base / "model.safetensors")
    sd["model.encoder.layer_norm.weight"][0] = 1e6
    save_file(sd, root / "big.safetensors", metadata={"format": "pt"})
    asr_nan = root / "asr-nan"
    shutil.copytree(tiny_asr, asr_nan)
    sd = load_file(asr_nan / "model.safetensors")
    sd["model.decoder.layers.0.fc1.weight"][0, 0] = float("nan")
    save_file(sd, asr_nan / "model.safetensors", metadata={"format": "pt"})
    import numpy as np
    import soundfile as sf

    clip = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)  # 1 s: quick to transcribe
    sf.write(root / "clip.wav", clip, 16000)
    manifest = root / "one.jsonl"
    manifest.write_text(json.dumps({"id": "clip", "audio": str(root / "clip.wav"), "text": "a"}) + "\n")

    marker = root / "UNPICKLED"
    pk = root / "pickles"
    pk.mkdir()
    torch.save({"w": evil(marker)}, pk / "zip.pt")
    torch.save({"w": evil(marker)}, pk / "legacy.pt", _use_new_zipfile_serialization=False)
    (pk / "proto2.safetensors").write_bytes(pickle.dumps(evil(marker), protocol=2))
    (pk / "proto5.bin").write_bytes(pickle.dumps({"w": evil(marker)}, protocol=5))
    (pk / "hf-folder").mkdir()
    shutil.copy(tiny_base / "config.json", pk / "hf-folder")
    torch.save({"w": evil(marker)}, pk / "hf-folder" / "pytorch_model.bin")
    pickles = {p.name: p for p in pk.iterdir()}

    hd = root / "headers"
    hd.mkdir()
    headers = {}
    for name, (data, _) in HEADERS.items():
        headers[name] = hd / f"{name}.safetensors"
        headers[name].write_bytes(data)
    for name, weight_map in (("index-list", ["model.safetensors"]), ("index-non-string", {"a": 5})):
        folder = hd / name
        folder.mkdir()
        save_file({"a": torch.zeros(2)}, folder / "model-00001-of-00001.safetensors")
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        headers[name] = folder
    return World(root, tiny_base, tiny_fts[0], tiny_fts[1], tv, model_out, root / "big.safetensors", tiny_asr,
                 asr_nan, manifest, marker, pickles, headers)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory):
    """A warm start for the fault cases (see tests/faults/zygote.py); ``ASRMERGE_FAULTS_FRESH=1``: none, every
    case starts a fresh interpreter through tests.conftest.cli."""
    import os

    from tests.faults.zygote import Zygote

    if os.environ.get("ASRMERGE_FAULTS_FRESH", "") not in ("", "0"):
        yield None
        return
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()
