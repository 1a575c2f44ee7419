"""The files beside the weights that make a folder a Hugging Face Whisper model.

``config.json`` (architecture), ``generation_config.json`` (special tokens, suppressed tokens, languages,
alignment heads), ``preprocessor_config.json`` (log-mel front end) and the tokenizer files. Converters
(CTranslate2, openai-whisper) build them here from the checkpoint's dimensions; every other command
copies them from the input folder (:data:`SUPPORT_FILES`).

Special-token ids follow from the vocabulary size, as in openai-whisper: English-only models (51864)
end text with 50256, multilingual ones with 50257, and large-v3 (51866) has a 100th language.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Files a Whisper model folder may carry besides its weights, copied from input to output.
SUPPORT_FILES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
)

# openai-whisper's language order: token id = first language id + index
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la "
    "mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be "
    "tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue"
).split()
N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in steps of 0.02 s


@dataclass(frozen=True)
class Dims:
    """Whisper's architecture, in openai-whisper's names (``ModelDimensions``) plus the FFN widths."""

    n_mels: int
    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_audio_ffn: int = 0
    n_text_ffn: int = 0

    def openai_dims(self) -> dict[str, int]:
        d = asdict(self)
        d.pop("n_audio_ffn")
        d.pop("n_text_ffn")
        return d


@dataclass(frozen=True)
class Tokens:
    """Special-token ids of a Whisper vocabulary."""

    eot: int
    sot: int
    n_langs: int
    translate: int
    transcribe: int
    startoflm: int
    startofprev: int
    nospeech: int
    notimestamps: int

    @classmethod
    def for_vocab(cls, n_vocab: int) -> Tokens:
        eot = 50256 if n_vocab < 51865 else 50257
        n_langs = n_vocab - eot - 2 - 6 - N_TIMESTAMPS
        t = eot + 2 + n_langs
        return cls(eot, eot + 1, n_langs, t, t + 1, t + 2, t + 3, t + 4, t + 5)

    @property
    def multilingual(self) -> bool:
        return self.eot == 50257

    def languages(self) -> dict[str, int]:
        return {f"<|{code}|>": self.sot + 1 + i for i, code in enumerate(LANGUAGES[: self.n_langs])}


def model_config(dims: Dims) -> dict[str, Any]:
    """``config.json`` of ``WhisperForConditionalGeneration`` with these dimensions."""
    from transformers import WhisperConfig

    tok = Tokens.for_vocab(dims.n_vocab)
    cfg = WhisperConfig(
        vocab_size=dims.n_vocab,
        num_mel_bins=dims.n_mels,
        d_model=dims.n_audio_state,
        encoder_layers=dims.n_audio_layer,
        encoder_attention_heads=dims.n_audio_head,
        decoder_layers=dims.n_text_layer,
        decoder_attention_heads=dims.n_text_head,
        encoder_ffn_dim=dims.n_audio_ffn or 4 * dims.n_audio_state,
        decoder_ffn_dim=dims.n_text_ffn or 4 * dims.n_text_state,
        max_source_positions=dims.n_audio_ctx,
        max_target_positions=dims.n_text_ctx,
        bos_token_id=tok.eot,
        eos_token_id=tok.eot,
        pad_token_id=tok.eot,
        decoder_start_token_id=tok.sot,
        begin_suppress_tokens=[220, tok.eot],
        tie_word_embeddings=True,
    )
    cfg.architectures = ["WhisperForConditionalGeneration"]
    return cfg.to_dict()


def generation_config(dims: Dims, *, suppress: list[int] | None = None, suppress_begin: list[int] | None = None,
                      alignment_heads: list[list[int]] | None = None) -> dict[str, Any]:
    """``generation_config.json``: the decoding defaults openai-whisper uses, in transformers' fields.

    The fields of the published Hugging Face Whisper folders (``openai/whisper-base``, ``whisper-tiny.en``):
    special tokens, suppressions, ``max_length``, ``is_multilingual``, the language and task tables and
    ``forced_decoder_ids`` (the prompt ``<|lang|> <|transcribe|>`` older readers build from it). A
    multilingual config also names ``task`` ``transcribe``: transformers 5 ignores ``forced_decoder_ids``,
    and when it detects the language itself without a task it leaves ``<|transcribe|>`` out of the prompt,
    after which Whisper repeats itself ("Americans Americans ..."). With ``task`` set, ``pipeline`` and
    ``generate`` with no arguments detect the language and transcribe, as openai-whisper does; a ``task``
    or ``language`` passed to them still wins.
    """
    tok = Tokens.for_vocab(dims.n_vocab)
    gen: dict[str, Any] = {
        "bos_token_id": tok.eot,
        "eos_token_id": tok.eot,
        "pad_token_id": tok.eot,
        "decoder_start_token_id": tok.sot,
        "begin_suppress_tokens": suppress_begin or [220, tok.eot],
        "suppress_tokens": suppress or [],
        "no_timestamps_token_id": tok.notimestamps,
        "prev_sot_token_id": tok.startofprev,
        "max_initial_timestamp_index": 50,
        "max_length": dims.n_text_ctx,
        "is_multilingual": tok.multilingual,
        "return_timestamps": False,
    }
    if alignment_heads:
        gen["alignment_heads"] = [list(map(int, h)) for h in alignment_heads]
    if tok.multilingual:
        gen["lang_to_id"] = tok.languages()
        gen["task_to_id"] = {"translate": tok.translate, "transcribe": tok.transcribe}
        gen["forced_decoder_ids"] = [[1, None], [2, tok.transcribe]]
        gen["task"] = "transcribe"
    else:
        gen["forced_decoder_ids"] = [[1, tok.notimestamps]]
    return gen


def tokenizer_files(tokenizer_json: Path, dims: Dims) -> dict[str, bytes]:
    """The tokenizer and processor files for a ``tokenizer.json``, with the 1501 timestamp tokens added.

    CTranslate2 ships the tokenizer without timestamp tokens; transformers' long-form decoding needs
    them, at the ids openai-whisper gives them (just after ``<|notimestamps|>``).
    """
    from transformers import WhisperFeatureExtractor, WhisperTokenizer

    tok_ids = Tokens.for_vocab(dims.n_vocab)
    tok = WhisperTokenizer(tokenizer_file=str(tokenizer_json), pad_token="<|endoftext|>",
                           model_max_length=dims.n_text_ctx)
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]
    if tok.convert_tokens_to_ids(stamps[0]) in (None, tok.unk_token_id):
        tok.add_tokens(stamps, special_tokens=False)
    first = tok.convert_tokens_to_ids(stamps[0])
    if first != tok_ids.notimestamps + 1:
        raise ValueError(f"{tokenizer_json}: timestamp tokens start at {first}, expected {tok_ids.notimestamps + 1}")
    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        WhisperFeatureExtractor(feature_size=dims.n_mels).save_pretrained(d)
        return {p.name: p.read_bytes() for p in Path(d).iterdir() if p.name in SUPPORT_FILES}


def preprocessor_file(dims: Dims) -> dict[str, bytes]:
    """``preprocessor_config.json`` alone, for a model without a tokenizer."""
    from transformers import WhisperFeatureExtractor

    return {"preprocessor_config.json": WhisperFeatureExtractor(feature_size=dims.n_mels).to_json_string().encode()}


def to_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def dims_from_config(config: dict[str, Any]) -> Dims:
    """The :class:`Dims` of a transformers ``config.json``."""
    return Dims(
        n_mels=config["num_mel_bins"], n_vocab=config["vocab_size"],
        n_audio_ctx=config["max_source_positions"], n_audio_state=config["d_model"],
        n_audio_head=config["encoder_attention_heads"], n_audio_layer=config["encoder_layers"],
        n_text_ctx=config["max_target_positions"], n_text_state=config["d_model"],
        n_text_head=config["decoder_attention_heads"], n_text_layer=config["decoder_layers"],
        n_audio_ffn=config.get("encoder_ffn_dim", 0), n_text_ffn=config.get("decoder_ffn_dim", 0),
    )
