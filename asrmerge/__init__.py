"""asrmerge: merge Whisper checkpoints fine-tuned on many domains into one model.

The package is a toolchain of small commands (``asrmerge taskvec``, ``merge``, ``svd-inspect``,
``transcribe``, ``wer``, ``convert``) over safetensors files and JSONL. Importing it is cheap: torch and
transformers are imported by the modules that need them, never here.
"""

__version__ = "0.1.0"
