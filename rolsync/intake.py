"""New people: applications from addresses no record has, and turning them into candidates.

The import decides (rolsync.decisions, rule `intake`) that received mail from
an unknown address looks like an application (a CV-like attachment, or a
job-board relay with the applicant in Reply-To). It then writes an open
warning of kind ``intake`` naming the applicant's address, and holds the raw
message for that address as ``no_match: keep`` does (``PendingMessage``). The
actions here close those items: Create candidate and Attach to an existing
record give the address to a record and import every message held for it at
once; Not a candidate blocks the address in the rule set (a new version the
admin can see and undo) and closes the sender's items. Plain values in, the
caller commits.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.mail.parse import (
    Attachment,
    MessageUnreadable,
    normalise_address,
    parse_message,
)
from rolsync.matching import RecordRef, find_records
from rolsync.models import (
    Candidate,
    EmailAddress,
    ImportWarning,
    RecordKind,
    User,
    WarningKind,
    WarningStatus,
    utcnow,
)
from rolsync.notes import link_pending
from rolsync.pagination import DEFAULT_PER_PAGE, Page, paginate
from rolsync.rules.definition import validate
from rolsync.rules.store import active_rules, active_version, save_version

KIND = WarningKind.INTAKE.value
MAX_BULK = 500
"""Items one bulk action may close: a page's worth many times over, and a bound on one request's work."""


class IntakeError(ValueError):
    """The action cannot be done; the message says why, in the user's words, and `hint` what to do."""

    code = "intake_refused"
    hint = "Correct it and try again."


class IntakeNotFound(LookupError):
    """No such item, or not one this person may see."""

    code = "intake_not_found"


# -- reading ---------------------------------------------------------------------------------


def _visible(query: Select, viewer: User) -> Select:
    """Consultants see their own mail's items; admins everyone's."""
    return query if viewer.is_admin else query.where(ImportWarning.user_id == viewer.id)


def _newest_per_sender(viewer: User) -> Select:
    """The id of the newest open item of each sender the viewer may see: New people has one row per person."""
    query = _visible(select(func.max(ImportWarning.id)), viewer).where(
        ImportWarning.kind == KIND, ImportWarning.status == WarningStatus.OPEN.value)
    return query.group_by(ImportWarning.address)


def open_items(session: Session, viewer: User, page: int = 1,
               per_page: int = DEFAULT_PER_PAGE) -> Page[ImportWarning]:
    """One open item per sender the viewer may see (the newest), newest mail first."""
    query = select(ImportWarning).where(ImportWarning.id.in_(_newest_per_sender(viewer)))
    query = query.order_by(func.coalesce(ImportWarning.sent_at, ImportWarning.created_at).desc(),
                           ImportWarning.id.desc())
    return paginate(session, query, page, per_page)


def open_count(session: Session, viewer: User) -> int:
    """The number next to New people in the navigation: the people waiting, not their messages."""
    query = _visible(select(func.count(func.distinct(ImportWarning.address))), viewer)
    return session.scalar(query.where(ImportWarning.kind == KIND,
                                      ImportWarning.status == WarningStatus.OPEN.value)) or 0


def messages_from(session: Session, viewer: User, items: Iterable[ImportWarning]) -> dict[str, int]:
    """How many open applications each listed sender has sent (the row shows the newest)."""
    addresses = sorted({i.address for i in items if i.address})
    if not addresses:
        return {}
    query = _visible(select(ImportWarning.address, func.count(ImportWarning.id)), viewer).where(
        ImportWarning.kind == KIND, ImportWarning.status == WarningStatus.OPEN.value,
        ImportWarning.address.in_(addresses)).group_by(ImportWarning.address)
    return {address: count for address, count in session.execute(query)}


def get_item(session: Session, viewer: User, item_id: int, *, for_update: bool = False) -> ImportWarning:
    """One item the viewer may see (optionally locked: two clicks must not act twice); else IntakeNotFound."""
    query = _visible(select(ImportWarning), viewer).where(ImportWarning.id == item_id, ImportWarning.kind == KIND)
    if for_update:
        query = query.with_for_update()
    item = session.scalar(query)
    if item is None:
        raise IntakeNotFound(item_id)
    return item


