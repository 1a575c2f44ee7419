"""How long-running library calls report progress without printing: the caller passes a :class:`Progress`."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives a task's size, then one call per finished item (tensor, utterance, ...)."""

    def start(self, total: int, description: str) -> None: ...

    def advance(self, item: str = "", amount: int = 1) -> None: ...


class NoProgress:
    """A :class:`Progress` that ignores everything (the default)."""

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, item: str = "", amount: int = 1) -> None:
        pass
