"""`parse_message`: one raw e-mail (the bytes IMAP gives us) to a ParsedMessage, by the fast path or else the careful one.

Both paths give the same ParsedMessage for what both can read (the
differential test in tests/mail/test_parse_paths.py holds them to it); the
fast path hands over whatever it cannot read as rolsync needs. Before either
runs, the message's header block is bounded (``ParseLimits.header_bytes``)
and RFC 5322's obsolete "Name : value" syntax is read as "Name: value".
For bytes input only ``MessageUnreadable`` escapes, and only when the input
is not an e-mail or costs more than its budget to read.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from rolsync.mail.parse.careful import parse_careful
from rolsync.mail.parse.fast import NeedsCareful, parse_fast
from rolsync.mail.parse.headers import first_blank_line
from rolsync.mail.parse.limits import DEFAULT_LIMITS, Budget, ParseLimits
from rolsync.mail.parse.model import MessageUnreadable, ParsedMessage

# RFC 5322 §4.5 (obs-optional): white space before a field's colon. The
# standard library reads such a line as the end of the headers.
_OBSOLETE_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)


def parse_message(raw: bytes, *, spool_dir: Path | None = None, limits: ParseLimits = DEFAULT_LIMITS,
                  careful: bool = False) -> ParsedMessage:
    """Parse the raw bytes of one message; raises MessageUnreadable only for input that is not an e-mail.

    With `spool_dir`, attachments of SPOOL_MIN_BYTES or more are decoded into
    files there (named ".tmp-spool-*") instead of memory. `careful` skips the
    fast path (the differential test and the benchmark compare the two).
    """
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError(f"parse_message() needs bytes, not {type(raw).__name__}")
    if not raw or raw.isspace():  # not raw.strip(), which copies the message
        raise MessageUnreadable("the message is empty")
    budget = Budget(limits.parse_seconds)
    digest, size = hashlib.sha256(raw).hexdigest(), len(raw)
    prepared, notices = prepare(raw, limits)
    if not careful:
        try:
            return parse_fast(prepared, spool_dir=spool_dir, limits=limits, budget=budget, raw_sha256=digest,
                              size=size, notices=notices)
        except NeedsCareful:
            pass
    return parse_careful(prepared, spool_dir=spool_dir, limits=limits, budget=budget, raw_sha256=digest,
                         size=size, notices=notices)


def parse_or_failure(raw: bytes, *, spool_dir: Path | None = None, limits: ParseLimits = DEFAULT_LIMITS
                     ) -> ParsedMessage | Exception:
    """`parse_message`, with a failure (MessageUnreadable or any other error) returned instead of raised.

    Only ``Exception``: a job's timeout, a KeyboardInterrupt or SystemExit
    must stop the import, not become one unreadable message.
    """
    try:
        return parse_message(raw, spool_dir=spool_dir, limits=limits)
    except Exception as exc:  # one message must never stop a batch
        return exc


def prepare(raw: bytes, limits: ParseLimits) -> tuple[bytes, list[str]]:
    """`raw` with its header block cut to the limit and obsolete field syntax made current; notes of what changed."""
    notices: list[str] = []
    end = _header_block_end(raw, limits.header_bytes + 1)
    if end is None:
        full_end = _header_block_end(raw, len(raw))
        full = len(raw) if full_end is None else full_end
        limit = limits.header_bytes
        cut = raw.rfind(b"\n", 0, limit) + 1
        # Whole lines when they fit; one giant line is cut where the limit falls.
        head = raw[:cut] if cut > limit // 2 else raw[:limit] + b"\n"
        notices.append(f"The message's header was {full:,} bytes long; only the first {len(head):,} were read.")
        raw = head + raw[full:]  # raw[full:] starts with the empty line that ends the headers
        end = len(head)
    head = raw[:end]
    if _OBSOLETE_FIELD.search(head):
        raw = _OBSOLETE_FIELD.sub(rb"\1:", head) + raw[end:]
    return raw, notices


def _header_block_end(raw: bytes, within: int) -> int | None:
    """Where the header block ends (after its last line break), looking no further than `within`; None if not found."""
    if raw.startswith((b"\n", b"\r\n")):
        return 0
    blank = first_blank_line(raw, 0, within)
    if blank >= 0:
        return blank + 1
    return None if within < len(raw) else len(raw)

