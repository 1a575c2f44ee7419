"""Load any checkpoint asrmerge reads as a transformers Whisper model, on the right device and dtype.

The weights come through :func:`asrmerge.io.checkpoint.open_checkpoint`, so a Hugging Face folder, a
``.safetensors`` file, ``-`` (a merged model piped in), a CTranslate2 folder and ``packaged:NAME`` all work;
config, generation config and processor come from the checkpoint's folder or from ``--config DIR`` (the
base model's folder). The device comes from :func:`asrmerge.device.resolve` (CUDA when available,
``cuda:$LOCAL_RANK`` under torchrun, else CPU); the dtype defaults to fp32 on CPU, fp16 on CUDA.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrmerge.asr.audio import SAMPLE_RATE
from asrmerge.errors import InputError, UsageError

DTYPES = ("fp32", "fp16", "bf16")


@contextmanager
def quiet_transformers(verbose: bool) -> Iterator[None]:
    """Silence transformers' warnings, notes and progress bars on stderr, unless ``verbose``.

    Args:
        verbose: leave them on (``--debug``).
    """
    if verbose:
        yield
        return
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()


def resolve_dtype(name: str | None, device: Any) -> Any:
    """The compute dtype: ``--dtype``, else fp16 on CUDA and fp32 elsewhere.

    Args:
        name: ``fp32``, ``fp16``, ``bf16``, or ``None`` for the device's default.
        device: the torch device the model will run on.
    Returns:
        A torch dtype.
    Raises:
        UsageError: bf16 on a GPU without bf16 support.
    """
    import torch

    if name is None:
        name = "fp16" if device.type == "cuda" else "fp32"
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {name!r}", subject="--dtype", hint="use fp32, fp16 or bf16")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError("this GPU has no bf16 support", subject="--dtype", hint="use fp16")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


@dataclass
class Whisper:
    """A loaded Whisper model and what generation needs to know about it."""

    model: Any
    processor: Any
    label: str
    device: Any
    dtype: Any
    multilingual: bool
    languages: dict[str, int]  # "<|pt|>" -> token id; empty for English-only models or without a table
    max_target_positions: int
    chunk_length: int = 30  # seconds of audio per encoder window (Whisper's own: 30)
    gen_long: Any = None  # the generation config as loaded: long-form generation uses it
    gen_short: Any = None  # the same without suppression lists, which ``suppress`` applies instead
    suppress: Any = None  # an asrmerge.asr.suppress.Suppress

    @property
    def window_samples(self) -> int:
        """Samples of 16 kHz audio in one encoder window: longer audio needs long-form generation."""
        return self.chunk_length * SAMPLE_RATE


def _support_files(ckpt: Any, config_dir: Path | None) -> dict[str, bytes]:
    from asrmerge.io.hf_files import SUPPORT_FILES

    files = dict(ckpt.support_files())
    if config_dir is not None:
        if not config_dir.is_dir():
            raise UsageError("is not a folder", subject=str(config_dir), hint="--config takes the base model's folder")
        files.update({n: (config_dir / n).read_bytes() for n in SUPPORT_FILES if (config_dir / n).is_file()})
    if "config.json" not in files:
        raise UsageError("has no config.json beside its weights", subject=ckpt.label,
                         hint="pass --config DIR, the Hugging Face folder of the model it was made from")
    if "tokenizer.json" not in files and "vocab.json" not in files:
        raise UsageError("has no tokenizer files", subject=str(config_dir or ckpt.label),
                         hint="pass --config DIR, the Hugging Face folder of the model it was made from")
    return files


def load(spec: str, *, config_dir: Path | None = None, device: Any = None, dtype: Any = None,
         chunk_length: int = 30, verbose: bool = False) -> Whisper:
    """Open ``spec`` and build a ready-to-generate Whisper model from it.

    Args:
        spec: any checkpoint :func:`asrmerge.io.checkpoint.open_checkpoint` reads.
        config_dir: a folder whose config, generation config, processor and tokenizer files to use.
        device: a torch device (default CPU).
        dtype: a torch dtype (default float32).
        chunk_length: seconds per encoder window (see :func:`set_chunk_length`).
        verbose: let transformers print its warnings.
    Returns:
        The model, its processor, and its language table.
    Raises:
        InputError: a task vector, weights that do not fit the config, or weights with NaN or Inf values.
        UsageError: no config or tokenizer files anywhere.
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    from asrmerge.io.checkpoint import PROJ_OUT, open_checkpoint
    from asrmerge.io.tensors import finite

    device = device or torch.device("cpu")
    dtype = dtype or torch.float32
    with open_checkpoint(spec) as ckpt, quiet_transformers(verbose), tempfile.TemporaryDirectory() as tmp:
        if ckpt.kind == "taskvec":
            raise InputError("is a task vector, not a model", subject=spec,
                             hint="apply it to its base first: asrmerge taskvec --apply BASE TV -o model/")
        for name, data in _support_files(ckpt, config_dir).items():
            (Path(tmp) / name).write_bytes(data)
        try:
            config = WhisperConfig.from_pretrained(tmp)
            gen = (GenerationConfig.from_pretrained(tmp) if (Path(tmp) / "generation_config.json").is_file()
                   else GenerationConfig.from_model_config(config))
            processor = WhisperProcessor.from_pretrained(tmp)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"unusable config or tokenizer files ({e})", subject=str(config_dir or spec)) from e
        with torch.device("meta"):
            model = WhisperForConditionalGeneration(config)
        want = {k: v.shape for k, v in model.state_dict().items() if k != PROJ_OUT}
        have = ckpt.infos
        problems = [f"tensor {n} is missing" for n in want if n not in have]
        problems += [f"tensor {n} is not part of Whisper" for n in have if n not in want]
        problems += [f"tensor {n}: shape {list(have[n].shape)} vs {list(s)} in config.json" for n, s in want.items()
                     if n in have and tuple(have[n].shape) != tuple(s)]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise InputError(problems[0] + more, subject=spec,
                             hint="is it a Whisper model of the size --config describes? (same base model?)")
        state = {}
        for name in want:
            t = finite(ckpt.get(name), name, spec)
            state[name] = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        model.load_state_dict(state, strict=False, assign=True)
        model.proj_out.weight = model.model.decoder.embed_tokens.weight  # tied, stored once
        model.generation_config = gen
        model.eval()
    from asrmerge.asr.suppress import split

    multilingual = bool(getattr(gen, "is_multilingual", config.vocab_size >= 51865))
    languages = dict(getattr(gen, "lang_to_id", None) or {}) if multilingual else {}
    short, suppress = split(gen)
    w = Whisper(model, processor, spec, device, dtype, multilingual, languages, int(config.max_target_positions),
                30, gen, short, suppress)
    if chunk_length != 30:
        set_chunk_length(w, chunk_length)
    return w


