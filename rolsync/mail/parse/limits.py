"""What one message may cost to parse: ParseLimits (tunable from the environment) and the per-message CPU budget."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rolsync.mail.parse.model import MessageUnreadable


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on what a message from a stranger can make rolsync do.

    A subject or a header block over its limit is kept cut, with its full
    size noted; MIME parts and attachments over theirs are dropped with a
    line in the note saying so; a message whose parse takes more CPU than
    `parse_seconds` becomes an unreadable-message warning.
    """

    mime_parts: int = 500
    attachments: int = 100
    subject_chars: int = 2000
    header_bytes: int = 512 * 1024
    parse_seconds: float = 20.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ParseLimits":
        """The limits in an app's config (``LIMIT_*``, from ``ROLSYNC_LIMIT_*``), defaults for those unset."""
        defaults = cls()
        return cls(
            mime_parts=int(config.get("LIMIT_MIME_PARTS", defaults.mime_parts)),
            attachments=int(config.get("LIMIT_ATTACHMENTS", defaults.attachments)),
            subject_chars=int(config.get("LIMIT_SUBJECT_CHARS", defaults.subject_chars)),
            header_bytes=int(config.get("LIMIT_HEADER_BYTES", defaults.header_bytes)),
            parse_seconds=float(config.get("LIMIT_PARSE_SECONDS", defaults.parse_seconds)),
        )


DEFAULT_LIMITS = ParseLimits()


class OverBudget(MessageUnreadable):
    """Parsing one message took more CPU time than its budget."""


class Budget:
    """A cooperative CPU deadline for one message, checked as the parse walks it.

    CPU time of this thread, not wall time: a loaded machine must not turn a
    normal message into a failure.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadline = time.thread_time() + seconds

    def check(self) -> None:
        if time.thread_time() > self._deadline:
            raise OverBudget(f"reading it took more than {self.seconds:g} seconds of processor time, "
                             f"the limit for one message")
