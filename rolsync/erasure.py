"""Erasing a person: their records, notes, documents and mail traces go, and their addresses stay suppressed.

An erasure is planned first (`plan_erasure`: what would go, as counts an
admin confirms) and then carried out (`erase_person`). Afterwards only a
keyed hash of each address remains (`SuppressedAddress`), so no later import,
CSV load or address edit brings the person back until an admin lifts it
(`lift_suppression`), and an `Erasure` row records who erased how many rows
of each kind, with nothing about the person.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from sqlalchemy import Text, cast, delete, func, or_, select, text
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.mail.parse import ParsedMessage, normalise_address
from rolsync.models import (
    Candidate,
    Contact,
    Document,
    EmailAddress,
    Erasure,
    ImportedMessage,
    ImportWarning,
    Note,
    PendingMessage,
    StoredFile,
    SuppressedAddress,
    utcnow,
)
from rolsync.privacy import unreferenced_files

log = logging.getLogger(__name__)

ERASED = "(erased)"
"""What stands in a kept row where an erased person's address was."""

SKIP_REASON = "erased_person"
"""The ledger's reason for a message that involves an erased person's address."""

_KEY_LABEL = b"rolsync: addresses of erased people"

INTAKE_KIND = "intake"
"""The warning kind of an intake item (New people), which the intake queue adds."""


class ErasureError(Exception):
    """An erasure or lifting was refused."""

    code = "erasure_refused"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class AddressSuppressed(ErasureError):
    """The address belongs to an erased person."""

    code = "address_suppressed"

    def __init__(self, address: str):
        super().__init__(f"{address} belongs to a person who was erased, so rolsync does not keep it.",
                         "An admin can lift this on the Privacy page if the person asks to be added back.")


def suppression_key(secret: str) -> bytes:
    """The HMAC key of address hashes, derived from a deployment secret (never the secret itself)."""
    return hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def address_digest(key: bytes, address: str) -> str:
    """The keyed hash of a normalised address: equal addresses give equal hashes, and nothing else can be read."""
    return hmac.new(key, address.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()


def suppressed_among(session: Session, key: bytes, addresses: Iterable[str | None]) -> set[str]:
    """Which of these addresses are suppressed (normalised, lower-case); one query however many."""
    by_digest = {address_digest(key, a): a for a in {(a or "").strip().lower() for a in addresses} if a}
    if not by_digest:
        return set()
    found = session.scalars(select(SuppressedAddress.digest).where(SuppressedAddress.digest.in_(sorted(by_digest))))
    return {by_digest[d] for d in found}


def is_suppressed(session: Session, key: bytes, address: str) -> bool:
    return bool(suppressed_among(session, key, [address]))


def message_addresses(parsed: ParsedMessage) -> list[str]:
    """Every address on a message, for the suppression check."""
    return [a for a in (parsed.from_addr, *parsed.reply_to, *parsed.to, *parsed.cc, *parsed.bcc) if a]


def involves(parsed: ParsedMessage, suppressed: set[str]) -> bool:
    """Whether any address on the message is suppressed."""
    return bool(suppressed) and any(a.lower() in suppressed for a in message_addresses(parsed))


def lift_suppression(session: Session, key: bytes, value: str) -> bool:
    """Let an address be imported and loaded again; False when it was not suppressed."""
    address = normalise_address(value)
    if not address or "@" not in address:
        raise ErasureError(f"{value.strip() or 'An empty value'} is not an e-mail address.")
    entry = session.get(SuppressedAddress, address_digest(key, address))
    if entry is None:
        return False
    session.delete(entry)
    session.flush()
    return True


@dataclass
class ErasureCounts:
    """How many rows of each kind an erasure removes or scrubs."""

    records: int = 0
    notes: int = 0
    documents: int = 0
    files: int = 0
    ledger_entries: int = 0
    warnings: int = 0
    intake_items: int = 0
    held_messages: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class ErasurePlan:
    """What erasing the person with these addresses touches: ids, and the counts shown before confirming."""

    addresses: list[str]
    contact_ids: list[int] = field(default_factory=list)
    candidate_ids: list[int] = field(default_factory=list)
    note_ids: list[int] = field(default_factory=list)  # deleted: on their records, or written by them
    scrubbed_note_ids: list[int] = field(default_factory=list)  # others' notes naming them: address blanked
    ledger_ids: list[int] = field(default_factory=list)
    warning_ids: list[int] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)
    counts: ErasureCounts = field(default_factory=ErasureCounts)