def item_name(item: ImportWarning) -> str:
    """The applicant's display name, as the message gave it ("" when it gave none)."""
    return str((item.details or {}).get("name") or "")


def item_attachments(item: ImportWarning) -> list[dict]:
    """The application's attachments: filename, content type, size, SHA-256."""
    return list((item.details or {}).get("attachments") or [])


def attachment_of(store: DocumentStore, item: ImportWarning, index: int) -> Attachment:
    """The item's `index`-th listed attachment, read from the kept message; IntakeNotFound if gone."""
    listed = item_attachments(item)
    if not 0 <= index < len(listed) or not item.raw_sha256 or not store.exists(item.raw_sha256):
        raise IntakeNotFound(index)
    try:
        parsed = parse_message(store.read(item.raw_sha256))
    except MessageUnreadable as exc:
        raise IntakeNotFound(index) from exc
    wanted = listed[index]
    for attachment in parsed.attachments:
        if attachment.sha256 == wanted.get("sha256"):
            return attachment
    raise IntakeNotFound(index)


@dataclass(frozen=True)
class RecordChoice:
    kind: str
    id: int
    name: str
    emails: list[str]


def find_existing(session: Session, text: str, limit: int = 20) -> list[RecordChoice]:
    """Records whose name or address contains `text`, for Attach to an existing record."""
    from rolsync.records import RecordFilter, search_records

    text = text.strip()
    if len(text) < 2:
        return []
    found = search_records(session, RecordFilter(text=text), page=1, per_page=limit)
    return [RecordChoice(row.kind, row.id, row.name, row.emails) for row in found.items]


# -- acting ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    record: RecordRef
    notes_created: int
    items_closed: int


def _require_open(item: ImportWarning) -> None:
    """Two people acting on one item: the second is told, and nothing happens twice."""
    if item.status != WarningStatus.OPEN.value:
        raise IntakeError("This person has already been dealt with.")


def _close_items(session: Session, address: str, status: WarningStatus, resolution: str, actor: str) -> int:
    """Close every open item about `address` (the same applicant may have written twice, to two consultants)."""
    count = 0
    for item in session.scalars(select(ImportWarning).where(
            ImportWarning.kind == KIND, ImportWarning.address == address,
            ImportWarning.status == WarningStatus.OPEN.value).with_for_update()):
        item.status = status.value
        item.resolution = resolution
        item.resolved_by = actor
        item.resolved_at = utcnow()
        count += 1
    return count


def create_candidate(session: Session, store: DocumentStore, item: ImportWarning, *, name: str, email: str,
                     actor: str, viewer: User | None = None) -> Outcome:
    """Make a candidate of the item's sender and import every message held for the address onto it, at once."""
    _require_open(item)
    name = " ".join(name.split())
    if not name:
        raise IntakeError("Give the candidate a name.")
    if len(name) > 200:
        raise IntakeError("A name is at most 200 characters.")
    address = normalise_address(email)
    if not address or "@" not in address or "," in email or ";" in email:
        raise IntakeError(f"{email.strip() or 'An empty value'} is not an e-mail address.")
    owners = find_records(session, [address])[address]
    if owners.contacts or owners.candidates:
        names = ", ".join(r.name for r in [*owners.contacts, *owners.candidates][:3])
        raise IntakeError(f"{names} already {'has' if len(owners.contacts) + len(owners.candidates) == 1 else 'have'} "
                          f"the address {address}: use Attach to an existing record instead.")
    candidate = Candidate(name=name)
    candidate.emails.append(EmailAddress(address=address))
    session.add(candidate)
    session.flush()
    record = RecordRef(RecordKind.CANDIDATE, candidate.id, candidate.name, candidate.updated_at)
    return _take_in(session, store, item, record, actor, resolution="candidate_created",
                    extra_addresses=[address], viewer=viewer)


