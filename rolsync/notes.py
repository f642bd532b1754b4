"""Saving one parsed message as notes and documents on records: shared by the import and the warning queue.

The import (rolsync.importer) and the panel's "Attach to this record" must
write exactly the same notes, so both go through ``save_message_as_notes``:
one note per record with the message's fields, and the attachments the rules
keep as documents whose bytes live once in the document store.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.mail.parse import Attachment, ParsedMessage
from rolsync.matching import RecordRef
from rolsync.models import Direction, Document, Note, PendingMessage, RecordKind, StoredFile, utcnow
from rolsync.rules import CompiledRules


def message_key(parsed: ParsedMessage) -> str:
    """The identity of a message across mailboxes: Message-ID, else a content hash.

    The same key as ``rolsync.importer.message_key``, so a record never holds
    two notes of one message whichever path saved them.
    """
    if parsed.message_id:
        return f"mid:{parsed.message_id[:480]}"
    return f"sha:{parsed.content_hash}"


def store_bytes(session: Session, store: DocumentStore, data: bytes, sha256: str | None = None) -> str:
    """Put bytes in the document store and make sure a StoredFile row names them; returns the SHA-256."""
    digest = store.put(data, sha256)
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    # INSERT … ON CONFLICT DO NOTHING: both supported databases speak it.
    session.execute(module.insert(StoredFile).values(sha256=digest, size=len(data), created_at=utcnow())
                    .on_conflict_do_nothing())
    return digest


def kept_attachments(rules: CompiledRules, parsed: ParsedMessage) -> list[Attachment]:
    """The attachments the rules keep as documents (by default: everything but images)."""
    from rolsync.decisions import message_facts

    facts = message_facts(parsed)
    return [a for a in parsed.attachments if rules.decide_attachment(
        filename=a.filename, content_type=a.content_type, size=a.size,
        is_image=a.is_image, inline=a.inline, message=facts).keep]


def save_message_as_notes(session: Session, store: DocumentStore, rules: CompiledRules, parsed: ParsedMessage, *,
                          user_id: int, folder: str, direction: Direction,
                          records: Iterable[RecordRef], kept: list[Attachment] | None = None) -> int:
    """Add a note of `parsed` (and its kept attachments) to each record; returns how many notes were new.

    A record that already holds a note of this message is left alone: mail
    that two consultants both received shows once on the record. Runs inside
    the caller's transaction (flushes, never commits).
    """
    key = message_key(parsed)
    records = list(records)
    if kept is None:
        kept = kept_attachments(rules, parsed) if records else []
    created = 0
    for record in records:
        column = Note.contact_id if record.kind is RecordKind.CONTACT else Note.candidate_id
        if session.scalar(select(Note.id).where(column == record.id, Note.message_key == key)) is not None:
            continue
        note = Note(
            user_id=user_id,
            message_key=key,
            message_id=parsed.message_id,
            folder=folder,
            direction=direction.value,
            subject=parsed.subject,
            sent_at=parsed.date,
            from_addr=parsed.from_addr or "",
            to_addrs=", ".join(parsed.to),
            cc_addrs=", ".join(parsed.cc),
            body=parsed.text,
        )
        if record.kind is RecordKind.CONTACT:
            note.contact_id = record.id
        else:
            note.candidate_id = record.id
        for attachment in kept:
            store_bytes(session, store, attachment.data, attachment.sha256)
            note.documents.append(Document(
                sha256=attachment.sha256,
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=attachment.size,
            ))
        session.add(note)
        created += 1
    session.flush()
    return created


def hold_for_record(session: Session, *, user_id: int, address: str, message_key: str, raw_sha256: str,
                    folder: str, direction: Direction) -> None:
    """Keep a message from an unknown address until a record with that address exists."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    session.execute(module.insert(PendingMessage).values(
        user_id=user_id, address=address, message_key=message_key, raw_sha256=raw_sha256, folder=folder,
        direction=direction.value, created_at=utcnow(),
    ).on_conflict_do_nothing())


def link_pending(session: Session, store: DocumentStore, rules: CompiledRules, addresses: Iterable[str]) -> int:
    """Import held messages onto the records that now have their addresses; returns notes made.

    Contacts first, then candidates, as the import decides; an address that
    still belongs to several records stays held.
    """
    from rolsync.mail.parse import parse_message
    from rolsync.matching import find_records

    wanted = sorted(set(addresses))
    if not wanted:
        return 0
    held = list(session.scalars(select(PendingMessage).where(
        PendingMessage.address.in_(wanted), PendingMessage.linked_at.is_(None))))
    if not held:
        return 0
    lookups = find_records(session, [p.address for p in held])
    created = 0
    for pending in held:
        matches = lookups[pending.address]
        records = matches.contacts or matches.candidates
        if len(records) != 1:
            continue
        parsed = parse_message(store.read(pending.raw_sha256))
        created += save_message_as_notes(session, store, rules, parsed, user_id=pending.user_id,
                                         folder=pending.folder, direction=Direction(pending.direction),
                                         records=records)
        pending.linked_at = utcnow()
    session.flush()
    return created