def check_chunk_length(seconds: int) -> None:
    """Raise :class:`UsageError` unless ``seconds`` is a window Whisper's encoder can have (1 to 30)."""
    if not 1 <= seconds <= 30:
        raise UsageError(f"{seconds} s is outside Whisper's 30 s window", subject="--chunk-length",
                         hint="use a whole number of seconds from 1 to 30")


def shorten_encoder(model: Any, seconds: int) -> None:
    """Cut a transformers Whisper model's encoder window from 30 s to ``seconds``.

    The encoder keeps its first ``seconds`` x 50 positional embeddings (1500 for 30 s), and the configs say
    so, so that it accepts ``seconds`` of features. Used by :func:`set_chunk_length`, and by the study's
    fine-tuning, which caches encoder outputs over the same window.

    Raises:
        UsageError: ``seconds`` is not between 1 and 30.
    """
    import torch

    check_chunk_length(seconds)
    encoder = model.model.encoder
    full = encoder.embed_positions.weight
    n = full.shape[0] * seconds // 30
    encoder.embed_positions = torch.nn.Embedding.from_pretrained(full[:n].detach().clone(), freeze=True)
    model.config.max_source_positions = encoder.config.max_source_positions = encoder.max_source_positions = n


def set_chunk_length(w: Whisper, seconds: int) -> None:
    """Make ``w``'s encoder window ``seconds`` long instead of Whisper's 30 s.

    The encoder is shortened (:func:`shorten_encoder`) and the feature extractor pads to ``seconds``: on
    short utterances the encoder then does 30 / ``seconds`` times less work. Whisper was trained on 30 s
    windows only, so the transcripts can change; audio longer than the window is transcribed with long-form
    generation over windows of this length.

    Raises:
        UsageError: ``seconds`` is not between 1 and 30.
    """
    shorten_encoder(w.model, seconds)
    fe = w.processor.feature_extractor
    fe.chunk_length = seconds
    fe.n_samples = seconds * fe.sampling_rate
    fe.nb_max_frames = fe.n_samples // fe.hop_length
    w.chunk_length = seconds


def generation_options(w: Whisper, language: str | None, task: str | None) -> dict[str, Any]:
    """The ``generate`` keywords for ``--language`` and ``--task``, checked against the model.

    Args:
        w: the model.
        language: a code (``pt``), a token (``<|pt|>``), a name (``portuguese``), or ``None`` (detect).
        task: ``transcribe``, ``translate``, or ``None``.
    Returns:
        ``language`` and ``task`` keywords for ``generate``: ``task`` always (``transcribe`` by default) for
        multilingual models, nothing for English-only ones.
    Raises:
        UsageError: a language the model does not know, or translation with an English-only model.
    """
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    if task not in (None, "transcribe", "translate"):
        raise UsageError(f"unknown task {task!r}", subject="--task", hint="use transcribe or translate")
    code = None
    if language is not None:
        name = language.strip().lower().removeprefix("<|").removesuffix("|>")
        code = TO_LANGUAGE_CODE.get(name, name)
    if not w.multilingual:
        if code not in (None, "en"):
            raise UsageError(f"is an English-only model: it cannot transcribe {language!r}", subject=w.label,
                             hint="use a multilingual Whisper model, or leave out --language")
        if task == "translate":
            raise UsageError("is an English-only model: it cannot translate", subject=w.label,
                             hint="use a multilingual Whisper model")
        return {}
    opts: dict[str, Any] = {}
    if code is not None:
        if not w.languages:
            raise UsageError("has no language table (lang_to_id in generation_config.json)", subject=w.label,
                             hint="pass --config DIR, the folder of the model it was made from")
        if f"<|{code}|>" not in w.languages:
            raise UsageError(f"unknown language {language!r}", subject="--language",
                             hint="use a code such as en, pt, de, zh (see lang_to_id in generation_config.json)")
        opts["language"] = code
    # Always name the task: when transformers 5 detects the language itself and no task is given, it leaves
    # <|transcribe|> out of the prompt, and Whisper then repeats words ("Americans Americans ...").
    opts["task"] = task or "transcribe"
    return opts
