"""Decode audio files to what Whisper takes: mono float32 samples at 16 kHz.

WAV, FLAC, OGG/Vorbis, MP3 and the other formats libsndfile reads are decoded with ``soundfile``;
anything else (m4a, webm, ...), or a file soundfile rejects, goes through ``ffmpeg`` when it is on
``PATH``, and is a clear error naming the file when it is not. Several channels are averaged (downmix);
any sample rate is resampled to 16 kHz with a windowed-sinc filter (:func:`resample`).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np

from asrmerge.errors import InputError

SAMPLE_RATE = 16000
# above this many filter taps (rates whose ratio has no small fraction, e.g. 44099 Hz) filter point by point
MAX_KERNEL = 4_000_000


def load(path: str | Path) -> np.ndarray:
    """The samples of an audio file as 16 kHz mono float32.

    Args:
        path: the audio file.
    Returns:
        A 1-D ``float32`` array at :data:`SAMPLE_RATE`.
    Raises:
        InputError: the file is missing, empty, undecodable, or has non-finite samples.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such audio file", subject=str(p), hint="check the manifest's \"audio\" path")
    if p.is_dir():
        raise InputError("is a folder, not an audio file", subject=str(p))
    try:
        audio, rate = _soundfile(p)
    except InputError as sf_error:
        if shutil.which("ffmpeg") is None:
            raise InputError(f"cannot decode ({sf_error.message}), and ffmpeg is not installed", subject=str(p),
                             hint="install ffmpeg to read this format, or convert the file to wav or flac") from None
        audio, rate = _ffmpeg(p), SAMPLE_RATE
    if audio.size == 0:
        raise InputError("has no audio samples", subject=str(p), hint="is the file empty?")
    if not np.isfinite(audio).all():
        raise InputError("has NaN or Inf samples", subject=str(p), hint="the file is damaged")
    return resample(audio, rate, SAMPLE_RATE)


def _soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:  # LibsndfileError is a RuntimeError in recent versions
        message = str(e).split(": ", 1)[-1].strip().rstrip(".") or "unknown error"
        raise InputError(f"soundfile: {message}", subject=str(path)) from e
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)


def _ffmpeg(path: Path) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn",
           "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    r = subprocess.run(cmd, capture_output=True, check=False)
    if r.returncode != 0:
        lines = r.stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {r.returncode}"
        raise InputError(f"cannot decode (ffmpeg: {detail.removeprefix(str(path) + ': ')})", subject=str(path),
                         hint="is it an audio file? is it complete?")
    return np.frombuffer(r.stdout, dtype="<f4").astype(np.float32)


def resample(audio: np.ndarray, orig: int, new: int, *, lowpass_width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Resample a 1-D signal from ``orig`` Hz to ``new`` Hz with a Hann-windowed sinc filter.

    The filter of torchaudio's ``resample`` (``lowpass_width`` zero crossings each side, cut-off at
    ``rolloff`` times the lower Nyquist frequency), written out here because torchaudio is not a
    dependency. Rates with a small ratio (44.1 kHz: 160/441) run as a polyphase convolution; others (say
    44099 Hz), whose filter bank would exceed :data:`MAX_KERNEL` taps, evaluate the same filter at each
    output instant (:func:`resample_direct`).

    Args:
        audio: the samples.
        orig: their rate.
        new: the rate wanted.
        lowpass_width: zero crossings of the sinc kept on each side.
        rolloff: cut-off as a fraction of the lower Nyquist frequency.
    Returns:
        ``ceil(len(audio) * new / orig)`` float32 samples.
    """
    if orig <= 0 or new <= 0:
        raise InputError(f"sample rate {orig} Hz cannot be resampled")
    if orig == new:
        return audio.astype(np.float32, copy=False)
    g = math.gcd(orig, new)
    up, down = new // g, orig // g
    base = min(up, down) * rolloff
    width = math.ceil(lowpass_width * down / base)
    if up * (2 * width + down) > MAX_KERNEL:
        return resample_direct(audio, orig, new, lowpass_width=lowpass_width, rolloff=rolloff)
    import torch

    idx = torch.arange(-width, width + down, dtype=torch.float64)[None, None] / down
    t = (torch.arange(0, -up, -1, dtype=torch.float64)[:, None, None] / up + idx) * base
    kernel = torch.from_numpy(_kernel(t.numpy(), lowpass_width) * base / down).to(torch.float32)
    n = audio.shape[0]
    x = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None],
                                (width, width + down))
    y = torch.nn.functional.conv1d(x, kernel, stride=down)  # (1, up, frames): phase-major
    out = y[0].transpose(0, 1).reshape(-1)[: math.ceil(up * n / down)]
    return out.numpy().astype(np.float32, copy=False)


def _kernel(t: np.ndarray, lowpass_width: int) -> np.ndarray:
    """Hann-windowed sinc at ``t`` (in zero crossings), zero beyond ``lowpass_width``."""
    t = np.clip(t, -lowpass_width, lowpass_width)
    window = np.cos(t * math.pi / lowpass_width / 2) ** 2
    return np.sinc(t) * window


def resample_direct(audio: np.ndarray, orig: int, new: int, *, lowpass_width: int = 6,
                    rolloff: float = 0.99) -> np.ndarray:
    """:func:`resample`'s filter evaluated at every output instant: any ratio, in bounded memory.

    Args:
        audio: the samples.
        orig: their rate.
        new: the rate wanted.
        lowpass_width: zero crossings of the sinc kept on each side.
        rolloff: cut-off as a fraction of the lower Nyquist frequency.
    Returns:
        ``ceil(len(audio) * new / orig)`` float32 samples.
    """
    n = audio.shape[0]
    m = math.ceil(n * new / orig)
    scale = min(orig, new) * rolloff / orig  # zero crossings per input sample
    reach = math.ceil(lowpass_width / scale)
    offsets = np.arange(-reach, reach + 2)
    x = np.concatenate([np.zeros(reach + 2), audio.astype(np.float64), np.zeros(reach + 2)])
    out = np.empty(m, dtype=np.float32)
    step = max(1, 2_000_000 // len(offsets))
    for start in range(0, m, step):
        centre = np.arange(start, min(m, start + step)) * (orig / new)  # output instants, in input samples
        taps = np.floor(centre).astype(np.int64)[:, None] + offsets[None, :]
        weights = _kernel((centre[:, None] - taps) * scale, lowpass_width) * scale
        out[start : start + len(centre)] = (x[taps + reach + 2] * weights).sum(axis=1)
    return out


def duration(audio: np.ndarray) -> float:
    """Seconds of 16 kHz audio.

    Args:
        audio: samples at :data:`SAMPLE_RATE`.
    Returns:
        Their duration in seconds.
    """
    return audio.shape[0] / SAMPLE_RATE
