"""Which tensors ``svd-inspect`` looks at, and the layer type and depth of each (docs/algorithms.md section 2 and 8.4).

By default the 2-D tensors of policy class ``svd`` (:class:`asrmerge.merge.policy.Policy`); ``--all`` adds
every 2-D float tensor. ``--include``/``--exclude`` globs match a canonical name, or the same name without
its leading ``model.`` (so ``encoder.layers.0.*`` works as well as ``model.encoder.layers.0.*``).

Layer types are the summary's groups: {encoder, decoder} x {self_attn, encoder_attn, fc}; anything else
(embeddings, convolutions with ``--all``) is ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

from asrmerge.io.tensors import TensorInfo
from asrmerge.merge.policy import Policy

GROUPS = ("encoder.self_attn", "encoder.fc", "decoder.self_attn", "decoder.encoder_attn", "decoder.fc", "other")
_LAYER = re.compile(r"(?:^|\.)(encoder|decoder)\.layers\.(\d+)\.(self_attn|encoder_attn|fc1|fc2)\b")


def _matches(name: str, globs: Iterable[str]) -> bool:
    short = name.removeprefix("model.")
    return any(fnmatchcase(name, g) or fnmatchcase(short, g) for g in globs)


def select(infos: Iterable[TensorInfo], *, include: list[str] | None = None, exclude: list[str] | None = None,
           all_2d: bool = False, policy: Policy | None = None) -> list[str]:
    """The names to inspect, in checkpoint order.

    Args:
        infos: the reference checkpoint's tensors.
        include: globs; when given, a name must match one of them.
        exclude: globs; a name matching any of them is left out.
        all_2d: every 2-D float tensor instead of the policy's ``svd`` class only.
        policy: the tensor policy (default: Whisper's).
    Returns:
        the selected canonical names.
    Paper: docs/algorithms.md section 2 (the policy) and 8.1 (which tensors section 8 covers).
    """
    policy = policy or Policy()
    names = []
    for info in infos:
        if len(info.shape) != 2 or not info.is_float:
            continue
        if not all_2d and policy.classify(info) != "svd":
            continue
        if include and not _matches(info.name, include):
            continue
        if exclude and _matches(info.name, exclude):
            continue
        names.append(info.name)
    return names


def group(name: str) -> str:
    """The layer type of a tensor: ``encoder.self_attn``, ``decoder.encoder_attn``, ``decoder.fc``, ... or ``other``.

    Args:
        name: a canonical Hugging Face Whisper name.
    Returns:
        one of :data:`GROUPS`.
    """
    m = _LAYER.search(name)
    if not m:
        return "other"
    module = "fc" if m.group(3).startswith("fc") else m.group(3)
    return f"{m.group(1)}.{module}"


def layer(name: str) -> int | None:
    """The layer index of a tensor inside its encoder or decoder stack (None outside the layers)."""
    m = _LAYER.search(name)
    return int(m.group(2)) if m else None
