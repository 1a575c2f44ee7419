"""The per-tensor policy of docs/algorithms.md section 2: which tensors take the subspace algorithms' matrix path.

Every tensor gets one class:

- ``svd``: the algorithm's matrix rule (subspace algorithms); normal for the others;
- ``svd-flat`` (override only): reshape an N-D tensor to (shape[0], rest), apply the matrix rule, reshape back;
- ``mean``: tau* = (1/T) sum_t w_t tau_t for subspace algorithms; normal for the others;
- ``base``: W* = W_0 for every algorithm.

Rules are ordered ``PATTERN=CLASS`` pairs (globs on canonical Hugging Face names); the first match wins and
user rules come before the defaults below. Tensors no rule names: 2-D float tensors are ``svd`` (as the
reference code, which decomposes every matrix), others ``mean``; non-float tensors are ``base``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

from asrmerge.errors import UsageError
from asrmerge.io.tensors import TensorInfo

CLASSES = ("svd", "svd-flat", "mean", "base")
MATRIX_CLASSES = ("svd", "svd-flat")  # the subspace algorithms' matrix path

WHISPER_RULES: tuple[tuple[str, str], ...] = (
    ("model.*.layers.*.self_attn.[qkv]_proj.weight", "svd"),
    ("model.*.layers.*.self_attn.out_proj.weight", "svd"),
    ("model.decoder.layers.*.encoder_attn.[qkv]_proj.weight", "svd"),
    ("model.decoder.layers.*.encoder_attn.out_proj.weight", "svd"),
    ("model.*.layers.*.fc[12].weight", "svd"),
    ("*.bias", "mean"),
    ("*layer_norm.weight", "mean"),
    ("model.encoder.conv[12].weight", "mean"),
    ("model.decoder.embed_tokens.weight", "mean"),
    ("model.*.embed_positions.weight", "mean"),
)


def parse_rules(text: str) -> list[tuple[str, str]]:
    """``'glob=class;glob=class'`` (also newline-separated) as ordered pairs; a usage error otherwise."""
    rules = []
    for part in text.replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        pattern, sep, cls = part.rpartition("=")
        cls = cls.strip()
        if not sep or not pattern.strip():
            raise UsageError(f"policy rule {part!r} is not PATTERN=CLASS", subject="policy",
                             hint="write e.g. policy='model.decoder.embed_tokens.weight=svd;model.encoder.conv*=base'")
        if cls not in CLASSES:
            raise UsageError(f"policy rule {part!r}: unknown class {cls!r}", subject="policy",
                             hint=f"classes are {', '.join(CLASSES)}")
        rules.append((pattern.strip(), cls))
    return rules


@dataclass(frozen=True)
class Policy:
    """User rules, then the Whisper defaults, then the fallback."""

    user: tuple[tuple[str, str], ...] = ()

    @property
    def rules(self) -> tuple[tuple[str, str], ...]:
        return self.user + WHISPER_RULES

    def classify(self, info: TensorInfo) -> str:
        if not info.is_float:
            return "base"
        for pattern, cls in self.rules:
            if fnmatchcase(info.name, pattern):
                if cls == "svd" and len(info.shape) != 2:
                    raise UsageError(f"{info.name} has shape {list(info.shape)}: class svd needs a 2-D tensor",
                                     subject="policy", hint="use svd-flat to reshape it to a matrix, or mean")
                if cls == "svd-flat" and len(info.shape) < 2:
                    raise UsageError(f"{info.name} is 1-D: class svd-flat needs 2 or more dimensions", subject="policy",
                                     hint="use mean")
                return cls
        return "svd" if len(info.shape) == 2 else "mean"

    def describe(self) -> str:
        """The user rules as written (the defaults are implied), for provenance."""
        return ";".join(f"{p}={c}" for p, c in self.user) or "whisper-default"


def group_scale(rules: list[tuple[str, float]], name: str) -> float:
    """The per-group lambda factor of ``--lam 'GLOB=FACTOR'`` rules: first match, default 1."""
    for pattern, factor in rules:
        if fnmatchcase(name, pattern):
            return factor
    return 1.0


def parse_lam_rules(items: list[str]) -> list[tuple[str, float]]:
    """``--lam`` values (each ``GLOB=FACTOR``, or several joined by ';') as ordered pairs."""
    out = []
    for item in items:
        for part in item.split(";"):
            part = part.strip()
            if not part:
                continue
            pattern, sep, value = part.rpartition("=")
            try:
                factor = float(value)
            except ValueError:
                factor = float("nan")
            if not sep or not pattern or not math.isfinite(factor) or factor < 0:
                raise UsageError(f"{part!r} is not GLOB=FACTOR with FACTOR >= 0", subject="--lam",
                                 hint="write e.g. --lam 'model.encoder.*=0.5'")
            out.append((pattern, factor))
    return out
