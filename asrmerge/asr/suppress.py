"""Whisper's token suppression by index, for short-form generation.

Whisper never emits some tokens (``suppress_tokens``: symbols, speaker tags...) and cannot start a text with
others (``begin_suppress_tokens``: a space, end of text). transformers' ``SuppressTokensLogitsProcessor`` and
``SuppressTokensAtBeginLogitsProcessor`` rebuild a vocabulary-wide mask with ``torch.isin`` at every decoding
step: about 8 ms per step on one CPU core for Whisper's 51,865 tokens, and many times that when threads
compete for cores, a large share of greedy decoding on a CPU. :class:`Suppress` sets the same logits to
-inf by index (0.2 ms), so the tokens chosen are the same.

Long-form generation keeps transformers' processors: there its timestamp processor must see the logits
after suppression, and a custom processor would run after it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor


class Suppress(LogitsProcessor):
    """Set ``always`` to -inf at every step, and ``at_begin`` too at the first generated position.

    Args:
        always: token ids never generated.
        at_begin: token ids not generated first.
    """

    def __init__(self, always: list[int], at_begin: list[int]) -> None:
        self.always = torch.tensor(sorted(set(always)), dtype=torch.long)
        self.at_begin = torch.tensor(sorted(set(at_begin)), dtype=torch.long)
        self.begin_index = -1

    def set_begin_index(self, begin_index: int) -> None:
        """Called by transformers' Whisper generate with the length of the decoder prompt."""
        self.begin_index = begin_index

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.always.device != scores.device:
            self.always, self.at_begin = self.always.to(scores.device), self.at_begin.to(scores.device)
        if self.always.numel():
            scores = scores.index_fill(1, self.always, -float("inf"))  # type: ignore[assignment]
        if input_ids.shape[-1] == self.begin_index and self.at_begin.numel():
            scores = scores.index_fill(1, self.at_begin, -float("inf"))  # type: ignore[assignment]
        return scores


def split(gen: GenerationConfig) -> tuple[GenerationConfig, Suppress]:
    """A copy of ``gen`` without suppression lists, and the :class:`Suppress` that does their work.

    Args:
        gen: a Whisper generation config.
    Returns:
        The config to generate short-form with, and the processor to pass as ``logits_processor``.
    """
    fast: Any = copy.deepcopy(gen)
    processor = Suppress(list(gen.suppress_tokens or []), list(gen.begin_suppress_tokens or []))
    fast.suppress_tokens = None
    fast.begin_suppress_tokens = None
    return fast, processor
