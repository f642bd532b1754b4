"""Saving one parsed message as notes and documents on records: shared by the import and the warning queue.

The import (rolsync.importer) and the panel's "Attach to this record" must
write exactly the same notes, so both go through ``save_message_as_notes``:
one note per record with the message's fields, and the attachments the rules
keep as documents whose bytes live once in the document store.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.importer.ledger import message_key
from rolsync.mail.parse import Attachment, ParsedMessage
from rolsync.matching import RecordRef, chunked
from rolsync.models import (
    CaptureLevel,
    Direction,
    Document,
    Note,
    PendingMessage,
    RecordKind,
    StoredFile,
    User,
    utcnow,
)
from rolsync.rules import CompiledRules, sort_attachments


def save_message_as_notes(session: Session, store: DocumentStore, rules: CompiledRules, parsed: ParsedMessage, *,
                          user_id: int, folder: str, direction: Direction,
                          records: Iterable[RecordRef], kept: list[Attachment] | None = None) -> int:
    """Add a note of `parsed` (and its kept attachments) to each record; returns how many notes were new.

    A record that already holds a note of this message is left alone: mail
    that two consultants both received shows once on the record. Runs inside
    the caller's transaction (flushes, never commits).
    """
    from rolsync import privacy

    records = list(records)
    level = privacy.capture_level_of_user(session, user_id)
    if level is not CaptureLevel.FULL:
        parsed, kept = privacy.reduce(parsed, level), []
    if kept is None:
        kept = sort_attachments(rules, parsed)[0] if records else []
    writer = NoteWriter(session, store)
    created = writer.add(parsed, user_id=user_id, folder=folder, direction=direction, records=records, kept=kept,
                         capture_level=level)
    writer.flush()
    return created


def existing_notes(session: Session, pairs: Iterable[tuple[str, RecordRef]]) -> set[tuple[str, RecordKind, int]]:
    """Which of these (message key, record) pairs already have a note: two indexed queries however many."""
    wanted: dict[RecordKind, tuple[set[int], set[str]]] = {}
    for key, record in pairs:
        ids, keys = wanted.setdefault(record.kind, (set(), set()))
        ids.add(record.id)
        keys.add(key)
    found: set[tuple[str, RecordKind, int]] = set()
    for kind, (ids, keys) in wanted.items():
        # (record, message_key) is unique and indexed for both kinds of record.
        column = Note.contact_id if kind is RecordKind.CONTACT else Note.candidate_id
        # Chunked both ways: a batch may bring more records or keys than one statement takes.
        for id_part in chunked(sorted(ids)):
            for key_part in chunked(sorted(keys)):
                rows = session.execute(select(Note.message_key, column).where(column.in_(id_part),
                                                                              Note.message_key.in_(key_part)))
                found.update((key, kind, id_) for key, id_ in rows)
    return found


class NoteWriter:
    """Notes, documents and stored files of any number of messages, written by `flush` in a few statements.

    The import saves a whole fetch batch through one writer; saving one
    message (`save_message_as_notes`) is the same with a single message.
    Attachment files reach the document store, durably, before the rows that
    name them are written.
    """

    def __init__(self, session: Session, store: DocumentStore):
        self.session = session
        self.store = store
        self._checked: set[tuple[str, RecordKind, int]] = set()
        self._existing: set[tuple[str, RecordKind, int]] = set()
        self._notes: list[tuple[dict, list[dict]]] = []  # (note row, its document rows)
        self._files: dict[str, bytes | Path] = {}  # SHA-256 -> bytes, or the spool file of a big attachment
        self._sizes: dict[str, int] = {}

    def look_up(self, pairs: Iterable[tuple[str, RecordRef]]) -> None:
        """Find out at once which of these (message key, record) pairs already have a note."""
        pairs = [(key, record) for key, record in pairs if (key, record.kind, record.id) not in self._checked]
        if pairs:
            self._existing |= existing_notes(self.session, pairs)
            self._checked.update((key, record.kind, record.id) for key, record in pairs)

    def add(self, parsed: ParsedMessage, *, user_id: int, folder: str, direction: Direction,
            records: Iterable[RecordRef], kept: list[Attachment],
            capture_level: CaptureLevel = CaptureLevel.FULL) -> int:
        """Queue a note of `parsed` for each record that has none yet; returns how many.

        `capture_level` only labels the note: the caller has already reduced `parsed` to it.
        """
        key = message_key(parsed)
        records = list(records)
        self.look_up((key, record) for record in records)
        created = 0
        for record in records:
            if (key, record.kind, record.id) in self._existing:
                continue
            self._existing.add((key, record.kind, record.id))
            note = {
                "user_id": user_id,
                "message_key": key,
                "message_id": parsed.message_id,
                "folder": folder,
                "direction": direction.value,
                "subject": parsed.subject,
                "sent_at": parsed.date,
                "from_addr": parsed.from_addr or "",
                "to_addrs": ", ".join(parsed.to),
                "cc_addrs": ", ".join(parsed.cc),
                "body": parsed.text,
                "capture_level": capture_level.value,
                "contact_id": record.id if record.kind is RecordKind.CONTACT else None,
                "candidate_id": record.id if record.kind is RecordKind.CANDIDATE else None,
                "created_at": utcnow(),
            }
            documents = []
            for attachment in kept:
                self._files.setdefault(attachment.sha256, attachment.spool or attachment.data)
                self._sizes[attachment.sha256] = attachment.size
                documents.append({"sha256": attachment.sha256, "filename": attachment.filename,
                                  "content_type": attachment.content_type, "size": attachment.size})
            self._notes.append((note, documents))
            created += 1
        return created

    def store_bytes(self, data: bytes, sha256: str | None = None) -> str:
        """Queue bytes for the document store; returns their SHA-256."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        self._files.setdefault(digest, data)
        self._sizes[digest] = len(data)
        return digest

    def flush(self) -> None:
        """Write what was queued: the files, their rows, the notes and the documents.

        The files are written (and fsynced) while the rows are inserted, and
        are durable when this returns, before the caller can commit the rows.
        """
        files, sizes, notes = self._files, self._sizes, self._notes
        self._files, self._sizes, self._notes = {}, {}, []
        files_written = self.store.start_put_many(files)
        if files:
            now = utcnow()
            self.session.execute(_insert(self.session, StoredFile).values(
                [{"sha256": digest, "size": sizes[digest], "created_at": now} for digest in sorted(files)]
            ).on_conflict_do_nothing())
        if notes:
            # In a fixed order, so two imports saving notes of the same messages cannot deadlock.
            notes.sort(key=lambda item: (item[0]["message_key"], item[0]["contact_id"] or 0,
                                         item[0]["candidate_id"] or 0))
            # Core rather than ORM inserts: the same rows at a fraction of the cost.
            notes_table = cast(Table, Note.__table__)
            ids = self.session.scalars(insert(notes_table).returning(notes_table.c.id, sort_by_parameter_order=True),
                                       [note for note, _ in notes]).all()
            documents = [{**document, "note_id": note_id}
                         for note_id, (_, note_documents) in zip(ids, notes, strict=True) for document in note_documents]
            if documents:
                self.session.execute(insert(cast(Table, Document.__table__)), documents)
        files_written()


