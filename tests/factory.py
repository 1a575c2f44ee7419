"""Tiny real Whisper checkpoints for tests: ``WhisperForConditionalGeneration`` from a small config.

Fine-tunes are the base plus seeded noise, so task vectors are dense and known exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

VOCAB = 51865  # the multilingual vocabulary, so the real tokenizer and generation config fit


def tiny_config(d_model: int = 16, layers: int = 1, heads: int = 2, ffn: int = 32, vocab: int = VOCAB,
                n_mels: int = 80, source_positions: int = 1500, target_positions: int = 448):
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=vocab, num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_source_positions=source_positions, max_target_positions=target_positions,
        decoder_start_token_id=50258, eos_token_id=50257, pad_token_id=50257, bos_token_id=50257,
    )


def make_whisper(path: Path, *, seed: int = 0, dtype: torch.dtype = torch.float32, **config_kw) -> Path:
    """Save a randomly initialised tiny Whisper as a Hugging Face folder at ``path``."""
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(tiny_config(**config_kw)).to(dtype)
    model.save_pretrained(path)
    return path


def make_finetune(base: Path, path: Path, *, seed: int, scale: float = 1e-2, dtype: torch.dtype | None = None) -> Path:
    """A copy of ``base`` with every tensor moved by seeded Gaussian noise of relative size ``scale``.

    The encoder's positions stay as they are: Whisper's are a frozen sinusoid that fine-tuning leaves alone.
    """
    import shutil

    shutil.copytree(base, path, dirs_exist_ok=True)
    sd = load_file(base / "model.safetensors")
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in sd.items():
        if name == "model.encoder.embed_positions.weight":
            out[name] = t.to(dtype or t.dtype)
            continue
        x = t.to(torch.float64)
        std = float(x.std()) if x.numel() > 1 and float(x.std()) > 0 else 1.0
        noise = torch.randn(x.shape, generator=g, dtype=torch.float64) * std * scale
        out[name] = (x + noise).to(dtype or t.dtype)
    save_file(out, path / "model.safetensors", metadata={"format": "pt"})
    return path


def tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a folder's ``model.safetensors`` or of a ``.safetensors`` file (via the reference library)."""
    f = path / "model.safetensors" if path.is_dir() else path
    return load_file(f)


def make_lora(base: Path, path: Path, *, seed: int, scale: float = 0.1, **config) -> Path:
    """A PEFT LoRA adapter of ``base`` made by peft itself, every trainable tensor moved by seeded noise.

    ``config`` goes to ``peft.LoraConfig`` (``r``, ``lora_alpha``, ``target_modules``, ``rank_pattern``, ...).
    LoRA B starts at zero in peft, so without the noise the adapter would change nothing.
    """
    import warnings

    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(WhisperForConditionalGeneration.from_pretrained(base), LoraConfig(**config))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, p in sorted(model.named_parameters()):
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g) * scale)
        model.save_pretrained(path)
    return path
