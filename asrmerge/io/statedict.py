"""PyTorch pickles of plain state dicts (``torch.save(model.state_dict(), f)``), read safely.

Task vectors from the TSV-M and Iso-C reference code, FusionBench, or a user's script are often saved
this way, and older PEFT adapters store their weights as ``adapter_model.bin``. They are read only with
``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds tensors and plain
containers and refuses every other object, so a file cannot run code. Accepted layouts: a flat
``{name: tensor}`` dict, or a dict whose one dict value is that (``{"state_dict": {...}}``). openai-whisper
names (``encoder.blocks.0.attn.query.weight``) are mapped to Hugging Face ones.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asrmerge.errors import InputError
from asrmerge.io.tensors import TensorInfo, st_code


def load_state_dict(path: Path, label: str) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` dict pickled in ``path``, loaded with ``torch.load(weights_only=True)``.

    Raises:
        InputError: the file holds anything but plain tensors in (at most) one level of dicts.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # the restricted unpickler refuses other objects with various errors
        raise InputError(f"is a pickle that is not a plain state dict ({type(e).__name__}); asrmerge reads pickles "
                         "only with torch.load(weights_only=True)", subject=label,
                         hint="save it with torch.save(model.state_dict(), f), or as safetensors") from e
    if isinstance(obj, dict) and obj and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [v for v in obj.values() if isinstance(v, dict)]
        if len(inner) == 1:
            obj = inner[0]
    if not isinstance(obj, dict) or not obj:
        raise InputError("is a pickle but not a {name: tensor} state dict", subject=label,
                         hint="save it with torch.save(model.state_dict(), f), or as safetensors")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise InputError(f"entry {k!r} of the pickled state dict is a {type(v).__name__}, not a tensor",
                             subject=label, hint="save only the tensors: torch.save(model.state_dict(), f)")
    return obj


class StateDictBackend:
    """A pickled state dict as a checkpoint backend (task vectors declared with ``--tau``)."""

    def __init__(self, path: Path, *, label: str | None = None) -> None:
        self.label = label or str(path)
        self.metadata: dict[str, str] = {}
        state = load_state_dict(path, self.label)
        if any(".blocks." in k for k in state):
            from asrmerge.io.openai import openai_to_hf

            mapped: dict[str, torch.Tensor] = {}
            for k, v in state.items():
                hf = openai_to_hf(k)
                if hf is not None:
                    mapped[hf] = v
            state = mapped
        self._tensors = state
        self.infos = {n: TensorInfo(n, tuple(t.shape), st_code(t.dtype)) for n, t in state.items()}

    def read(self, name: str) -> torch.Tensor:
        return self._tensors[name].clone()

    def read_rows(self, name: str, rows: list[int]) -> torch.Tensor:
        return self._tensors[name][rows].clone()

    def read_range(self, name: str, start: int, stop: int) -> torch.Tensor:
        return self._tensors[name][start:stop].clone()

    def support_files(self) -> dict[str, bytes]:
        return {}

    def close(self) -> None:
        self._tensors.clear()
