"""Read CTranslate2 (faster-whisper) Whisper models as Hugging Face tensors.

``model.bin`` (format version 5 or 6, spec ``WhisperSpec``) is little-endian: a header (version, spec
name, spec revision, variable count), then per variable its name, rank, dims, dtype code, byte count and
raw data, then an alias table. A model may be split into ``model.bin.part1..N`` whose concatenation is
``model.bin``; parts found in other folders are passed as ``extra_parts``.

The name map follows CTranslate2's Whisper converter in reverse: fused ``linear_0`` of self-attention is
q, k, v stacked along the output dim (the k bias is stored as zeros: Hugging Face's ``k_proj`` has none);
cross-attention's ``linear_1`` is k, v. Data is read with ``pread`` per tensor, never all at once.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import torch

from asrmerge.errors import InputError
from asrmerge.io.hf_files import (
    Dims,
    generation_config,
    model_config,
    preprocessor_file,
    to_json,
    tokenizer_files,
)
from asrmerge.io.tensors import TensorInfo

# CTranslate2 dtype code -> safetensors code
CT2_DTYPES = {0: "F32", 1: "I8", 2: "I16", 3: "I32", 4: "F16", 5: "BF16"}
LN = {"gamma": "weight", "beta": "bias"}


class _Parts:
    """Several files read as one byte string."""

    def __init__(self, paths: list[Path], label: str) -> None:
        self.label = label
        self.fds = [os.open(p, os.O_RDONLY) for p in paths]
        self.sizes = [os.fstat(fd).st_size for fd in self.fds]
        self.size = sum(self.sizes)

    def read(self, offset: int, n: int) -> bytes:
        if offset + n > self.size:
            raise InputError(f"model.bin is truncated (needs {offset + n} bytes, has {self.size})", subject=self.label,
                             hint="is a model.bin.partN missing? pass every part, in order")
        out = bytearray()
        start = 0
        for fd, size in zip(self.fds, self.sizes, strict=True):
            if offset < start + size and n > 0:
                k = min(n, start + size - offset)
                out += os.pread(fd, k, offset - start)
                offset += k
                n -= k
            start += size
        return bytes(out)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def find_parts(folder: Path, extra_parts: list[Path] | None = None) -> list[Path]:
    """``model.bin``, or ``model.bin.part1..N`` in order, followed by any ``extra_parts``."""
    if (folder / "model.bin").is_file():
        return [folder / "model.bin", *(extra_parts or [])]
    parts = sorted(folder.glob("model.bin.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1] or 0))
    return parts + list(extra_parts or [])


class Ct2Backend:
    """A CTranslate2 Whisper folder as a checkpoint backend with Hugging Face names."""

    def __init__(self, folder: Path, *, label: str | None = None, extra_parts: list[Path] | None = None) -> None:
        self.folder = folder
        self.label = label or str(folder)
        self.metadata: dict[str, str] = {}
        self.parts = _Parts(find_parts(folder, extra_parts), self.label)
        try:
            self.vars, self.scalars = self._parse()
            self.dims = self._dims()
            self.infos, self._map = self._hf_map()
        except BaseException:
            self.parts.close()
            raise

    def _fail(self, message: str) -> InputError:
        return InputError(message, subject=self.label, hint="is this a CTranslate2 Whisper model.bin?")

    def _parse(self) -> tuple[dict[str, tuple[int, tuple[int, ...], str]], dict[str, int]]:
        pos = 0

        def take(n: int) -> bytes:
            nonlocal pos
            b = self.parts.read(pos, n)
            pos += n
            return b

        def u32() -> int:
            return int(struct.unpack("<I", take(4))[0])

        def string() -> str:
            (n,) = struct.unpack("<H", take(2))
            return take(n).rstrip(b"\0").decode()

        version = u32()
        if version not in (5, 6):
            raise self._fail(f"model.bin format version {version} is not supported (5 or 6)")
        spec = string()
        if spec != "WhisperSpec":
            raise self._fail(f"model.bin holds a {spec}, not a WhisperSpec")
        u32()  # spec revision
        variables: dict[str, tuple[int, tuple[int, ...], str]] = {}
        scalars: dict[str, int] = {}
        for _ in range(u32()):
            name = string()
            rank = take(1)[0]
            dims = tuple(u32() for _ in range(rank))
            code = take(1)[0]
            nbytes = u32()
            if code not in CT2_DTYPES:
                raise self._fail(f"variable {name} has unknown dtype code {code}")
            if name.endswith("weight_scale"):
                raise InputError("is an int8-quantised CTranslate2 model", subject=self.label,
                                 hint="convert a float16 or float32 CTranslate2 model instead")
            if rank == 0:
                raw = take(nbytes)
                scalars[name] = int.from_bytes(raw, "little", signed=True) if nbytes <= 8 else 0
            else:
                variables[name] = (pos, dims, CT2_DTYPES[code])
                pos += nbytes
        n_alias = u32()
        for _ in range(n_alias):
            string()
            string()
        if pos != self.parts.size:
            raise self._fail(f"model.bin has {self.parts.size - pos} bytes after its alias table")
        return variables, scalars

    def _dims(self) -> Dims:
        v = self.vars

        def n_layers(part: str) -> int:
            return len({k.split("/")[1] for k in v if re.match(rf"{part}/layer_\d+/", k)})

        try:
            emb = v["decoder/embeddings/weight"][1]
            return Dims(
                n_mels=v["encoder/conv1/weight"][1][1], n_vocab=emb[0],
                n_audio_ctx=v["encoder/position_encodings/encodings"][1][0], n_audio_state=emb[1],
                n_audio_head=self.scalars["encoder/num_heads"], n_audio_layer=n_layers("encoder"),
                n_text_ctx=v["decoder/position_encodings/encodings"][1][0], n_text_state=emb[1],
                n_text_head=self.scalars["decoder/num_heads"], n_text_layer=n_layers("decoder"),
                n_audio_ffn=v["encoder/layer_0/ffn/linear_0/weight"][1][0],
                n_text_ffn=v["decoder/layer_0/ffn/linear_0/weight"][1][0],
            )
        except KeyError as e:
            raise self._fail(f"model.bin lacks {e.args[0]}") from e

    def _hf_map(self) -> tuple[dict[str, TensorInfo], dict[str, tuple[str, int, int]]]:
        """HF name -> (CT2 variable, piece index, number of pieces along dim 0)."""
        out: dict[str, tuple[str, int, int]] = {}
        zero_k_bias: list[tuple[str, int, int]] = []

        def linear(src: str, dst: str, pieces: tuple[str | None, ...] = (None,)) -> None:
            for kind in ("weight", "bias"):
                for i, piece in enumerate(pieces):
                    name = f"{dst}{piece or ''}.{kind}"
                    if kind == "bias" and piece == ".k_proj":
                        zero_k_bias.append((f"{src}/{kind}", i, len(pieces)))
                        continue  # stored as zeros by CTranslate2: HF's k_proj has no bias
                    if f"{src}/{kind}" in self.vars:
                        out[name] = (f"{src}/{kind}", i, len(pieces))

        def norm(src: str, dst: str) -> None:
            for a, b in LN.items():
                out[f"{dst}.{b}"] = (f"{src}/{a}", 0, 1)

        out["model.encoder.conv1.weight"] = ("encoder/conv1/weight", 0, 1)
        out["model.encoder.conv1.bias"] = ("encoder/conv1/bias", 0, 1)
        out["model.encoder.conv2.weight"] = ("encoder/conv2/weight", 0, 1)
        out["model.encoder.conv2.bias"] = ("encoder/conv2/bias", 0, 1)
        for part, n in (("encoder", self.dims.n_audio_layer), ("decoder", self.dims.n_text_layer)):
            hf = f"model.{part}"
            out[f"{hf}.embed_positions.weight"] = (f"{part}/position_encodings/encodings", 0, 1)
            if part == "decoder":
                out[f"{hf}.embed_tokens.weight"] = ("decoder/embeddings/weight", 0, 1)
            for i in range(n):
                src, dst = f"{part}/layer_{i}", f"{hf}.layers.{i}"
                linear(f"{src}/self_attention/linear_0", f"{dst}.self_attn", (".q_proj", ".k_proj", ".v_proj"))
                linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
                norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
                if part == "decoder":
                    linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
                    linear(f"{src}/attention/linear_1", f"{dst}.encoder_attn", (".k_proj", ".v_proj"))
                    linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
                    norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
                linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
                linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
                norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
            norm(f"{part}/layer_norm", f"{hf}.layer_norm")
        infos: dict[str, TensorInfo] = {}
        for name, (var, _, pieces) in out.items():
            if var not in self.vars:
                raise self._fail(f"model.bin lacks {var}")
            _, dims, code = self.vars[var]
            infos[name] = TensorInfo(name, (dims[0] // pieces, *dims[1:]), code)
        for var, i, pieces in zero_k_bias:
            if torch.any(self._read_var(var).chunk(pieces, dim=0)[i] != 0):
                raise InputError(f"{var}: the k bias is not zero, and Hugging Face Whisper has no k_proj bias",
                                 subject=self.label, hint="this model cannot be converted without loss")
        return infos, out

    def _read_var(self, var: str) -> torch.Tensor:
        from asrmerge.io.tensors import torch_dtype

        offset, dims, code = self.vars[var]
        info = TensorInfo(var, dims, code)
        raw = bytearray(self.parts.read(offset, info.nbytes))
        return torch.frombuffer(raw, dtype=torch_dtype(code)).reshape(dims) if raw else torch.empty(dims)

    def read(self, name: str) -> torch.Tensor:
        var, i, pieces = self._map[name]
        t = self._read_var(var)
        return t.chunk(pieces, dim=0)[i].clone() if pieces > 1 else t

    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor:
        return self.read(name)[rows]

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        return self.read(name)[start:stop].clone()

    def support_files(self) -> dict[str, bytes]:
        cfg_path = self.folder / "config.json"
        ct2 = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        files = {
            "config.json": to_json(model_config(self.dims)),
            "generation_config.json": to_json(generation_config(
                self.dims, suppress=ct2.get("suppress_ids"), suppress_begin=ct2.get("suppress_ids_begin"),
                alignment_heads=ct2.get("alignment_heads"))),
        }
        tok = self.folder / "tokenizer.json"
        files.update(tokenizer_files(tok, self.dims) if tok.is_file() else preprocessor_file(self.dims))
        return files

    def close(self) -> None:
        self.parts.close()
