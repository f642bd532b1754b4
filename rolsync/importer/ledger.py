"""The ledger's keys: how a message is known within one mailbox and across mailboxes, and which it has seen.

Every path that records a message (the import, the warning queue, a held
message linked later) names it with these keys, so a message is imported once
per user and a record never holds two notes of it.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.mail.imap import FetchedMessage
from rolsync.mail.parse import ParsedMessage
from rolsync.matching import chunked
from rolsync.models import ImportedMessage


def message_key(parsed: ParsedMessage | None, content_hash: str | None = None) -> str:
    """The identity of a message across mailboxes: its Message-ID, else a hash of its content."""
    if parsed is not None and parsed.message_id:
        return f"mid:{parsed.message_id[:480]}"
    return f"sha:{parsed.content_hash if parsed is not None else content_hash}"


def dedupe_key(parsed: ParsedMessage | None, fetched: FetchedMessage, content_hash: str) -> str:
    """The identity of a message within one mailbox, whatever folder or UIDVALIDITY (Gmail's X-GM-MSGID first)."""
    if fetched.gm_msgid:
        return f"gm:{fetched.gm_msgid}"
    return message_key(parsed, content_hash)


def raw_key(fetched: FetchedMessage, raw_sha256: str) -> str:
    """The key of a message that could not be read or imported: its raw bytes identify it."""
    if fetched.gm_msgid:
        return f"gm:{fetched.gm_msgid}"
    if fetched.too_large is not None:
        # Not downloaded, so no bytes to hash: what the server says of it.
        date = fetched.internaldate.isoformat() if fetched.internaldate else ""
        return f"too-large:{fetched.uid}:{fetched.too_large}:{date}"
    return f"sha:{raw_sha256}"


def raw_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def in_ledger(session: Session, user_id: int, keys: set[str]) -> set[str]:
    """Which of these dedupe keys the user's ledger holds."""
    return {key for part in chunked(sorted(keys)) for key in session.scalars(
        select(ImportedMessage.dedupe_key).where(
            ImportedMessage.user_id == user_id, ImportedMessage.dedupe_key.in_(part)))}
