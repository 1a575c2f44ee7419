"""openai-whisper ``.pt`` checkpoints (``{"dims": ..., "model_state_dict": ...}``), read and written.

Reading uses ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds tensors and
plain containers and refuses any other object, so a malicious file cannot run code. Names map to the
Hugging Face ones (``encoder.blocks.0.attn.query`` -> ``model.encoder.layers.0.self_attn.q_proj``, ...).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from asrmerge.errors import AsrmergeError, InputError, UsageError
from asrmerge.io.hf_files import Dims, generation_config, model_config, preprocessor_file, to_json
from asrmerge.io.tensors import TensorInfo, st_code

# (openai piece, HF piece) of a layer's tensor names, after "{part}.blocks.{i}." / "model.{part}.layers.{i}."
_LAYER = [
    ("attn.query.", "self_attn.q_proj."), ("attn.key.", "self_attn.k_proj."),
    ("attn.value.", "self_attn.v_proj."), ("attn.out.", "self_attn.out_proj."),
    ("attn_ln.", "self_attn_layer_norm."),
    ("cross_attn.query.", "encoder_attn.q_proj."), ("cross_attn.key.", "encoder_attn.k_proj."),
    ("cross_attn.value.", "encoder_attn.v_proj."), ("cross_attn.out.", "encoder_attn.out_proj."),
    ("cross_attn_ln.", "encoder_attn_layer_norm."),
    ("mlp.0.", "fc1."), ("mlp.2.", "fc2."), ("mlp_ln.", "final_layer_norm."),
]
_TOP = {
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
    "decoder.token_embedding.weight": "model.decoder.embed_tokens.weight",
    "encoder.ln_post.weight": "model.encoder.layer_norm.weight",
    "encoder.ln_post.bias": "model.encoder.layer_norm.bias",
    "decoder.ln.weight": "model.decoder.layer_norm.weight",
    "decoder.ln.bias": "model.decoder.layer_norm.bias",
}


def _swap(rest: str, frm: int) -> str | None:
    for pair in _LAYER:
        if rest.startswith(pair[frm]):
            return pair[1 - frm] + rest[len(pair[frm]):]
    return None


def openai_to_hf(name: str) -> str | None:
    """The Hugging Face name of an openai-whisper state-dict key, or ``None`` for buffers to drop."""
    if name in _TOP:
        return _TOP[name]
    if re.fullmatch(r"encoder\.conv[12]\.(weight|bias)", name):
        return "model." + name
    m = re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.(.*)", name)
    rest = _swap(m.group(3), 0) if m else None
    if m and rest:
        return f"model.{m.group(1)}.layers.{m.group(2)}.{rest}"
    if name == "alignment_heads":
        return None
    raise InputError(f"unexpected tensor {name} in an openai-whisper checkpoint")


def hf_to_openai(name: str) -> str:
    """The openai-whisper key of a Hugging Face Whisper name."""
    for k, v in _TOP.items():
        if v == name:
            return k
    if re.fullmatch(r"model\.encoder\.conv[12]\.(weight|bias)", name):
        return name.removeprefix("model.")
    m = re.fullmatch(r"model\.(encoder|decoder)\.layers\.(\d+)\.(.*)", name)
    rest = _swap(m.group(3), 1) if m else None
    if m and rest:
        return f"{m.group(1)}.blocks.{m.group(2)}.{rest}"
    raise InputError(f"tensor {name} has no openai-whisper name", hint="is this a Whisper checkpoint?")


class OpenaiBackend:
    """An openai-whisper ``.pt`` checkpoint, loaded with the restricted unpickler."""

    def __init__(self, path: Path, *, label: str | None = None) -> None:
        self.label = label or str(path)
        self.metadata: dict[str, str] = {}
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # the restricted unpickler refuses non-tensor objects with various errors
            raise InputError(f"not a plain openai-whisper checkpoint ({type(e).__name__})", subject=self.label,
                             hint="only {'dims', 'model_state_dict'} files of tensors are read; asrmerge never unpickles other objects") from e
        if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
            raise InputError("lacks 'dims' and 'model_state_dict'", subject=self.label,
                             hint="is this an openai-whisper checkpoint?")
        state = ckpt["model_state_dict"]
        self.dims = Dims(**{k: int(v) for k, v in ckpt["dims"].items()})
        self._tensors: dict[str, torch.Tensor] = {}
        for k, v in state.items():
            hf = openai_to_hf(k)
            if hf is not None:
                self._tensors[hf] = v
        self.infos = {n: TensorInfo(n, tuple(t.shape), st_code(t.dtype)) for n, t in self._tensors.items()}

    def read(self, name: str) -> torch.Tensor:
        return self._tensors[name].clone()

    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor:
        return self._tensors[name][rows].clone()

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        return self._tensors[name][start:stop].clone()

    def support_files(self) -> dict[str, bytes]:
        # openai checkpoints carry no tokenizer: `convert --config DIR` supplies it
        return {
            "config.json": to_json(model_config(self.dims)),
            "generation_config.json": to_json(generation_config(self.dims)),
            **preprocessor_file(self.dims),
        }

    def close(self) -> None:
        self._tensors.clear()


def save_openai(tensors: dict[str, torch.Tensor], config: dict[str, object], dest: Path,
                metadata: dict[str, str] | None = None) -> None:
    """Write an openai-whisper ``.pt`` atomically from Hugging Face tensors and ``config.json``.

    ``metadata`` (asrmerge's provenance) is stored under the key ``asrmerge``, which openai-whisper ignores;
    it tells a later run that the file is an earlier output it may replace.
    """
    from asrmerge.io.hf_files import dims_from_config
    from asrmerge.io.writer import temporary_name

    try:
        dims = dims_from_config(config)
    except KeyError as e:
        raise UsageError(f"config.json lacks {e.args[0]}", subject=str(dest), hint="pass --config with a Whisper folder") from e
    state = {hf_to_openai(n): t for n, t in tensors.items()}
    tmp = temporary_name(dest)
    ckpt: dict[str, object] = {"dims": dims.openai_dims(), "model_state_dict": state}
    if metadata:
        ckpt["asrmerge"] = dict(metadata)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=str(dest),
                            hint="free some disk space or choose another -o") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