def _mentions(columns, addresses: list[str]):
    """A condition: any of the columns contains any of the addresses (case-insensitively), as a substring."""
    return or_(*[func.lower(column).contains(address, autoescape=True)
                 for column in columns for address in addresses])


def _address_pattern(addresses: list[str]) -> re.Pattern[str]:
    """The addresses as whole addresses: ann@x.example, not in joann@x.example or ann@x.example.org."""
    alternatives = "|".join(re.escape(a) for a in sorted(addresses, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9._%+\-])(?:{alternatives})(?![A-Za-z0-9\-]|\.[A-Za-z0-9])", re.IGNORECASE)


def _naming(session: Session, id_column, columns, addresses: list[str]) -> list[int]:
    """Ids of the rows where a column names one of the addresses: LIKE narrows, the whole-address pattern decides."""
    pattern = _address_pattern(addresses)
    found = []
    for row in session.execute(select(id_column, *columns).where(_mentions(columns, addresses))):
        if any(value and pattern.search(str(value)) for value in row[1:]):
            found.append(row[0])
    return sorted(found)


def plan_erasure(session: Session, value: str) -> ErasurePlan:
    """Find the person with this address: their records (and their other addresses) and every row naming them."""
    address = normalise_address(value)
    if not address or "@" not in address or "," in value or ";" in value:
        raise ErasureError(f"{value.strip() or 'An empty value'} is not one e-mail address.",
                           "Give the person's address, e.g. name@example.com.")
    return _plan(session, {address}, set(), set())


def plan_record_erasure(session: Session, record: Contact | Candidate) -> ErasurePlan:
    """The same as `plan_erasure` for every address of a record (and the record, even without one)."""
    addresses = {e.address for e in record.emails}
    if isinstance(record, Contact):
        return _plan(session, addresses, {record.id}, set())
    return _plan(session, addresses, set(), {record.id})


def _plan(session: Session, addresses: set[str], contacts: set[int], candidates: set[int]) -> ErasurePlan:
    """Every record holding one of the addresses (and then their other addresses), and every row naming them."""
    addresses = set(addresses)
    if addresses:
        owners = session.execute(select(EmailAddress.contact_id, EmailAddress.candidate_id)
                                 .where(EmailAddress.address.in_(sorted(addresses)))).all()
        contacts |= {c for c, _ in owners if c is not None}
        candidates |= {c for _, c in owners if c is not None}
    contact_ids, candidate_ids = sorted(contacts), sorted(candidates)
    if contact_ids or candidate_ids:
        addresses.update(session.scalars(select(EmailAddress.address).where(or_(
            EmailAddress.contact_id.in_(contact_ids), EmailAddress.candidate_id.in_(candidate_ids)))))
    plan = ErasurePlan(sorted(addresses), contact_ids, candidate_ids)
    wanted = plan.addresses
    # Their notes, and the mail they wrote wherever it was filed.
    plan.note_ids = sorted(session.scalars(select(Note.id).where(or_(
        Note.contact_id.in_(contact_ids), Note.candidate_id.in_(candidate_ids),
        *([func.lower(Note.from_addr).in_(wanted)] if wanted else [])))))
    if not wanted:
        return _count(session, plan)
    plan.scrubbed_note_ids = sorted(set(_naming(
        session, Note.id, (Note.from_addr, Note.to_addrs, Note.cc_addrs, Note.subject, Note.body), wanted))
        - set(plan.note_ids))
    plan.ledger_ids = _naming(session, ImportedMessage.id, (
        ImportedMessage.from_addr, ImportedMessage.to_addrs, ImportedMessage.subject), wanted)
    plan.warning_ids = _naming(session, ImportWarning.id, (
        ImportWarning.address, ImportWarning.from_addr, ImportWarning.subject, ImportWarning.snippet,
        ImportWarning.detail, cast(ImportWarning.records, Text)), wanted)
    plan.pending_ids = sorted(session.scalars(select(PendingMessage.id).where(PendingMessage.address.in_(wanted))))
    return _count(session, plan)


