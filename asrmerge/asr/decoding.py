"""Batched Whisper transcription of manifest utterances, written back in input order.

Utterances are taken a **window** at a time (``batch_size * window`` of them). While one window is on the
model, worker threads decode the next one's audio. Inside a window, utterances are sorted by length and cut
into batches, so the decoder wastes few steps on padding and the longest batch runs first (an out-of-memory
error shows up at once); then results are put back in input order. Audio up to 30 s is padded to Whisper's
30 s window; a batch holding longer audio uses transformers' sequential long-form generation (timestamp
tokens, 30 s windows shifted by the last predicted timestamp), so long recordings are transcribed whole.

Each batch generates at most :func:`asrmerge.asr.runaway.token_budget` new tokens, from its longest
utterance's duration, unless ``max_new_tokens`` is set; hypotheses that hit that budget or repeat
themselves are marked (``truncated``, ``repetition``), and every record says the language decoded
(``hyp_language``: given, or detected by the model).

An utterance whose audio cannot be read becomes a result with an error and no hypothesis; the others go
on. Statistics (:class:`Stats`) give utterances per second and the real-time factor
(processing seconds / audio seconds).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from asrmerge.asr import audio as audio_io
from asrmerge.asr import runaway
from asrmerge.asr.manifest import Utterance
from asrmerge.asr.model import Whisper, generation_options, quiet_transformers
from asrmerge.errors import AsrmergeError, UsageError
from asrmerge.progress import NoProgress, Progress

SHORT = 30 * audio_io.SAMPLE_RATE  # Whisper's window: longer audio needs long-form generation (see --chunk-length)
PROMPT_TOKENS = 4  # <|startoftranscript|> <|lang|> <|task|> <|notimestamps|>


@dataclass
class Settings:
    """How to transcribe.

    Attributes:
        language: language code or name (``None``: detected per utterance by multilingual models).
        language_field: a record field naming each utterance's language (overrides ``language`` where set),
            so that one run decodes a multilingual manifest, each utterance in its own language.
        task: ``transcribe`` or ``translate`` (``None``: the model's default, transcribe).
        beam_size: 1 for greedy decoding, else beam search with this many beams.
        batch_size: utterances per ``generate`` call.
        max_new_tokens: tokens generated at most per utterance (per window in long-form); ``None``: from the
            audio's duration (:func:`asrmerge.asr.runaway.token_budget`).
        window: batches per sorting window.
        workers: audio-decoding threads.
    """

    language: str | None = None
    language_field: str | None = None
    task: str | None = None
    beam_size: int = 1
    batch_size: int = 16
    max_new_tokens: int | None = None
    window: int = 8
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))


@dataclass
class Stats:
    """Running totals: utterances done and failed, seconds of audio, seconds since the start, runaway marks."""

    done: int = 0
    failed: int = 0
    truncated: int = 0  # hypotheses that hit the token budget
    repetition: int = 0  # hypotheses that repeat themselves
    ran_away: int = 0  # hypotheses with either mark
    audio_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def rate(self) -> float:
        """Utterances per second."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def rtf(self) -> float:
        """Real-time factor: processing seconds per second of audio (below 1 is faster than real time)."""
        return self.elapsed / self.audio_s if self.audio_s > 0 else 0.0


@dataclass(frozen=True)
class Hypothesis:
    """What Whisper made of one utterance.

    Attributes:
        text: the transcript, stripped.
        language: the language decoded (a code: given, or detected), ``None`` if the model has no table.
        truncated: generation stopped at the token budget before the end of the text.
        repetition: the text repeats a piece many times (:func:`asrmerge.asr.runaway.repeats`).
    """

    text: str
    language: str | None
    truncated: bool = False
    repetition: bool = False

    def fields(self) -> dict[str, Any]:
        """The output record's fields: ``hyp``, ``hyp_language``, and the runaway marks when set."""
        out: dict[str, Any] = {"hyp": self.text, "hyp_language": self.language}
        if self.truncated:
            out["truncated"] = True
        if self.repetition:
            out["repetition"] = True
        return out


HYPOTHESIS_FIELDS = ("hyp", "hyp_language", "truncated", "repetition", "error")


@dataclass
class Result:
    """One utterance's output record, and the error that stopped it (then the record has no ``hyp``)."""

    utterance: Utterance
    record: dict[str, Any]
    error: AsrmergeError | None = None


def check_settings(w: Whisper, s: Settings) -> dict[str, Any]:
    """Validate settings against the model.

    Args:
        w: the model.
        s: the settings.
    Returns:
        The ``generate`` keywords they give.
    Raises:
        UsageError: a bad batch or beam size, too many new tokens, or a language the model lacks.
    """
    if s.batch_size < 1:
        raise UsageError(f"{s.batch_size} is not a batch size", subject="--batch-size", hint="use 1 or more")
    if s.beam_size < 1:
        raise UsageError(f"{s.beam_size} is not a beam size", subject="--beam-size", hint="use 1 (greedy) or more")
    limit = w.max_target_positions - PROMPT_TOKENS
    if s.max_new_tokens is not None and not 1 <= s.max_new_tokens <= limit:
        raise UsageError(f"{s.max_new_tokens} is outside 1..{limit}", subject="--max-new-tokens",
                         hint=f"the model's decoder holds {w.max_target_positions} tokens, {PROMPT_TOKENS} of them the prompt")
    opts = generation_options(w, s.language, s.task)
    opts.update(num_beams=s.beam_size, do_sample=False)
    if s.max_new_tokens is not None:
        opts["max_new_tokens"] = s.max_new_tokens
    return opts


def _decode(u: Utterance) -> tuple[np.ndarray | None, AsrmergeError | None]:
    try:
        return audio_io.load(u.path), None
    except AsrmergeError as e:
        return None, e


def batches(lengths: list[int], batch_size: int, short: int = SHORT) -> list[list[int]]:
    """Cut utterances into batches by length.

    Args:
        lengths: samples per utterance.
        batch_size: utterances per batch at most.
        short: samples in one encoder window (30 s unless ``--chunk-length``).
    Returns:
        Lists of indices into ``lengths``: longest first, never mixing audio that fits one window with longer
        audio (which needs long-form generation).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and (lengths[out[-1][0]] > short) == (lengths[i] > short):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def generate(w: Whisper, audios: list[np.ndarray], opts: dict[str, Any], *,
             fast_suppress: bool = True) -> list[Hypothesis]:
    """Transcribe one batch of 16 kHz audio.

    Without ``max_new_tokens`` in ``opts``, the batch's budget is :func:`asrmerge.asr.runaway.token_budget` of
    its longest utterance (of one window in long-form). Without ``language``, a multilingual model's
    language is detected here, per utterance, as transformers would (one decoder step on the first window),
    and passed on, so that each hypothesis knows its language.

    Args:
        w: the model.
        audios: the batch.
        opts: ``generate`` keywords from :func:`check_settings`.
        fast_suppress: suppress tokens by index in short-form batches (:mod:`asrmerge.asr.suppress`; the same
            tokens come out), rather than with transformers' processors.
    Returns:
        One hypothesis per input.
    Raises:
        AsrmergeError: the GPU ran out of memory.
    """
    import torch

    longest = max(a.shape[0] for a in audios)
    long = longest > w.window_samples
    kw: dict[str, Any] = {"sampling_rate": audio_io.SAMPLE_RATE, "return_tensors": "pt", "return_attention_mask": True}
    if long:
        kw.update(truncation=False, padding="longest")
    feats = w.processor.feature_extractor(audios, device=str(w.device) if w.device.type == "cuda" else "cpu", **kw)
    features = feats.input_features.to(w.device, w.dtype)
    mask = feats.attention_mask.to(w.device)
    extra: dict[str, Any] = {}
    if fast_suppress and not long and w.suppress is not None:
        from transformers import LogitsProcessorList

        w.model.generation_config = w.gen_short
        extra["logits_processor"] = LogitsProcessorList([w.suppress])
    elif w.gen_long is not None:
        w.model.generation_config = w.gen_long
    opts = dict(opts)
    if opts.get("max_new_tokens") is None:
        seconds = w.chunk_length if long else longest / audio_io.SAMPLE_RATE
        opts["max_new_tokens"] = runaway.token_budget(seconds, w.max_target_positions - PROMPT_TOKENS)
    try:
        with torch.inference_mode():
            languages = _languages(w, features, opts)
            if languages is not None and w.multilingual and "language" not in opts:
                opts["language"] = languages
            out = w.model.generate(features, attention_mask=mask, return_timestamps=long, **opts, **extra)
    except torch.cuda.OutOfMemoryError:
        raise AsrmergeError(f"out of memory on {w.device} with a batch of {len(audios)}",
                            hint="lower --batch-size (or --beam-size)") from None
    sequences = out if isinstance(out, torch.Tensor) else out["sequences"]
    texts = [t.strip() for t in w.processor.batch_decode(sequences, skip_special_tokens=True)]
    budget = int(opts["max_new_tokens"])
    hyps = []
    for i, text in enumerate(texts):
        truncated = not long and _generated(sequences[i].tolist(), w) >= budget
        hyps.append(Hypothesis(text, languages[i] if languages else None, truncated, runaway.repeats(text)))
    return hyps


def _languages(w: Whisper, features: Any, opts: dict[str, Any]) -> list[str] | None:
    """Each utterance's language code: ``en`` for English-only models, the given one, or detected."""
    n = features.shape[0]
    if not w.multilingual:
        return ["en"] * n
    given = opts.get("language")
    if given is not None:
        return list(given) if isinstance(given, list | tuple) else [str(given)] * n
    if not w.languages:
        return None
    ids = w.model.detect_language(input_features=features,
                                  num_segment_frames=w.processor.feature_extractor.nb_max_frames).tolist()
    codes = {token_id: token[2:-2] for token, token_id in w.languages.items()}
    return [codes[i] for i in ids]


def _generated(tokens: list[int], w: Whisper) -> int:
    """New tokens generated before the end of text (prompt tokens, if returned, left out)."""
    eot = w.model.generation_config.eos_token_id
    start = w.model.generation_config.decoder_start_token_id
    if tokens and tokens[0] == start:  # the prompt came back: it ends at <|notimestamps|>
        tokens = tokens[PROMPT_TOKENS if w.multilingual else 2:]
    return tokens.index(eot) if eot in tokens else len(tokens)


def transcribe(w: Whisper, utterances: list[Utterance], settings: Settings, *, progress: Progress | None = None,
               stats: Stats | None = None, verbose: bool = False) -> Iterator[Result]:
    """Transcribe ``utterances``; yield one :class:`Result` each, in input order.

    Args:
        w: the model.
        utterances: what to transcribe.
        settings: decoding settings (check them first with :func:`check_settings` for early errors).
        progress: told the number of utterances, then each finished batch with speed and RTF.
        stats: updated as results are produced.
        verbose: let transformers print its warnings.
    Returns:
        An iterator of results: records with ``hyp`` and ``model`` added, or with ``error`` and no ``hyp``.
    """
    progress = progress or NoProgress()
    stats = stats if stats is not None else Stats()
    opts = check_settings(w, settings)
    by_language: dict[str | None, dict[str, Any]] = {settings.language: opts}

    def options(u: Utterance) -> tuple[str | None, dict[str, Any]]:
        value = u.record.get(settings.language_field) if settings.language_field else None
        lang = str(value) if value else settings.language
        if lang not in by_language:
            by_language[lang] = check_settings(w, replace(settings, language=lang))
        return lang, by_language[lang]

    size = settings.batch_size * settings.window
    windows = [utterances[i : i + size] for i in range(0, len(utterances), size)]
    progress.start(len(utterances), "transcribe")
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="asrmerge-audio")
    try:
        pending: list[Future[tuple[np.ndarray | None, AsrmergeError | None]]] = [
            pool.submit(_decode, u) for u in (windows[0] if windows else [])]
        for k, window in enumerate(windows):
            decoded = [f.result() for f in pending]
            pending = [pool.submit(_decode, u) for u in windows[k + 1]] if k + 1 < len(windows) else []
            ok = {i: a for i, (a, _) in enumerate(decoded) if a is not None}
            groups: dict[str | None, list[int]] = {}
            for i in ok:
                groups.setdefault(options(window[i])[0], []).append(i)
            hyps: dict[int, Hypothesis] = {}
            with quiet_transformers(verbose):
                for lang, order in groups.items():
                    for batch in batches([ok[i].shape[0] for i in order], settings.batch_size, w.window_samples):
                        idx = [order[j] for j in batch]
                        audios = [ok[i] for i in idx]
                        hyps.update(zip(idx, generate(w, audios, by_language[lang]), strict=True))
                        stats.done += len(idx)
                        stats.audio_s += sum(audio_io.duration(a) for a in audios)
                        progress.advance(f"{stats.rate:.2f} utt/s, RTF {stats.rtf:.3f}", amount=len(idx))
            for i, u in enumerate(window):
                error = decoded[i][1]
                record = {k2: v for k2, v in u.record.items() if k2 not in HYPOTHESIS_FIELDS}
                if error is not None:
                    stats.failed += 1
                    progress.advance(f"{stats.rate:.2f} utt/s, RTF {stats.rtf:.3f}")
                    yield Result(u, {**record, "error": error.message, "model": w.label}, error)
                else:
                    h = hyps[i]
                    stats.truncated += h.truncated
                    stats.repetition += h.repetition
                    stats.ran_away += h.truncated or h.repetition
                    yield Result(u, {**record, **h.fields(), "model": w.label})
        stats.finished = time.perf_counter()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
