"""Build the study's speech sets offline: synthetic Portuguese domains (espeak-ng + sox), real English, multilingual.

Everything is seeded: the same seed gives the same sentences, voices, pitches, rates and noise. Manifests
are JSONL records ``{"id", "audio", "text", "domain", "split", "set", "language"}`` with audio paths
relative to the manifest, as ``asrmerge transcribe`` reads them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.bench.study.domains import DOMAINS, TOPICS, Domain, sentences

SR = 16000
ROOT = Path(__file__).resolve().parents[3]
AUDIO = ROOT / "tests" / "data" / "audio"
ALSA = Path("/usr/share/sounds/alsa")
ALSA_TEXT = {"Front_Center": "Front center", "Front_Left": "Front left", "Front_Right": "Front right",
             "Rear_Center": "Rear center", "Rear_Left": "Rear left", "Rear_Right": "Rear right",
             "Side_Left": "Side left", "Side_Right": "Side right"}
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


@dataclass(frozen=True)
class Size:
    """How big a study is."""

    name: str
    domains: tuple[str, ...]  # in-domain (trained) domains
    ood: tuple[str, ...]
    train: int
    dev: int
    test: int
    english: int  # clips of real English speech (all: 0)
    multilingual: int  # clips per language (all: 0)


FULL = Size("full", tuple(d.name for d in DOMAINS if not d.ood), tuple(d.name for d in DOMAINS if d.ood),
            train=64, dev=6, test=12, english=0, multilingual=0)
SMOKE = Size("smoke", ("medicina-tel", "meteo-estudio"), ("agricultura-campo",), train=12, dev=3, test=4,
             english=2, multilingual=1)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little")


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "whitenoise":
        x = white
    elif kind == "brownnoise":
        x = np.cumsum(white)
        x -= np.linspace(x[0], x[-1], n)  # remove the drift
    else:  # pink: 1/f power spectrum
        spec = np.fft.rfft(white)
        f = np.arange(len(spec))
        spec[1:] /= np.sqrt(f[1:])
        x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def synthesize(text: str, domain: Domain, out: Path, seed: int) -> float:
    """Speak ``text`` in ``domain``'s voice and channel into a 16 kHz mono WAV; returns its duration (s)."""
    rng = random.Random(seed)
    rate = rng.randint(*domain.rate)
    pitch = rng.randint(*domain.pitch)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", domain.voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out), *domain.effects,
                        "rate", str(SR)], check=True, capture_output=True)
    audio, sr = sf.read(out, dtype="float64")
    if domain.noise and domain.snr_db is not None:
        speech_rms = np.sqrt(np.mean(audio * audio)) + 1e-12
        noise = _noise(domain.noise, len(audio), np.random.default_rng(seed))
        audio = audio + noise * speech_rms / (10 ** (domain.snr_db / 20))
    peak = np.abs(audio).max()
    if peak > 0.99:
        audio = audio * 0.99 / peak
    sf.write(out, audio.astype(np.float32), SR, subtype="PCM_16")
    return len(audio) / SR


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def build_domains(root: Path, size: Size, seed: int) -> dict[str, Path]:
    """train/dev/test manifests of the in-domain and out-of-domain sets under ``root``."""
    by_name = {d.name: d for d in DOMAINS}
    rows: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for name in size.domains + size.ood:
        d = by_name[name]
        topic = TOPICS[d.topic]
        rng = random.Random(_seed(seed, name, "text"))
        splits = {"test": sentences(topic, size.test, rng, held_out=not d.ood)}
        if not d.ood:
            pool = sentences(topic, size.train + size.dev, rng, held_out=False)
            splits["train"], splits["dev"] = pool[: size.train], pool[size.train:]
        folder = root / "audio" / name
        folder.mkdir(parents=True, exist_ok=True)
        for split, texts in splits.items():
            for i, text in enumerate(texts):
                wav = folder / f"{split}-{i:03d}.wav"
                secs = synthesize(text, d, wav, _seed(seed, name, split, i))
                rows[split].append({"id": f"{name}/{split}-{i:03d}", "audio": str(wav.relative_to(root)),
                                    "text": text, "domain": name, "split": split, "set": "ood" if d.ood else "id",
                                    "language": "pt", "seconds": round(secs, 3)})
    return {split: _write(root / f"{split}.jsonl", r) for split, r in rows.items()}