def _count(session: Session, plan: ErasurePlan) -> ErasurePlan:
    counts = plan.counts
    contact_ids, candidate_ids = plan.contact_ids, plan.candidate_ids
    counts.records = len(contact_ids) + len(candidate_ids)
    counts.notes = len(plan.note_ids)
    if plan.note_ids:
        counts.documents = session.scalar(select(func.count(Document.id)).where(
            Document.note_id.in_(plan.note_ids))) or 0
    counts.ledger_entries = len(plan.ledger_ids)
    # Intake items (New people) are warnings of kind "intake": counted apart, erased alike.
    intake = 0
    for ids in _chunks(plan.warning_ids):
        intake += session.scalar(select(func.count(ImportWarning.id)).where(
            ImportWarning.id.in_(ids), ImportWarning.kind == INTAKE_KIND)) or 0
    counts.intake_items = intake
    counts.warnings = len(plan.warning_ids) - intake
    counts.held_messages = len(plan.pending_ids)
    return plan


def _scrub(value: str | None, addresses: list[str]) -> str:
    """The text with every one of the addresses replaced (whatever its case)."""
    if not value:
        return value or ""
    return _address_pattern(addresses).sub(ERASED, value)


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def erase_person(session: Session, store: DocumentStore, key: bytes, plan: ErasurePlan, *,
                 erased_by: str) -> Erasure:
    """Carry out a plan, commit, then delete the files no row refers to any more; returns the audit row.

    Commits (the files can only go once no committed row names them). On
    SQLite the freed pages are overwritten, so the file keeps no copy.
    """
    wanted = plan.addresses
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA secure_delete = ON"))
    files: set[str] = set()
    for ids in _chunks(plan.note_ids):
        files.update(session.scalars(select(Document.sha256).where(Document.note_id.in_(ids))))
        session.execute(delete(Document).where(Document.note_id.in_(ids)))
        session.execute(delete(Note).where(Note.id.in_(ids)))
    for ids in _chunks(plan.scrubbed_note_ids if wanted else []):
        for note in session.scalars(select(Note).where(Note.id.in_(ids))):
            note.from_addr = _scrub(note.from_addr, wanted)
            note.to_addrs = _scrub(note.to_addrs, wanted)
            note.cc_addrs = _scrub(note.cc_addrs, wanted)
            note.subject = _scrub(note.subject, wanted)
            note.body = _scrub(note.body, wanted)
    for ids in _chunks(plan.ledger_ids):
        # The row stays, so the mailbox does not import the message again; what it said about them goes.
        for entry in session.scalars(select(ImportedMessage).where(ImportedMessage.id.in_(ids))):
            entry.subject = ""
            entry.from_addr = _scrub(entry.from_addr, wanted)
            entry.to_addrs = _scrub(entry.to_addrs, wanted)
            entry.details = None
    for ids in _chunks(plan.warning_ids):
        files.update(s for s in session.scalars(select(ImportWarning.raw_sha256).where(ImportWarning.id.in_(ids))) if s)
        session.execute(delete(ImportWarning).where(ImportWarning.id.in_(ids)))
    for ids in _chunks(plan.pending_ids):
        files.update(session.scalars(select(PendingMessage.raw_sha256).where(PendingMessage.id.in_(ids))))
        session.execute(delete(PendingMessage).where(PendingMessage.id.in_(ids)))
    for model, column, ids in ((Contact, EmailAddress.contact_id, plan.contact_ids),
                               (Candidate, EmailAddress.candidate_id, plan.candidate_ids)):
        if ids:
            session.execute(delete(EmailAddress).where(column.in_(ids)))
            session.execute(delete(model).where(model.id.in_(ids)))
    unused = unreferenced_files(session, files)
    if unused:
        session.execute(delete(StoredFile).where(StoredFile.sha256.in_(sorted(unused))))
    plan.counts.files = len(unused)
    present = set(session.scalars(select(SuppressedAddress.digest)))
    for digest in sorted({address_digest(key, a) for a in wanted} - present):
        session.add(SuppressedAddress(digest=digest, created_at=utcnow()))
    audit = Erasure(erased_at=utcnow(), erased_by=erased_by, counts=plan.counts.as_json())
    session.add(audit)
    session.commit()
    for digest in sorted(unused):
        store.delete(digest)
    if session.get_bind().dialect.name == "sqlite":
        # Older copies of the pages live in the write-ahead log until a checkpoint.
        session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        session.commit()
    log.info("erasure %s by %s: %s", audit.id, erased_by, plan.counts.as_json())
    return audit


def erasures(session: Session, limit: int = 50) -> list[Erasure]:
    """The newest erasures, for the audit list."""
    return list(session.scalars(select(Erasure).order_by(Erasure.id.desc()).limit(limit)))

