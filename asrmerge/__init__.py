"""asrmerge: merge Whisper checkpoints fine-tuned on many domains into one model.

The package is a toolchain of small commands (``asrmerge taskvec``, ``merge``, ``svd-inspect``,
``transcribe``, ``wer``, ``convert``) over safetensors files and JSONL, and a Python API of the same
operations (:mod:`asrmerge.api`): :func:`taskvec`, :func:`apply`, :func:`merge`, :func:`open_checkpoint`,
:func:`transcribe`, :func:`wer`.

Importing it is cheap: the API is loaded on first use (PEP 562), and torch and transformers are imported by
the functions that need them, never here. ``asrmerge.merge`` is also the subpackage of the merge
algorithms: the package object is callable as the function (see :mod:`asrmerge.merge`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["apply", "merge", "open_checkpoint", "taskvec", "transcribe", "wer"]

if TYPE_CHECKING:
    from asrmerge.api import apply, merge, open_checkpoint, taskvec, transcribe, wer


def __getattr__(name: str) -> Any:
    if name == "merge":
        # the subpackage, made callable as asrmerge.api.merge: the same object, whichever import came first
        import importlib

        return importlib.import_module("asrmerge.merge")
    if name in __all__:
        from asrmerge import api

        return getattr(api, name)
    raise AttributeError(f"module 'asrmerge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
