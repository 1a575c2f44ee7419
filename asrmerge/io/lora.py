"""PEFT LoRA adapters, read as task vectors against their base model.

An adapter is a folder with ``adapter_config.json`` and ``adapter_model.safetensors`` (or the older
pickled ``adapter_model.bin``, read only with ``torch.load(weights_only=True)``). It is presented under the
base's canonical names and shapes as a task vector (``kind`` ``taskvec``), exactly the update PEFT's
``merge_and_unload()`` adds to the base:

- a LoRA target module gets tau = s B A, with s = alpha / r (alpha / sqrt(r) with ``use_rslora``), r and
  alpha per module from ``rank_pattern`` and ``alpha_pattern`` (PEFT's matching: a pattern matches a
  module whose name ends in it, after a dot); Linear, Embedding (tau = s (B A)^T) and Conv1d layers;
- ``lora_bias`` adds s b_B to the module's bias;
- ``modules_to_save`` copies, biases trained with ``bias="all"``/``"lora_only"`` and embedding layers that
  PEFT saved whole are full tensors: tau = saved - base;
- ``trainable_token_indices`` rows: tau = saved rows - base rows;
- every other tensor of the base: tau = 0.

PEFT's names (``base_model.model.model.encoder.layers.0.self_attn.q_proj.lora_A.weight``) map onto the
base's (``model.encoder.layers.0.self_attn.q_proj.weight``); ``proj_out`` is Whisper's tied output
projection, ``model.decoder.embed_tokens.weight``. tau is computed and presented in fp64 for the tensors
the adapter changes (fp32 zeros for the others). The
factors of each low-rank tensor stay reachable (:meth:`LoraBackend.factors`) for merges that work on
them directly.

Refused with one line: adapters of other PEFT types, DoRA and the other LoRA variants whose update is not
s B A, adapters initialised from a modified base (PiSSA, OLoRA, CorDA, LoftQ) that were not converted,
and tensors asrmerge does not know. Checked against the base: every target exists with matching shapes,
``base_model_name_or_path`` (a ``whisper-SIZE[.en]`` name must fit the base's width and vocabulary; a local
model folder must have the base's fingerprint), and an ``asrmerge.base_fingerprint`` recorded in the
weights' metadata.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from asrmerge.errors import InputError
from asrmerge.io.tensors import TensorInfo

if TYPE_CHECKING:
    from asrmerge.io.checkpoint import Checkpoint

ADAPTER_CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PREFIX = "base_model.model."
EMBED = "model.decoder.embed_tokens.weight"

# config switches whose update is not s B A (or not a fixed matrix at all)
VARIANTS = {
    "use_dora": "DoRA (use_dora)",
    "use_qalora": "QA-LoRA (use_qalora)",
    "use_bdlora": "block-diagonal LoRA (use_bdlora)",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
    "arrow_config": "Arrow routing (arrow_config)",
    "layer_replication": "layer replication (layer_replication)",
    "target_parameters": "LoRA on parameters (target_parameters)",
    "fan_in_fan_out": "fan_in_fan_out (GPT-2 Conv1D layers, which Whisper has none of)",
}
# initialisations that change the base weights: the adapter needs that modified base unless converted
MODIFIED_BASE = ("pissa", "olora", "corda", "loftq")
WIDTHS = {"tiny": 384, "base": 512, "small": 768, "medium": 1024, "large": 1280}

MERGE_HINT = "merge it into its base with peft (model.merge_and_unload()) and pass the full model"


def adapter_folder(spec: str) -> Path | None:
    """The PEFT adapter folder ``spec`` names (the folder, or a file inside it), or ``None`` if it is no adapter."""
    if spec == "-" or spec.startswith("packaged:"):
        return None
    p = Path(spec)
    if p.is_dir():
        return p if (p / ADAPTER_CONFIG).is_file() else None
    if p.name in (ADAPTER_CONFIG, *WEIGHTS) and (p.parent / ADAPTER_CONFIG).is_file():
        return p.parent
    return None


@dataclass(frozen=True)
class LoraFactors:
    """A low-rank task vector: ``tau.reshape(shape[0], -1) == scale * b @ a``.

    Attributes:
        b: (m, r), in the adapter's stored dtype.
        a: (r, n).
        scale: s (alpha / r, or alpha / sqrt(r) with rsLoRA); 1.0 where several terms were folded together.
    """

    b: torch.Tensor
    a: torch.Tensor
    scale: float

    @property
    def rank(self) -> int:
        return int(self.b.shape[1])

    def delta(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """scale * b @ a as an (m, n) matrix in ``dtype``."""
        return self.scale * (self.b.to(dtype) @ self.a.to(dtype))


@dataclass
class _Terms:
    """Everything an adapter adds to one base tensor."""

    lora: list[LoraFactors] = field(default_factory=list)
    full: list[str] = field(default_factory=list)  # keys of saved whole tensors (tau = saved - base)
    bias: list[tuple[str, float]] = field(default_factory=list)  # (lora_B.bias key, s)
    tokens: list[tuple[str, list[int]]] = field(default_factory=list)  # (saved rows key, row indices)


def pattern_key(patterns: list[str], module: str) -> str | None:
    """The first of ``patterns`` that PEFT would apply to ``module`` (``(.*\\.)?PATTERN$``), or None."""
    for p in patterns:
        try:
            if re.match(rf"(.*\.)?({p})$", module):
                return p
        except re.error:
            continue
    return None


class LoraBackend:
    """A PEFT LoRA adapter read against ``base``: the task vector tau for every tensor of the base.

    Args:
        folder: the adapter folder.
        base: the base model the adapter was trained on (opened).
        label: how errors name the adapter.
    Raises:
        InputError: not a LoRA adapter asrmerge can read, or not one of ``base``.
    """

    def __init__(self, folder: Path, base: Checkpoint, label: str) -> None:
        self.label = label
        self.folder = folder
        self.base = base
        self.config = self._config()
        self.base_model = str(self.config.get("base_model_name_or_path") or "")
        self._file: Any = None
        self._state: dict[str, torch.Tensor] | None = None
        self.recorded: str | None = None  # an asrmerge.base_fingerprint in the weights' metadata
        raw = self._open_weights()
        self.metadata: dict[str, str] = {
            "asrmerge.kind": "taskvec", "asrmerge.base_fingerprint": base.fingerprint(), "asrmerge.adapter": "lora"}
        self._terms: dict[str, _Terms] = {}
        try:
            self._parse(raw)
            self._check_base()
        except BaseException:
            self.close()
            raise
        # the tensors the adapter changes are computed in fp64; the others are zeros
        self.infos = {n: TensorInfo(n, i.shape, "F64" if n in self._terms else "F32") for n, i in base.infos.items()}

    # -- reading the folder --------------------------------------------------------------------------------------
    def _fail(self, message: str, hint: str | None = None) -> InputError:
        return InputError(message, subject=self.label, hint=hint)

    def _config(self) -> dict[str, Any]:
        path = self.folder / ADAPTER_CONFIG
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise self._fail(f"{ADAPTER_CONFIG} is not readable JSON ({e})", "re-save the adapter with peft") from e
        if not isinstance(cfg, dict):
            raise self._fail(f"{ADAPTER_CONFIG} is not a JSON object", "re-save the adapter with peft")
        kind = str(cfg.get("peft_type") or "").upper()
        if kind != "LORA":
            what = f"a PEFT {kind} adapter" if kind else f"an adapter whose {ADAPTER_CONFIG} names no peft_type"
            raise self._fail(f"is {what}; asrmerge reads LoRA adapters only", MERGE_HINT)
        for key, what in VARIANTS.items():
            if cfg.get(key):
                raise self._fail(f"is a {what} adapter, whose update is not s B A; asrmerge reads plain LoRA only",
                                 MERGE_HINT)
        init = str(cfg.get("init_lora_weights", "")).lower()
        if init.startswith(MODIFIED_BASE):
            raise self._fail(f"was initialised with init_lora_weights={cfg['init_lora_weights']}, which changes the "
                             "base weights", "convert it to a plain LoRA with peft's save_pretrained("
                             "path_initial_model_for_weight_conversion=...) first")
        return cfg

    def _open_weights(self) -> dict[str, TensorInfo]:
        st = self.folder / WEIGHTS[0]
        if st.is_file():
            from asrmerge.io.safetensors import SafetensorsFile

            self._file = SafetensorsFile(st, label=f"{self.label.rstrip('/')}/{WEIGHTS[0]}")
            self.recorded = self._file.metadata.get("asrmerge.base_fingerprint")
            return dict(self._file.infos)
        pt = self.folder / WEIGHTS[1]
        if pt.is_file():
            from asrmerge.io.statedict import load_state_dict
            from asrmerge.io.tensors import st_code

            self._state = load_state_dict(pt, f"{self.label.rstrip('/')}/{WEIGHTS[1]}")
            return {k: TensorInfo(k, tuple(v.shape), st_code(v.dtype)) for k, v in self._state.items()}
        raise self._fail(f"has {ADAPTER_CONFIG} but neither {WEIGHTS[0]} nor {WEIGHTS[1]}", "copy the whole adapter folder")

    def _raw(self, key: str) -> torch.Tensor:
        if self._file is not None:
            return self._file.read(key)
        assert self._state is not None
        return self._state[key]

    # -- names -------------------------------------------------------------------------------------------------
    def _canonical(self, module: str, param: str) -> str:
        """The base's name for ``param`` of PEFT module path ``module`` (``proj_out`` is the tied embedding)."""
        module = module.replace(".base_layer", "")
        if module.startswith(("encoder.", "decoder.")):
            module = "model." + module
        name = f"{module}.{param}"
        if name == "proj_out.weight" and name not in self.base.infos and EMBED in self.base.infos:
            name = EMBED
        if name not in self.base.infos:
            raise self._fail(f"adapts {name}, which {self.base.label} does not have",
                             self._same_base_hint())
        return name

    def _same_base_hint(self) -> str:
        trained = f" (it was trained on {self.base_model})" if self.base_model else ""
        return f"is {self.base.label} the base model of this adapter{trained}?"

    def _terms_of(self, name: str) -> _Terms:
        return self._terms.setdefault(name, _Terms())

    def _parse(self, raw: dict[str, TensorInfo]) -> None:
        cfg = self.config
        rank_pattern = dict(cfg.get("rank_pattern") or {})
        alpha_pattern = dict(cfg.get("alpha_pattern") or {})
        r_default = int(cfg.get("r", 8))
        alpha_default = float(cfg.get("lora_alpha", 8))
        rslora = bool(cfg.get("use_rslora"))
        pairs: dict[str, dict[str, str]] = {}
        for key in raw:
            k = key.removeprefix(PREFIX)
            m = re.fullmatch(r"(.+)\.(lora_A|lora_B)\.weight|(.+)\.(lora_embedding_A|lora_embedding_B)", k)
            if m:
                module, part = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                pairs.setdefault(module, {})[part] = key
                continue
            m = re.fullmatch(r"(.+)\.lora_B\.bias", k)
            if m:
                pairs.setdefault(m.group(1), {})["bias"] = key
                continue
            if k.endswith(".lora_magnitude_vector") or ".lora_magnitude_vector." in k:
                raise self._fail("is a DoRA adapter (it stores lora_magnitude_vector), whose update is not s B A; "
                                 "asrmerge reads plain LoRA only", MERGE_HINT)
            m = re.fullmatch(r"(.+)\.token_adapter\.trainable_tokens_delta", k)
            if m:
                name = self._canonical(m.group(1), "weight")
                self._terms_of(name).tokens.append((key, self._token_indices(m.group(1), raw[key])))
                continue
            if ".lora_" in k or ".token_adapter." in k:
                raise self._fail(f"holds {key}, which asrmerge does not know (a LoRA variant?)", MERGE_HINT)
            module, _, param = k.rpartition(".")
            name = self._canonical(module, param)
            if name == EMBED and ".base_layer" not in module:
                raise self._fail(f"keeps a trained copy of {module} (modules_to_save), which unties Whisper's output "
                                 "projection from its token embedding; asrmerge keeps them one tensor",
                                 "train LoRA on embed_tokens or proj_out instead (it keeps the tie)")
            if raw[key].shape != self.base.infos[name].shape:
                raise self._shape_error(name, raw[key].shape)
            self._terms_of(name).full.append(key)
        for module, parts in pairs.items():
            embedding = "lora_embedding_A" in parts or "lora_embedding_B" in parts
            a_key = parts.get("lora_embedding_A" if embedding else "lora_A")
            b_key = parts.get("lora_embedding_B" if embedding else "lora_B")
            if a_key is None or b_key is None:
                raise self._fail(f"module {module} has only one of its LoRA factors", "re-save the adapter with peft")
            r_key = pattern_key(list(rank_pattern), module)
            r = int(rank_pattern[r_key]) if r_key is not None else r_default
            a_key_alpha = pattern_key(list(alpha_pattern), module)
            alpha = float(alpha_pattern[a_key_alpha]) if a_key_alpha is not None else alpha_default
            a_shape, b_shape = raw[a_key].shape, raw[b_key].shape
            if a_shape[0] != r or len(b_shape) < 2 or b_shape[1] != r:
                raise self._fail(f"module {module}: {ADAPTER_CONFIG} gives rank {r}, but its factors have shapes "
                                 f"{list(a_shape)} and {list(b_shape)}", "the adapter is damaged; re-save it with peft")
            scale = alpha / math.sqrt(r) if rslora else alpha / r
            name = self._canonical(module, "weight")
            shape = self.base.infos[name].shape
            factors = self._factors(module, name, shape, a_key, b_key, embedding, scale)
            self._terms_of(name).lora.append(factors)
            if "bias" in parts:
                bname = self._canonical(module, "bias")
                if raw[parts["bias"]].shape != self.base.infos[bname].shape:
                    raise self._shape_error(bname, raw[parts["bias"]].shape)
                self._terms_of(bname).bias.append((parts["bias"], scale))

    def _factors(self, module: str, name: str, shape: tuple[int, ...], a_key: str, b_key: str, embedding: bool,
                 scale: float) -> LoraFactors:
        a, b = self._raw(a_key), self._raw(b_key)
        if embedding:  # PEFT's Embedding: delta = (B A)^T, B (dim, r), A (r, vocab)
            b2, a2 = a.mT, b.mT
        elif a.dim() > 2:  # Conv: A (r, in, k...), B (out, r, 1...)
            if any(s != 1 for s in b.shape[2:]):
                raise self._fail(f"module {module}: a LoRA B convolution with kernel {list(b.shape[2:])} is not supported",
                                 MERGE_HINT)
            b2, a2 = b.reshape(b.shape[0], b.shape[1]), a.reshape(a.shape[0], -1)
        else:
            b2, a2 = b, a
        m, n = shape[0], math.prod(shape[1:])
        if b2.dim() != 2 or a2.dim() != 2 or (b2.shape[0], a2.shape[1]) != (m, n) or (
                a.dim() > 2 and tuple(a.shape[1:]) != tuple(shape[1:])):
            out = (b2.shape[0], a2.shape[1]) if b2.dim() == 2 and a2.dim() == 2 else tuple(b.shape)
            raise self._shape_error(name, out)
        return LoraFactors(b2, a2, scale)

    def _shape_error(self, name: str, got: Any) -> InputError:
        return self._fail(f"{name}: shape {list(got)} vs {list(self.base.infos[name].shape)} in {self.base.label}",
                          self._same_base_hint())

    def _token_indices(self, module: str, info: TensorInfo) -> list[int]:
        spec = self.config.get("trainable_token_indices")
        idx: Any = None
        if isinstance(spec, list):
            idx = spec
        elif isinstance(spec, dict):
            key = pattern_key(list(spec), module)
            idx = spec.get(key) if key is not None else None
        if not isinstance(idx, list) or len(idx) != info.shape[0]:
            raise self._fail(f"module {module}: trainable_token_indices in {ADAPTER_CONFIG} does not fit its "
                             f"{info.shape[0]} saved rows", "the adapter is damaged; re-save it with peft")
        return [int(i) for i in idx]

    # -- checks against the base ---------------------------------------------------------------------------------
    def _check_base(self) -> None:
        name = self.base_model
        fp = self.base.fingerprint()
        if self.recorded and self.recorded != fp:
            raise self._fail(f"was made from base {self.recorded}, but {self.base.label} is {fp}",
                             "use the base model the adapter was trained on")
        m = re.search(r"whisper-(tiny|base|small|medium|large)(?:-v(\d))?(\.en)?", name.lower().rstrip("/").rsplit("/", 1)[-1])
        embed = self.base.infos.get(EMBED)
        if m and embed is not None and len(embed.shape) == 2:
            width = WIDTHS[m.group(1)]
            vocab = 51864 if m.group(3) else 51866 if m.group(1) == "large" and (m.group(2) or "") >= "3" else 51865
            if (embed.shape[1], embed.shape[0]) != (width, vocab):
                raise self._fail(f"was trained on {name} (width {width}, vocabulary {vocab}), but {self.base.label} "
                                 f"has width {embed.shape[1]} and vocabulary {embed.shape[0]}",
                                 f"pass {name} as the base (if the name is wrong, correct base_model_name_or_path in "
                                 f"{ADAPTER_CONFIG})")
        local = Path(name) if name else None
        if local is not None and local.is_dir() and not (local / ADAPTER_CONFIG).is_file():
            from asrmerge.io.checkpoint import open_checkpoint

            try:
                with open_checkpoint(str(local)) as trained:
                    theirs = trained.fingerprint()
            except Exception:  # not a model we can read: nothing to compare
                return
            if theirs != fp:
                raise self._fail(f"was trained on {name} ({theirs}), but {self.base.label} is {fp}",
                                 f"pass {name} as the base")

    # -- the Backend protocol ------------------------------------------------------------------------------------
    def factors(self, name: str) -> LoraFactors | None:
        """The low-rank factors of tau for ``name`` (several LoRA terms folded into one; rank 0 for a tensor of
        two or more dimensions the adapter leaves alone), or None when tau has other parts (a full tensor, a
        bias or token rows) or is a 1-D tensor."""
        shape = self.infos[name].shape
        t = self._terms.get(name)
        if t is None:
            if len(shape) < 2:
                return None
            n = math.prod(shape[1:])
            return LoraFactors(torch.zeros(shape[0], 0), torch.zeros(0, n), 1.0)
        if not t.lora or t.full or t.bias or t.tokens:
            return None
        if len(t.lora) == 1:
            return t.lora[0]
        b = torch.cat([f.scale * f.b.to(torch.float64) for f in t.lora], 1)
        a = torch.cat([f.a.to(torch.float64) for f in t.lora], 0)
        return LoraFactors(b, a, 1.0)

    def targets(self) -> list[str]:
        """The base tensors this adapter changes."""
        return list(self._terms)

    def read(self, name: str) -> torch.Tensor:
        shape = self.infos[name].shape
        t = self._terms.get(name)
        if t is None:
            return torch.zeros(shape, dtype=torch.float32)
        out = torch.zeros(shape, dtype=torch.float64)
        for f in t.lora:
            out += f.delta().reshape(shape)
        if t.full:
            saved = [self._raw(key) for key in t.full]
            if any(not torch.equal(x, saved[0]) for x in saved[1:]):
                raise self._fail(f"saves {name} twice with different values ({', '.join(t.full)})",
                                 "Whisper ties proj_out to embed_tokens: keep one of them in modules_to_save")
            out += saved[0].to(torch.float64) - self.base.get(name).to(torch.float64)
        for key, s in t.bias:
            out += s * self._raw(key).to(torch.float64)
        for key, idx in t.tokens:
            rows = torch.tensor(idx)
            out[rows] += self._raw(key).to(torch.float64) - self.base.get(name).to(torch.float64)[rows]
        return out

    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor:
        if name not in self._terms:  # untouched: no need to build the whole zero tensor
            return torch.zeros((len(rows), *self.infos[name].shape[1:]), dtype=torch.float32)
        return self.read(name)[rows]

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        if name not in self._terms:
            return torch.zeros((stop - start, *self.infos[name].shape[1:]), dtype=torch.float32)
        return self.read(name)[start:stop]

    def support_files(self) -> dict[str, bytes]:
        return {}

    def describe(self) -> dict[str, Any]:
        """What the model card says about the adapter: type, rank, alpha, targets."""
        cfg = self.config
        return {"type": "LoRA" + (" (rsLoRA)" if cfg.get("use_rslora") else ""), "r": cfg.get("r"),
                "lora_alpha": cfg.get("lora_alpha"), "base_model_name_or_path": self.base_model or None,
                "tensors": len(self._terms)}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._state = None
