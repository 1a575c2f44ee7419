"""Real LoRA adapters on real weights: peft adapters of the converted Whisper tiny.en, each trained for a few steps
on real read speech (LibriVox, tests/data/audio), merged with boosted-tsvm and transcribed.

The bound: tiny.en transcribes the held-out JFK clip word for word (WER 0; tests/test_asr_real.py). A few LoRA steps
on other read English speech should leave that intact, so the merged model must stay within WER 0.1 of the reference
(at most two of its 22 words). A wrong reading of the adapters (B and A swapped or transposed, alpha / r misapplied,
names mapped to the wrong matrices) moves the weights by the full update in the wrong place, and tiny.en's transcript
falls apart far beyond that bound; the adapters are checked to be non-trivial (the training loss fell, the merge moved
the weights).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jiwer
import pytest
import torch

from asrmerge.asr.normalizers import get as normalizer
from tests.conftest import AUDIO, ROOT, cli
from tests.factory import tensors

pytestmark = pytest.mark.slow
TRAIN = {"a": ["0870", "0880", "0890"], "b": ["0920", "0930"]}  # LibriVox utterances per adapter


def train_adapter(base: Path, clips: list[str], out: Path, seed: int, steps: int = 4) -> list[float]:
    """A peft LoRA adapter (r 8, alpha 16, q/v/fc1 of encoder and decoder) trained for ``steps`` full-batch steps on
    ``clips``; returns the training losses."""
    import soundfile as sf
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    records = {r["id"]: r for r in map(json.loads, (AUDIO / "english.jsonl").read_text().splitlines())}
    processor = WhisperProcessor.from_pretrained(base)
    audio, texts = [], []
    for c in clips:
        r = records[f"sense_and_sensibility_01_austen_64kb-{c}"]
        samples, rate = sf.read(AUDIO / r["audio"], dtype="float32")
        assert rate == 16000
        audio.append(samples)
        texts.append(r["text"])
    feats = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    labels = processor.tokenizer(texts, padding=True, return_tensors="pt")
    ids = labels.input_ids.masked_fill(labels.attention_mask == 0, -100)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = WhisperForConditionalGeneration.from_pretrained(base, dtype=torch.float32)  # stored in fp16
        if bool((ids[:, 0] == model.config.decoder_start_token_id).all()):
            ids = ids[:, 1:]
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "fc1"]))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        model.train()
        losses = []
        for _ in range(steps):
            loss = model(input_features=feats, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(loss))
        model.save_pretrained(out)
    return losses


def jfk_wer(records: bytes) -> float:
    (rec,) = [json.loads(x) for x in records.decode().splitlines()]
    norm = normalizer("whisper-en")
    return float(jiwer.wer(norm(rec["text"]), norm(rec["hyp"])))


def test_peft_adapters_trained_on_speech_merge_with_boosted_tsvm_and_transcribe(real_tiny_en: Path,
                                                                               tmp_path: Path) -> None:
    adapters = {}
    for i, (name, clips) in enumerate(TRAIN.items()):
        losses = train_adapter(real_tiny_en, clips, tmp_path / name, seed=i)
        assert losses[-1] < losses[0], losses
        adapters[name] = tmp_path / name
    cfg = json.loads((adapters["a"] / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(real_tiny_en)  # checked against --base by fingerprint

    merged = tmp_path / "merged"
    r = cli("merge", "--algo", "boosted-tsvm", "--base", str(real_tiny_en), str(adapters["a"]), str(adapters["b"]),
            "-o", f"{merged}/", "-q")
    assert r.returncode == 0, r.stderr.decode()
    base, out = tensors(real_tiny_en), tensors(merged)
    moved = [n for n in base if not torch.equal(base[n], out[n])]
    assert "model.decoder.layers.0.self_attn.q_proj.weight" in moved and "model.encoder.layers.0.fc1.weight" in moved
    assert "model.decoder.layers.0.self_attn.k_proj.weight" not in moved  # no adapter touches it
    assert (merged / "README.md").is_file() and "PEFT LoRA adapter" in (merged / "README.md").read_text()

    jfk = next(r for r in map(json.loads, (AUDIO / "english.jsonl").read_text().splitlines()) if r["id"] == "jfk")
    manifest = tmp_path / "jfk.jsonl"
    manifest.write_text(json.dumps({**jfk, "audio": str(AUDIO / "jfk.wav")}) + "\n")
    r = cli("transcribe", f"{merged}/", str(manifest), "-q")
    assert r.returncode == 0, r.stderr.decode()
    assert jfk_wer(r.stdout) <= 0.1, r.stdout.decode()

    # one adapter alone, through a pipe: taskvec --apply BASE ADAPTER | transcribe - --config BASE
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = sys.executable
    cmd = (f"{py} -m asrmerge taskvec --apply -q {real_tiny_en} {adapters['b']} | "
           f"{py} -m asrmerge transcribe - {manifest} --config {real_tiny_en} -q")
    r2 = subprocess.run(cmd, shell=True, capture_output=True, env=env)
    assert r2.returncode == 0, r2.stderr.decode()
    assert jfk_wer(r2.stdout) <= 0.1, r2.stdout.decode()
