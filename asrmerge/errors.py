"""Errors that the command line turns into one-line messages and documented exit codes.

Library code raises these; ``asrmerge.cli`` prints ``asrmerge CMD: error: SUBJECT: MESSAGE; HINT`` on
stderr and exits with ``exit_code``. The codes are documented in ``man asrmerge``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_INTERRUPTED = 130


class AsrmergeError(Exception):
    """A failure with a message fit for one line: what went wrong, where, and what to do.

    Args:
        message: what went wrong.
        subject: the file, tensor or option concerned (printed first).
        hint: the next step for the user (printed last, after "; ").
        more: further problems of the same check, each printed as a line of its own.
    """

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, subject: str | None = None, hint: str | None = None,
                 more: list[str] | None = None) -> None:
        self.message = message
        self.subject = subject
        self.hint = hint
        self.more = list(more or [])  # further independent problems, one line each
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}" if self.subject else self.message
        return f"{text}; {self.hint}" if self.hint else text


class UsageError(AsrmergeError):
    """Bad options or arguments: nothing was read or written (exit 2)."""

    exit_code = EXIT_USAGE


class InputError(AsrmergeError):
    """An input cannot be used: unreadable, truncated, a pickle, non-finite, or incompatible (exit 3)."""

    exit_code = EXIT_INPUT
