"""Audio decoding: formats, downmix, resampling to 16 kHz, ffmpeg fallback, and the errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrmerge.asr import audio
from asrmerge.errors import InputError
from tests.conftest import AUDIO


def tones(rate: int, seconds: float, freqs: tuple[float, ...] = (440.0, 3000.0)) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(rate * seconds)) / rate
    return t, sum(0.3 * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


@pytest.mark.parametrize("rate", [48000, 44100, 32000, 22050, 11025, 8000, 44099])
def test_resample_keeps_tones_below_nyquist(rate: int) -> None:
    """A 440 Hz + 3 kHz signal comes out at 16 kHz as the same tones (44099 Hz has no small ratio: the point-by-point path)."""
    _, x = tones(rate, 1.5)
    y = audio.resample(x, rate, 16000)
    assert y.dtype == np.float32 and y.shape == (int(np.ceil(len(x) * 16000 / rate)),)
    t = np.arange(len(y)) / 16000
    want = sum(0.3 * np.sin(2 * np.pi * f * t) for f in (440.0, 3000.0))
    inner = slice(800, len(y) - 800)  # the filter's edges see zeros beyond the signal
    assert np.abs(y[inner] - want[inner]).max() < (1e-2 if rate == 8000 else 2e-3)


def test_resample_removes_what_16khz_cannot_hold() -> None:
    _, x = tones(48000, 1.0, (10000.0,))  # above the new Nyquist frequency (8 kHz): must not alias to 6 kHz
    y = audio.resample(x, 48000, 16000)
    assert np.sqrt(np.mean(y[800:-800] ** 2)) < 0.01 * np.sqrt(np.mean(x**2))


def test_polyphase_and_direct_filters_agree() -> None:
    """The polyphase convolution (small ratios) and the point-by-point filter (any ratio) are one filter."""
    _, x = tones(44100, 1.0)
    x = x + np.random.default_rng(0).normal(0, 0.05, x.shape).astype(np.float32)  # broadband, edges included
    for rate, new in ((44100, 16000), (8000, 16000), (22050, 16000)):
        a, b = audio.resample(x, rate, new), audio.resample_direct(x, rate, new)
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5, rate


def test_same_rate_is_untouched() -> None:
    _, x = tones(16000, 0.5)
    assert np.array_equal(audio.resample(x, 16000, 16000), x)


def test_wav_at_16k_is_read_as_is() -> None:
    raw, rate = sf.read(AUDIO / "jfk.wav", dtype="float32")
    got = audio.load(AUDIO / "jfk.wav")
    assert rate == 16000 and np.array_equal(got, raw)


@pytest.mark.parametrize("name", ["jfk.flac", "jfk.ogg", "jfk.mp3", "jfk.m4a"])
def test_formats_rates_and_channels(speech: Path, name: str) -> None:
    """44.1 kHz stereo FLAC, 22.05 kHz Vorbis, 48 kHz MP3 and AAC (ffmpeg) all decode to JFK at 16 kHz mono."""
    ref = audio.load(AUDIO / "jfk.wav")
    got = audio.load(speech / name)
    assert got.ndim == 1 and got.dtype == np.float32
    assert abs(len(got) - len(ref)) < 0.1 * 16000  # codecs pad a few ms
    # align (codec delay) and compare shapes of the waveforms: lossy codecs keep the correlation high
    n = min(len(got), len(ref)) - 4000
    lag = max(range(0, 2000, 1), key=lambda k: float(np.dot(got[k : k + 16000], ref[:16000])))
    corr = np.corrcoef(got[lag : lag + n], ref[:n])[0, 1]
    assert corr > 0.95, (name, lag, corr)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = np.full(1600, 0.5, np.float32), np.full(1600, -0.1, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert np.allclose(audio.load(tmp_path / "s.wav"), 0.2)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="no such audio file") as e:
        audio.load("nope/x.wav")
    assert e.value.subject == "nope/x.wav"


def test_folder_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        audio.load(tmp_path)


def test_undecodable_with_ffmpeg(speech: Path) -> None:
    with pytest.raises(InputError, match=r"cannot decode \(ffmpeg: ") as e:
        audio.load(speech / "broken.wav")
    assert e.value.subject == str(speech / "broken.wav")


def test_without_ffmpeg_the_error_says_to_install_it(speech: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg there
    with pytest.raises(InputError, match="ffmpeg is not installed") as e:
        audio.load(speech / "jfk.m4a")
    assert "soundfile:" in e.value.message and "install ffmpeg" in str(e.value.hint)
    assert len(audio.load(speech / "jfk.flac")) > 0  # soundfile's formats still work


def test_empty_audio(speech: Path) -> None:
    with pytest.raises(InputError, match="has no audio samples"):
        audio.load(speech / "empty.wav")


def test_nan_samples(tmp_path: Path) -> None:
    x = np.zeros(1600, np.float32)
    x[10] = np.nan
    sf.write(tmp_path / "n.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        audio.load(tmp_path / "n.wav")