def _insert(session: Session, model):
    """INSERT for the session's database, with ON CONFLICT DO NOTHING available (both databases speak it)."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(model)


def hold_for_record(session: Session, *, user_id: int, address: str, message_key: str, raw_sha256: str,
                    folder: str, direction: Direction) -> None:
    """Keep a message from an unknown address until a record with that address exists."""
    session.execute(_insert(session, PendingMessage).values(
        user_id=user_id, address=address, message_key=message_key, raw_sha256=raw_sha256, folder=folder,
        direction=direction.value, created_at=utcnow(),
    ).on_conflict_do_nothing())


def link_pending(session: Session, store: DocumentStore, rules: CompiledRules, addresses: Iterable[str],
                 viewer: User | None = None, *, onto: list[RecordRef] | None = None,
                 limit: int | None = None) -> int:
    """Import held messages onto the records that now have their addresses; returns notes made.

    Contacts first, then candidates, as the import decides; an address that
    still belongs to several records stays held. With `viewer` (the person
    adding the address), only held mail whose mailbox's visibility lets them
    see it is linked; the rest waits for its owner or an admin. `onto` names
    the record(s) instead (New people's Create candidate, whose address may
    have been retyped). Each message's ledger row then says imported, and a
    held message is imported once however often this runs. `limit` bounds
    the held messages looked at (the oldest first), for work done in chunks.
    """
    from rolsync import privacy
    from rolsync.mail.parse import parse_message
    from rolsync.matching import find_records

    wanted = sorted(set(addresses))
    if not wanted:
        return 0
    held = [pending for part in chunked(wanted) for pending in session.scalars(select(PendingMessage).where(
        PendingMessage.address.in_(part), PendingMessage.linked_at.is_(None), privacy.held_visible(viewer))
        .order_by(PendingMessage.id).limit(limit).with_for_update())]
    if limit is not None:
        held = sorted(held, key=lambda p: p.id)[:limit]
    if not held:
        return 0
    lookups = find_records(session, [p.address for p in held]) if onto is None else {}
    created = 0
    removed = privacy.removed_messages(session, [p.message_key for p in held])
    for pending in held:
        if (pending.user_id, pending.message_key) in removed:
            continue  # its owner removed the note of this message: it stays out
        if onto is None:
            matches = lookups[pending.address]
            records = matches.contacts or matches.candidates
        else:
            records = onto
        if len(records) != 1 and onto is None:
            continue
        parsed = parse_message(store.read(pending.raw_sha256))
        made = save_message_as_notes(session, store, rules, parsed, user_id=pending.user_id,
                                     folder=pending.folder, direction=Direction(pending.direction),
                                     records=records)
        created += made
        pending.linked_at = utcnow()
        _ledger_linked(session, pending, made)
    session.flush()
    return created


def _ledger_linked(session: Session, pending: PendingMessage, notes_created: int) -> None:
    """The held message's ledger row (skipped, or warned for New people) now says imported."""
    from rolsync.models import ImportedMessage, Outcome

    for row in session.scalars(select(ImportedMessage).where(
            ImportedMessage.user_id == pending.user_id, ImportedMessage.message_key == pending.message_key)):
        if row.outcome != Outcome.IMPORTED.value:
            row.outcome = Outcome.IMPORTED.value
            row.reason = "linked"
            row.rule = None
        row.notes_created = (row.notes_created or 0) + notes_created
