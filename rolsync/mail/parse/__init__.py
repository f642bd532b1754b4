"""Reading e-mail: raw bytes to a ParsedMessage (addresses, readable text, attachments), fast path first.

The package, by what each module does:

- ``addresses``: ``normalise_address`` and plain address lists (light: no parser loaded)
- ``headers``: subject, date, Message-ID, address headers, the rules' headers
- ``text``: charsets, HTML made readable, the note's text, ``snippet``
- ``attachments``: file names, types, decoding into memory or a spool file, winmail.dat
- ``mime``: the MIME walk both paths share (body or file; limits)
- ``fast``: the compiled parser's path; ``careful``: the standard library's
- ``message``: ``parse_message``, which picks the path; ``limits``: ``ParseLimits``

The names below are loaded on first use, so ``from rolsync.mail.parse.addresses
import normalise_address`` does not load the parsers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolsync.mail.parse.addresses import normalise_address
    from rolsync.mail.parse.headers import RULE_HEADERS
    from rolsync.mail.parse.limits import ParseLimits
    from rolsync.mail.parse.message import parse_message, parse_or_failure
    from rolsync.mail.parse.model import Attachment, MessageUnreadable, ParsedMessage
    from rolsync.mail.parse.text import snippet

_EXPORTS = {
    "normalise_address": "addresses",
    "RULE_HEADERS": "headers",
    "ParseLimits": "limits",
    "parse_message": "message",
    "parse_or_failure": "message",
    "Attachment": "model",
    "MessageUnreadable": "model",
    "ParsedMessage": "model",
    "snippet": "text",
}

__all__ = [
    "RULE_HEADERS", "Attachment", "MessageUnreadable", "ParseLimits", "ParsedMessage", "normalise_address",
    "parse_message", "parse_or_failure", "snippet",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
