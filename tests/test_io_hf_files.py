"""The folders asrmerge writes decode correctly in transformers with no extra arguments.

``generation_config.json`` carries the fields of the published Hugging Face Whisper folders (task and language
tables, ``is_multilingual``, the no-timestamps token, suppressions, ``forced_decoder_ids``) and names the task,
so that ``pipeline("automatic-speech-recognition", model=FOLDER)`` and ``model.generate(features)`` transcribe
JFK word for word with the real converted base and tiny.en, and with a merge of base.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrmerge.asr.normalizers import get as normalizer
from asrmerge.io.hf_files import Dims, generation_config
from tests.conftest import AUDIO, cli
from tests.factory import make_finetune

JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
BASE = Dims(80, 51865, 1500, 512, 8, 6, 448, 512, 8, 6)
TINY_EN = Dims(80, 51864, 1500, 384, 6, 4, 448, 384, 6, 4)


def test_multilingual_config_has_the_published_fields() -> None:
    """openai/whisper-base's generation_config.json: these ids, tables and the transcribe prompt."""
    gen = generation_config(BASE)
    assert gen["decoder_start_token_id"] == 50258 and gen["eos_token_id"] == 50257
    assert gen["no_timestamps_token_id"] == 50363 and gen["prev_sot_token_id"] == 50361
    assert gen["task_to_id"] == {"transcribe": 50359, "translate": 50358}
    assert gen["lang_to_id"]["<|en|>"] == 50259 and gen["lang_to_id"]["<|su|>"] == 50357
    assert len(gen["lang_to_id"]) == 99 and gen["is_multilingual"] is True
    assert gen["forced_decoder_ids"] == [[1, None], [2, 50359]]
    assert gen["task"] == "transcribe" and gen["max_length"] == 448
    assert gen["begin_suppress_tokens"] == [220, 50257]


def test_english_only_config_has_the_published_fields() -> None:
    """openai/whisper-tiny.en's: no language or task table, and no task (it would need task_to_id)."""
    gen = generation_config(TINY_EN)
    assert gen["decoder_start_token_id"] == 50257 and gen["eos_token_id"] == 50256
    assert gen["no_timestamps_token_id"] == 50362 and gen["is_multilingual"] is False
    assert gen["forced_decoder_ids"] == [[1, 50362]]
    assert not {"task", "task_to_id", "lang_to_id"} & set(gen)


def _pipeline_text(folder: Path, **kw: object) -> str:
    import soundfile as sf
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(folder), **kw)
    audio, sr = sf.read(AUDIO / "jfk.wav", dtype="float32")
    return str(asr({"raw": audio, "sampling_rate": sr})["text"])


def _generate_text(folder: Path) -> str:
    import soundfile as sf
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    audio, sr = sf.read(AUDIO / "jfk.wav", dtype="float32")
    features = processor(audio, sampling_rate=sr, return_tensors="pt").input_features
    with torch.inference_mode():
        out = model.generate(features)
    return str(processor.batch_decode(out, skip_special_tokens=True)[0])


def _same_words(text: str) -> bool:
    norm = normalizer("whisper-en")
    return bool(norm(text) == norm(JFK))


@pytest.mark.slow
def test_converted_base_decodes_jfk_in_the_pipeline_and_generate(real_base: Path) -> None:
    """Without ``task``, transformers 5 used to decode "And so my fellow Americans Americans Americans ..."."""
    import torch

    text = _pipeline_text(real_base, dtype=torch.float32)
    assert _same_words(text), text
    text = _generate_text(real_base)
    assert _same_words(text), text


@pytest.mark.slow
def test_converted_tiny_en_decodes_jfk_in_the_pipeline_and_generate(real_tiny_en: Path) -> None:
    text = _pipeline_text(real_tiny_en)  # the folder's own dtype (fp16), as a user gets it
    assert _same_words(text), text
    text = _generate_text(real_tiny_en)
    assert _same_words(text), text


@pytest.mark.slow
def test_a_merge_of_base_decodes_jfk_in_the_pipeline(real_base: Path, tmp_path: Path) -> None:
    """A small task vector applied at half scale: the output folder carries base's files and decodes alike."""
    import torch

    ft = make_finetune(real_base, tmp_path / "ft", seed=7, scale=1e-3)
    r = cli("taskvec", str(real_base), str(ft), "-o", str(tmp_path / "tv.safetensors"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    r = cli("taskvec", "--apply", "--scale", "0.5", str(real_base), str(tmp_path / "tv.safetensors"),
            "-o", f"{tmp_path}/merged/", "-q")
    assert r.returncode == 0, r.stderr.decode()
    text = _pipeline_text(tmp_path / "merged", dtype=torch.float32)
    assert _same_words(text), text
    gen = json.loads((tmp_path / "merged" / "generation_config.json").read_text())
    assert gen == json.loads((real_base / "generation_config.json").read_text())
