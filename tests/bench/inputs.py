"""Benchmark inputs made offline: a Whisper base of a given shape and T fine-tunes with realistic task vectors.

Shapes: ``base`` is the real converted multilingual Whisper base (6+6 layers, d_model 512); ``small`` and
``large-v3`` are random Whisper models of those architectures (12+12 layers, 768; 32+32 layers, 1280).
A fine-tune is the base plus, for every 2-D tensor, a task vector with a decaying spectrum — a rank-64
part with exponentially falling singular values over a full-rank floor, as fine-tuning deltas have —
and small dense noise on the other tensors. Everything is seeded and written as fp32 safetensors files.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {
    "small": dict(d_model=768, layers=12, heads=12, ffn=3072),
    "large-v3": dict(d_model=1280, layers=32, heads=20, ffn=5120, n_mels=128, vocab=51866),
}


def base_model(shape: str, root: Path) -> Path:
    """The base checkpoint of ``shape`` as one fp32 safetensors file (made once, then reused)."""
    out = root / f"{shape}-base.safetensors"
    if out.is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    if shape == "base":
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "asrmerge", "convert", "packaged:base", "--dtype", "fp32", "-o",
                        str(out), "-q"], check=True, env=env)
        return out
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    s = SHAPES[shape]
    cfg = WhisperConfig(vocab_size=s.get("vocab", 51865), num_mel_bins=s.get("n_mels", 80), d_model=s["d_model"],
                        encoder_layers=s["layers"], decoder_layers=s["layers"], encoder_attention_heads=s["heads"],
                        decoder_attention_heads=s["heads"], encoder_ffn_dim=s["ffn"], decoder_ffn_dim=s["ffn"])
    torch.manual_seed(0)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(cfg)
    sd = {}
    g = torch.Generator().manual_seed(0)
    for name, p in model.state_dict().items():
        if name == "proj_out.weight":
            continue
        sd[name] = torch.randn(p.shape, generator=g) * (0.02 if p.dim() > 1 else 0.1)
    save_file(sd, str(out), metadata={"format": "pt"})
    return out


def task_vector(shape: tuple[int, ...], g: torch.Generator, rank: int = 64, scale: float = 1e-3) -> torch.Tensor:
    """A fine-tuning-like delta: decaying rank-``rank`` spectrum over a flat floor (2-D), or dense noise."""
    if len(shape) != 2:
        return torch.randn(shape, generator=g) * scale * 0.1
    m, n = shape
    r = min(rank, m, n)
    a = torch.randn(m, r, generator=g) / math.sqrt(m)
    b = torch.randn(n, r, generator=g) / math.sqrt(n)
    s = torch.exp(-torch.arange(r, dtype=torch.float32) / (r / 6))
    floor = torch.randn(m, n, generator=g) * (0.02 / math.sqrt(max(m, n)))
    return scale * ((a * s) @ b.T + floor)


def finetunes(base: Path, T: int, root: Path, seed: int = 0) -> list[Path]:
    """T fine-tunes of ``base`` (files ``ft{t}.safetensors`` in ``root``), made once and reused."""
    root.mkdir(parents=True, exist_ok=True)
    out = [root / f"ft{t}.safetensors" for t in range(T)]
    with safe_open(str(base), "pt") as f:
        names = list(f.keys())
        for t, path in enumerate(out):
            if path.is_file():
                continue
            g = torch.Generator().manual_seed(seed * 1000 + t)
            sd = {}
            for name in names:
                w = f.get_tensor(name)
                if name == "model.encoder.embed_positions.weight":
                    sd[name] = w
                else:
                    sd[name] = w + task_vector(tuple(w.shape), g)
            tmp = path.with_suffix(".tmp")
            save_file(sd, str(tmp), metadata={"format": "pt"})
            os.replace(tmp, path)
    return out
