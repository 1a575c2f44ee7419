"""Speech recognition for asrmerge: Whisper inference over JSONL manifests, and WER scoring.

- :mod:`asrmerge.asr.audio`: decode audio files (soundfile, or ffmpeg) to 16 kHz mono float32;
- :mod:`asrmerge.asr.manifest`: read manifests, shard them, resume an interrupted output;
- :mod:`asrmerge.asr.model`: load any checkpoint asrmerge reads as a transformers Whisper model;
- :mod:`asrmerge.asr.decoding`: batched, length-sorted generation, in input order;
- :mod:`asrmerge.asr.normalizers`, :mod:`asrmerge.asr.scoring`, :mod:`asrmerge.asr.mapsswe`: scoring.
"""