def attach_to_record(session: Session, store: DocumentStore, item: ImportWarning, *, kind: str, record_id: int,
                     actor: str, viewer: User | None = None) -> Outcome:
    """Give the item's address to an existing record and import the mail held for it onto that record."""
    from rolsync.records import RecordError, RecordNotFound, add_email, get_record

    _require_open(item)
    try:
        record = get_record(session, kind, record_id)
    except RecordNotFound as exc:
        raise IntakeError("That record no longer exists.") from exc
    if item.address and all(e.address != item.address for e in record.emails):
        try:
            add_email(session, record, item.address)
        except RecordError as exc:
            raise IntakeError(str(exc)) from exc
    ref = RecordRef(record.kind, record.id, record.name, record.updated_at)
    return _take_in(session, store, item, ref, actor, resolution="attached", viewer=viewer)


def _take_in(session: Session, store: DocumentStore, item: ImportWarning, record: RecordRef, actor: str, *,
             resolution: str, extra_addresses: Iterable[str] = (), viewer: User | None = None) -> Outcome:
    """Import what is held for the item's address (and `extra_addresses`) onto `record`; close the items.

    With `viewer`, only held mail their visibility lets them see (`rolsync.privacy`).
    """
    address = item.address or ""
    rules = active_rules(session)
    # Held under the sender's address even when the person typed another one for the candidate.
    created = link_pending(session, store, rules, [address], viewer, onto=[record]) if address else 0
    others = [a for a in extra_addresses if a != address]
    if others:
        created += link_pending(session, store, rules, others, viewer)
    closed = _close_items(session, address, WarningStatus.RESOLVED, resolution, actor)
    session.flush()
    return Outcome(record, created, closed)


def not_a_candidate(session: Session, viewer: User, item_ids: Iterable[int], *, actor: str) -> tuple[int, list[str]]:
    """Block the senders of these items in the rule set (one new version) and close their items.

    Returns (items closed, addresses blocked). The admin sees the addresses
    under "Never import mail from or to" and the version in the rules'
    history, and undoes it by removing the address or rolling back.
    """
    ids = sorted({int(i) for i in item_ids})[:MAX_BULK]
    items = list(session.scalars(_visible(select(ImportWarning), viewer).where(
        ImportWarning.id.in_(ids), ImportWarning.kind == KIND,
        ImportWarning.status == WarningStatus.OPEN.value))) if ids else []
    addresses = sorted({i.address for i in items if i.address})
    if not addresses:
        return 0, []
    version = active_version(session)
    definition = validate(version.definition if version else {})
    blocked = set(definition["blocked"]["addresses"])
    new = [a for a in addresses if a not in blocked]
    if new:
        definition["blocked"]["addresses"] = sorted(blocked | set(new))
        save_version(session, definition, author=actor,
                     comment="Not a candidate: " + ", ".join(new[:5]) + (" and more" if len(new) > 5 else ""))
    closed = sum(_close_items(session, a, WarningStatus.DISMISSED, "not_a_candidate", actor) for a in addresses)
    session.flush()
    return closed, new


def create_candidates(session: Session, store: DocumentStore, viewer: User, item_ids: Iterable[int], *,
                      actor: str) -> tuple[int, int]:
    """Bulk Create candidate, each with the name and address the item shows; returns (candidates, notes)."""
    ids = sorted({int(i) for i in item_ids})[:MAX_BULK]
    made = notes = 0
    for item_id in ids:
        try:
            item = get_item(session, viewer, item_id, for_update=True)
        except IntakeNotFound:
            continue
        if item.status != WarningStatus.OPEN.value or not item.address:
            continue  # closed a moment ago, or by the same sender's item just before
        held_by = find_records(session, [item.address])[item.address]
        if held_by.contacts or held_by.candidates:
            continue  # someone added the address meanwhile; the held mail went there
        outcome = create_candidate(session, store, item, name=item_name(item) or item.address.split("@")[0],
                                   email=item.address, actor=actor, viewer=viewer)
        made += 1
        notes += outcome.notes_created
    return made, notes

