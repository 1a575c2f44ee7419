"""Write a CTranslate2 WhisperSpec ``model.bin`` from Hugging Face tensors (test helper).

Written from CTranslate2's own description of the layout (the one summarised at the top of
``asrmerge/io/ct2.py``: a little-endian header, then per variable its name, rank, dims, dtype code, byte
count and raw data, then an alias table), independently of asrmerge's reader, so that reading it back
checks the reader and the name map.
"""

from __future__ import annotations

import struct
from pathlib import Path

import torch

CODES = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.float16: 4, torch.bfloat16: 5}


def _s(name: str) -> bytes:
    raw = name.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_variables(sd: dict[str, torch.Tensor], layers: int, heads: int) -> dict[str, torch.Tensor]:
    """CTranslate2 variable name -> tensor for a Hugging Face Whisper state dict."""
    v: dict[str, torch.Tensor] = {}

    def lin(dst: str, *names: str) -> None:
        v[f"{dst}/weight"] = torch.cat([sd[f"{n}.weight"] for n in names])
        biases = [sd.get(f"{n}.bias", torch.zeros(sd[f"{n}.weight"].shape[0], dtype=sd[f"{n}.weight"].dtype))
                  for n in names]
        v[f"{dst}/bias"] = torch.cat(biases)

    def ln(dst: str, src: str) -> None:
        v[f"{dst}/gamma"] = sd[f"{src}.weight"]
        v[f"{dst}/beta"] = sd[f"{src}.bias"]

    for c in ("conv1", "conv2"):
        v[f"encoder/{c}/weight"] = sd[f"model.encoder.{c}.weight"]
        v[f"encoder/{c}/bias"] = sd[f"model.encoder.{c}.bias"]
    for part in ("encoder", "decoder"):
        hf = f"model.{part}"
        v[f"{part}/position_encodings/encodings"] = sd[f"{hf}.embed_positions.weight"]
        if part == "decoder":
            v["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
        for i in range(layers):
            s, d = f"{hf}.layers.{i}", f"{part}/layer_{i}"
            lin(f"{d}/self_attention/linear_0", f"{s}.self_attn.q_proj", f"{s}.self_attn.k_proj", f"{s}.self_attn.v_proj")
            lin(f"{d}/self_attention/linear_1", f"{s}.self_attn.out_proj")
            ln(f"{d}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
            if part == "decoder":
                lin(f"{d}/attention/linear_0", f"{s}.encoder_attn.q_proj")
                lin(f"{d}/attention/linear_1", f"{s}.encoder_attn.k_proj", f"{s}.encoder_attn.v_proj")
                lin(f"{d}/attention/linear_2", f"{s}.encoder_attn.out_proj")
                ln(f"{d}/attention/layer_norm", f"{s}.encoder_attn_layer_norm")
            lin(f"{d}/ffn/linear_0", f"{s}.fc1")
            lin(f"{d}/ffn/linear_1", f"{s}.fc2")
            ln(f"{d}/ffn/layer_norm", f"{s}.final_layer_norm")
        ln(f"{part}/layer_norm", f"{hf}.layer_norm")
        v[f"{part}/num_heads"] = torch.tensor(heads, dtype=torch.int16)
    return v


def write_model_bin(path: Path, variables: dict[str, torch.Tensor]) -> None:
    out = bytearray(struct.pack("<I", 6) + _s("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables)))
    for name in sorted(variables):
        t = variables[name].contiguous()
        out += _s(name) + bytes([t.dim()]) + b"".join(struct.pack("<I", d) for d in t.shape)
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        out += bytes([CODES[t.dtype]]) + struct.pack("<I", len(data)) + data
    out += struct.pack("<I", 1) + _s("decoder/projection/weight") + _s("decoder/embeddings/weight")
    path.write_bytes(bytes(out))
