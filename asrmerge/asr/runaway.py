"""Runaway decoding: a token budget from the audio's duration, and the marks of hypotheses that ran away.

Whisper sometimes loops ("todem a todem a ...") or never ends, above all on audio unlike its training data
(a merged or half-trained model, noise, a short window). Left alone, greedy decoding then runs to the
decoder's limit (444 new tokens for Whisper): seconds of work per utterance and hypotheses hundreds of
characters long. So by default each batch may generate at most

    ceil(TOKENS_PER_SECOND x seconds) + TOKEN_MARGIN new tokens,

``seconds`` being the longest utterance of the batch (an encoder window for long-form batches), capped by
the decoder's room; ``--max-new-tokens N`` replaces the rule. 12 tokens per second covers every real and
synthetic utterance the tests and the study hold, in nine languages (Hindi, the densest in Whisper's
tokens, reached 12.4 tokens per second over 4.5 s; English and Portuguese 3 to 6), and the margin covers
short ones.

Two marks say that a hypothesis ran away; it is kept as it is:

- ``truncated``: generation stopped at the budget before the end-of-text token (short-form audio only:
  long-form generation ends each window on its own);
- ``repetition``: some piece of 1 to :data:`MAX_PERIOD` characters is written :data:`MIN_REPEATS` or more
  times back to back (the last copy may lack up to half of itself, such as a final space), over
  :data:`MIN_SPAN` characters or more: "Americans Americans Americans Americans", "tttttttt...". "No, no,
  no, no" is too short to count, a sentence said three times too few.
"""

from __future__ import annotations

import math

import numpy as np

TOKENS_PER_SECOND = 12
TOKEN_MARGIN = 16
MAX_PERIOD = 100  # characters in the repeated piece, at most
MIN_REPEATS = 4  # times it is written back to back, at least
MIN_SPAN = 32  # characters the repeated stretch covers, at least


def token_budget(seconds: float, limit: int) -> int:
    """The default ``max_new_tokens`` for ``seconds`` of audio.

    Args:
        seconds: the longest utterance of the batch (or one encoder window for long-form audio).
        limit: the most new tokens the decoder holds.
    Returns:
        ``ceil(TOKENS_PER_SECOND * seconds) + TOKEN_MARGIN``, at most ``limit``.
    """
    return max(1, min(limit, math.ceil(TOKENS_PER_SECOND * seconds) + TOKEN_MARGIN))


def repeats(text: str) -> bool:
    """Whether ``text`` holds a piece written :data:`MIN_REPEATS` times back to back over :data:`MIN_SPAN` characters.

    For each period p (1 to :data:`MAX_PERIOD`), a run of L positions where character i equals character i + p
    is a stretch of n = L + p characters with period p, n / p copies of its first p characters: it counts
    when n / p >= MIN_REPEATS - 1/2 and n >= MIN_SPAN.
    """
    if len(text) < MIN_SPAN:
        return False
    a = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    for p in range(1, min(MAX_PERIOD, 2 * len(a) // (2 * MIN_REPEATS - 1)) + 1):
        eq = np.concatenate(([False], a[:-p] == a[p:], [False]))
        edges = np.flatnonzero(np.diff(eq.astype(np.int8)))
        if edges.size == 0:
            continue
        longest = int((edges[1::2] - edges[0::2]).max())
        n = longest + p
        if 2 * n >= (2 * MIN_REPEATS - 1) * p and n >= MIN_SPAN:
            return True
    return False
