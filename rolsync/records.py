"""The CRM records as the panel shows them: search, one record with its notes, and editing its addresses."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, cast, func, literal, null, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from rolsync.documents import DocumentStore
from rolsync.erasure import AddressSuppressed, is_suppressed
from rolsync.mail.parse.addresses import normalise_address
from rolsync.matching import find_records
from rolsync.models import (
    Candidate,
    Company,
    Contact,
    Document,
    EmailAddress,
    Note,
    RecordKind,
    User,
    utcnow,
)
from rolsync.pagination import DEFAULT_PER_PAGE, Page, paginate
from rolsync.privacy import can_see_note, note_visible


class RecordError(ValueError):
    """A change to a record was refused; the message says why."""


class RecordNotFound(LookupError):
    pass


@dataclass(frozen=True)
class RecordFilter:
    text: str = ""
    kind: str | None = None  # contact, candidate or None for both


@dataclass
class RecordRow:
    kind: str
    id: int
    name: str
    company: str | None
    emails: list[str] = field(default_factory=list)
    notes: int = 0
    last_note_at: datetime | None = None


def _model(kind: str):
    if kind == RecordKind.CONTACT.value:
        return Contact
    if kind == RecordKind.CANDIDATE.value:
        return Candidate
    raise RecordNotFound(kind)


def search_records(session: Session, wanted: RecordFilter, page: int = 1,
                   per_page: int = DEFAULT_PER_PAGE, viewer: User | None = None) -> Page[RecordRow]:
    """Contacts and candidates by name, address or company, in name order (note counts as `viewer` sees them)."""
    text = wanted.text.strip().lower()
    parts = []
    if wanted.kind in (None, RecordKind.CONTACT.value):
        query = (select(literal(RecordKind.CONTACT.value).label("kind"), Contact.id.label("id"),
                        Contact.name.label("name"), Company.name.label("company"))
                 .outerjoin(Company, Contact.company_id == Company.id))
        if text:
            query = query.where(or_(
                func.lower(Contact.name).contains(text, autoescape=True),
                func.lower(Company.name).contains(text, autoescape=True),
                Contact.id.in_(select(EmailAddress.contact_id).where(
                    EmailAddress.address.contains(text, autoescape=True))),
            ))
        parts.append(query)
    if wanted.kind in (None, RecordKind.CANDIDATE.value):
        query = select(literal(RecordKind.CANDIDATE.value).label("kind"), Candidate.id.label("id"),
                       Candidate.name.label("name"), cast(null(), String).label("company"))
        if text:
            query = query.where(or_(
                func.lower(Candidate.name).contains(text, autoescape=True),
                Candidate.id.in_(select(EmailAddress.candidate_id).where(
                    EmailAddress.address.contains(text, autoescape=True))),
            ))
        parts.append(query)
    if not parts:
        return Page(items=[], page=1, per_page=per_page, total=0)
    both = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    query = select(both.c.kind, both.c.id, both.c.name, both.c.company).order_by(
        func.lower(both.c.name), both.c.kind, both.c.id)
    found = paginate(session, query, page, per_page, scalars=False)
    rows = [RecordRow(kind, id_, name, company) for kind, id_, name, company in found.items]
    _add_details(session, rows, viewer)
    return Page(items=rows, page=found.page, per_page=found.per_page, total=found.total)


def _add_details(session: Session, rows: list[RecordRow], viewer: User | None) -> None:
    """Addresses and note counts (of the notes `viewer` may see) of one page of records."""
    for kind, owner, note_owner in ((RecordKind.CONTACT.value, EmailAddress.contact_id, Note.contact_id),
                                    (RecordKind.CANDIDATE.value, EmailAddress.candidate_id, Note.candidate_id)):
        by_id = {row.id: row for row in rows if row.kind == kind}
        if not by_id:
            continue
        for record_id, address in session.execute(
                select(owner, EmailAddress.address).where(owner.in_(by_id)).order_by(EmailAddress.id)):
            by_id[record_id].emails.append(address)
        for record_id, count, last in session.execute(
                select(note_owner, func.count(Note.id), func.max(Note.sent_at))
                .where(note_owner.in_(by_id), note_visible(viewer)).group_by(note_owner)):
            by_id[record_id].notes = count
            by_id[record_id].last_note_at = last


def get_record(session: Session, kind: str, record_id: int) -> Contact | Candidate:
    """A contact or candidate by kind and id; RecordNotFound otherwise."""
    record = session.get(_model(kind), record_id)
    if record is None:
        raise RecordNotFound(f"{kind} {record_id}")
    return record


def record_notes(session: Session, record: Contact | Candidate, viewer: User | None = None) -> list[Note]:
    """The record's notes `viewer` may see (None: all) for its timeline, newest first, with their documents."""
    column = Note.contact_id if record.kind is RecordKind.CONTACT else Note.candidate_id
    return list(session.scalars(
        select(Note).where(column == record.id, note_visible(viewer)).options(selectinload(Note.documents), selectinload(Note.user))
        .order_by(Note.sent_at.desc().nulls_last(), Note.id.desc())))


def get_document(session: Session, document_id: int, viewer: User | None = None) -> Document:
    """A document by id, if `viewer` may see the note it belongs to; RecordNotFound otherwise (the same answer,
    so ids cannot be probed)."""
    document = session.get(Document, document_id)
    if document is None or not can_see_note(session, viewer, document.note):
        raise RecordNotFound(f"document {document_id}")
    return document


def shared_with(session: Session, record: Contact | Candidate) -> dict[str, list]:
    """For each of the record's addresses, the other records of the same kind that hold it too."""
    matches = find_records(session, [e.address for e in record.emails])
    shared = {}
    for address, found in matches.items():
        same_kind = found.contacts if record.kind is RecordKind.CONTACT else found.candidates
        others = [r for r in same_kind if r.id != record.id]
        if others:
            shared[address] = others
    return shared


def add_email(session: Session, record: Contact | Candidate, value: str,
              suppression_key: bytes | None = None) -> EmailAddress:
    """Give the record another address (normalised as the import compares them); RecordError if refused.

    With `suppression_key`, an erased person's address is refused too.
    """
    address = normalise_address(value)
    if not address or "@" not in address:
        raise RecordError(f"{value.strip() or 'An empty value'} is not an e-mail address.")
    if "," in value or ";" in value:
        raise RecordError("Add one address at a time.")
    if any(e.address == address for e in record.emails):
        raise RecordError(f"{record.name} already has the address {address}.")
    if suppression_key is not None and is_suppressed(session, suppression_key, address):
        raise RecordError(AddressSuppressed(address).message + " " + AddressSuppressed(address).hint)
    email = EmailAddress(address=address)
    record.emails.append(email)
    record.updated_at = utcnow()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # added by someone else a moment ago
        raise RecordError(f"{record.name} already has the address {address}.") from exc
    return email


def link_held_mail(session: Session, store: DocumentStore, address: str, viewer: User | None = None,
                   queue=None) -> int:
    """Import mail the rules kept for `address` until a record had it (as far as `viewer` may see it); returns
    the notes made now. With a queue, a big backlog is imported by a background job instead (rolsync.held)."""
    from rolsync.held import follow_new_addresses

    return follow_new_addresses(session, store, [address], viewer=viewer, queue=queue).linked


def remove_email(session: Session, record: Contact | Candidate, email_id: int) -> str:
    """Remove one address from the record; returns the address."""
    email = next((e for e in record.emails if e.id == email_id), None)
    if email is None:
        raise RecordError("That address does not belong to this record.")
    record.emails.remove(email)
    record.updated_at = utcnow()
    session.flush()
    return email.address