def build_english(root: Path, size: Size) -> Path:
    """Real English speech: JFK, LibriVox (tests/data), the alsa-utils voice, Beckett (moonshine)."""
    folder = root / "audio" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [dict(json.loads(line), set="en", domain="english", language="en")
            for line in (AUDIO / "english.jsonl").read_text().splitlines()]
    for r in rows:
        shutil.copy(AUDIO / r["audio"], folder / r["audio"])
        r["audio"] = f"audio/english/{r['audio']}"
    for stem, text in ALSA_TEXT.items():
        if (ALSA / f"{stem}.wav").is_file():
            shutil.copy(ALSA / f"{stem}.wav", folder / f"alsa-{stem}.wav")
            rows.append({"id": f"alsa-{stem}", "audio": f"audio/english/alsa-{stem}.wav", "text": text,
                         "set": "en", "domain": "english", "language": "en"})
    beckett = None if size.english and len(rows) >= size.english else _moonshine_beckett(folder)
    if beckett is not None:  # the smoke size has enough without it (and needs no download)
        rows.append({"id": "beckett", "audio": str(beckett.relative_to(root)), "text": BECKETT, "set": "en",
                     "domain": "english", "language": "en"})
    if size.english:
        rows = rows[: size.english]
    return _write(root / "english.jsonl", rows)


def _moonshine_beckett(folder: Path) -> Path | None:
    """beckett.wav from the PyPI wheel of useful-moonshine-onnx (downloaded, not installed: it needs onnx)."""
    out = folder / "beckett.wav"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["python3", "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                            "useful-moonshine-onnx==20251121"], capture_output=True)
        wheels = list(Path(tmp).glob("useful_moonshine_onnx-*.whl"))
        if r.returncode != 0 or not wheels:
            return None
        import zipfile

        with zipfile.ZipFile(wheels[0]) as z:
            out.write_bytes(z.read("moonshine_onnx/assets/beckett.wav"))
    return out


def build_multilingual(root: Path, size: Size) -> Path:
    """pytest-audioeval's clips (en es fr hi it ja pl pt zh), each decoded with its own language."""
    spec = importlib.util.find_spec("pytest_audioeval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pytest-audioeval is not installed: pip install pytest-audioeval==0.1.3")
    samples = Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio"
    folder = root / "audio" / "multi"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    langs = sorted(p for p in samples.iterdir() if p.is_dir())
    if size.multilingual:  # the smoke study: a few languages, one clip each
        langs = [p for p in langs if p.name in ("en", "fr", "pt")]
    for lang_dir in langs:
        clips = sorted(lang_dir.glob("*.wav"))
        if size.multilingual:
            clips = clips[: size.multilingual]
        for wav in clips:
            dest = folder / f"{lang_dir.name}-{wav.name}"
            shutil.copy(wav, dest)
            text = re.sub(r"\s+", " ", wav.with_suffix(".txt").read_text().strip())
            rows.append({"id": f"{lang_dir.name}/{wav.stem}", "audio": str(dest.relative_to(root)), "text": text,
                         "set": "multi", "domain": f"multi-{lang_dir.name}", "language": lang_dir.name})
    return _write(root / "multi.jsonl", rows)


def build(root: Path, size: Size, seed: int = 0) -> dict[str, Path]:
    """Every manifest of a study of ``size``; reuses ``root`` when it was built with the same size and seed."""
    stamp = root / "BUILT"
    key = f"{size}|{seed}"
    names = ("train", "dev", "test", "english", "multi")
    if stamp.is_file() and stamp.read_text() == key:
        return {n: root / f"{n}.jsonl" for n in names}
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    out = build_domains(root, size, seed)
    out["english"] = build_english(root, size)
    out["multi"] = build_multilingual(root, size)
    stamp.write_text(key)
    return out
