"""Input and output: checkpoints (safetensors, Hugging Face folders, CTranslate2, openai-whisper) and JSONL."""
