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
# above this many filter taps (rates whose ratio has no small fraction, e.g. 44099 Hz) resample by FFT
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

    The method of torchaudio's ``resample`` (polyphase, ``lowpass_width`` zero crossings, cut-off at
    ``rolloff`` times the lower Nyquist frequency), written out here because torchaudio is not a
    dependency. Rates whose ratio needs a filter bank of more than :data:`MAX_KERNEL` taps are resampled
    in the frequency domain instead (:func:`resample_fft`).

    Args:
        audio: the samples.
        orig: their rate.
        new: the rate wanted.
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
        return resample_fft(audio, orig, new)
    import torch

    idx = torch.arange(-width, width + down, dtype=torch.float64)[None, None] / down
    t = (torch.arange(0, -up, -1, dtype=torch.float64)[:, None, None] / up + idx) * base
    t = t.clamp(-lowpass_width, lowpass_width)
    window = torch.cos(t * math.pi / lowpass_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    kernel = (sinc * window * base / down).to(torch.float32)
    n = audio.shape[0]
    x = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None],
                                (width, width + down))
    y = torch.nn.functional.conv1d(x, kernel, stride=down)  # (1, up, frames): phase-major
    out = y[0].transpose(0, 1).reshape(-1)[: math.ceil(up * n / down)]
    return out.numpy().astype(np.float32, copy=False)


def resample_fft(audio: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample by truncating or zero-padding the spectrum (exact for band-limited periodic signals).

    Args:
        audio: the samples.
        orig: their rate.
        new: the rate wanted.
    Returns:
        ``ceil(len(audio) * new / orig)`` float32 samples.
    """
    n = audio.shape[0]
    m = math.ceil(n * new / orig)
    spectrum = np.fft.rfft(audio.astype(np.float64))
    keep = min(len(spectrum), m // 2 + 1)
    out = np.zeros(m // 2 + 1, dtype=np.complex128)
    out[:keep] = spectrum[:keep]
    if m % 2 == 0 and keep == m // 2 + 1 and m < n:
        out[-1] = out[-1].real  # the new Nyquist bin of a real signal is real
    return (np.fft.irfft(out, n=m) * (m / n)).astype(np.float32)


def duration(audio: np.ndarray) -> float:
    """Seconds of 16 kHz audio."""
    return audio.shape[0] / SAMPLE_RATE
