"""The warning queue: listing warnings, and sorting them out (attach, retry, dismiss).

Every action works from the raw message the import kept in the document store
(``ImportWarning.raw_sha256``), so nothing here talks IMAP. Attaching writes
the same notes the import would have written (``rolsync.notes``), marks the
warning resolved and turns the message's ledger row from warned to imported.
Plain values in, plain results out; the caller commits.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.labels import WARNING_KIND_LABELS, warning_kind_label
from rolsync.mail.parse import MessageUnreadable, ParsedMessage, normalise_address, parse_message
from rolsync.matching import Matches, RecordRef, find_records
from rolsync.models import (
    Candidate,
    Contact,
    Direction,
    FolderState,
    ImportedMessage,
    ImportWarning,
    MailAccount,
    Note,
    Outcome,
    RecordKind,
    User,
    WarningKind,
    WarningStatus,
    utcnow,
)
from rolsync.notes import save_message_as_notes
from rolsync.pagination import DEFAULT_PER_PAGE, Page, paginate
from rolsync.rules import CompiledRules, decide
from rolsync.rules.store import active_rules

KIND_LABELS = WARNING_KIND_LABELS
"""What each kind is called in the panel (rolsync.labels, shared by every page)."""

RETRYABLE_KINDS = frozenset({
    WarningKind.DUPLICATE_ADDRESS.value,
    WarningKind.CUSTOM_RULE.value,
    WarningKind.NO_MATCH.value,
    WarningKind.IMPORT_FAILED.value,
    WarningKind.UNREADABLE_MESSAGE.value,
})
"""Kinds whose stored message can be decided again with the current rules and records."""

ATTACHABLE_KINDS = frozenset({WarningKind.DUPLICATE_ADDRESS.value, WarningKind.CUSTOM_RULE.value})
"""Kinds whose warning names the records the message may go to."""


class Resolution(str, enum.Enum):
    """How a warning was closed (ImportWarning.resolution)."""

    ATTACHED = "attached"
    ATTACHED_ALL = "attached_all"
    RETRIED = "retried"
    DISMISSED = "dismissed"


class WarningActionError(ValueError):
    """The action cannot be done; the message says why, in the user's words."""


class WarningNotFound(LookupError):
    """No such warning, or not one this person may see."""


@dataclass(frozen=True)
class WarningFilter:
    kind: str | None = None
    status: str | None = WarningStatus.OPEN.value  # None: every status
    user_id: int | None = None
    text: str = ""  # subject, address or sender


@dataclass
class RetryResult:
    resolved: bool
    notes_created: int = 0
    records: list[RecordRef] = field(default_factory=list)
    explanation: str = ""


def kind_label(kind: str) -> str:
    """What a kind of warning is called in the panel."""
    return warning_kind_label(kind)


# -- reading ------------------------------------------------------------------------


def _visible(query: Select, viewer: User) -> Select:
    """Users see their own warnings; admins everyone's."""
    return query if viewer.is_admin else query.where(ImportWarning.user_id == viewer.id)


def search_warnings(session: Session, viewer: User, wanted: WarningFilter, page: int = 1,
                    per_page: int = DEFAULT_PER_PAGE) -> Page[ImportWarning]:
    """The warnings the viewer may see, filtered, newest first."""
    query = _visible(select(ImportWarning), viewer)
    if wanted.kind:
        query = query.where(ImportWarning.kind == wanted.kind)
    else:
        # Applications from new people are listed on their own page (rolsync.intake); the filter still finds them.
        query = query.where(ImportWarning.kind != WarningKind.INTAKE.value)
    if wanted.status:
        query = query.where(ImportWarning.status == wanted.status)
    if wanted.user_id is not None and viewer.is_admin:
        query = query.where(ImportWarning.user_id == wanted.user_id)
    text = wanted.text.strip().lower()
    if text:
        query = query.where(or_(
            func.lower(ImportWarning.subject).contains(text, autoescape=True),
            func.lower(ImportWarning.address).contains(text, autoescape=True),
            func.lower(ImportWarning.from_addr).contains(text, autoescape=True),
        ))
    # Newest mail first (a first import raises its warnings all at one moment); warnings about no
    # message (a refused sign-in) by when they were raised.
    query = query.order_by(func.coalesce(ImportWarning.sent_at, ImportWarning.created_at).desc(),
                           ImportWarning.id.desc())
    return paginate(session, query, page, per_page)


def open_count(session: Session, viewer: User) -> int:
    """The number in the navigation's badge."""
    query = _visible(select(func.count(ImportWarning.id)), viewer)
    # New people have their own page and count (rolsync.intake).
    return session.scalar(query.where(ImportWarning.status == WarningStatus.OPEN.value,
                                      ImportWarning.kind != WarningKind.INTAKE.value)) or 0


def kinds_present(session: Session, viewer: User) -> list[str]:
    """The kinds this person has warnings of, for the filter."""
    query = _visible(select(ImportWarning.kind).distinct(), viewer)
    return sorted(session.scalars(query))


def get_warning(session: Session, viewer: User, warning_id: int, *, for_update: bool = False) -> ImportWarning:
    """One warning the viewer may see (optionally locked for an action); else WarningNotFound."""
    query = _visible(select(ImportWarning).where(ImportWarning.id == warning_id), viewer)
    if for_update:
        # Two clicks at once must not attach twice: the second waits, then sees it resolved.
        query = query.with_for_update()
    warning = session.scalar(query)
    if warning is None:
        raise WarningNotFound(warning_id)
    return warning


def current_owners(session: Session, warnings: Iterable[ImportWarning]) -> dict[str, Matches]:
    """Who holds each warning's address now, so the page can say when a duplicate is gone."""
    return find_records(session, [w.address for w in warnings if w.address])


@dataclass(frozen=True)
class RecordName:
    kind: str
    id: int
    name: str


def records_reached(session: Session, warnings: Iterable[ImportWarning]) -> dict[int, list[RecordName]]:
    """For each resolved warning: the records its message is a note on now (what Attach or Retry did)."""
    resolved = [w for w in warnings if w.status == WarningStatus.RESOLVED.value and w.message_key]
    if not resolved:
        return {}
    keys = {(w.user_id, w.message_key) for w in resolved}
    notes = session.scalars(select(Note).where(Note.message_key.in_({key for _, key in keys}))
                            .order_by(Note.id))
    reached: dict[tuple[int, str], list[RecordName]] = {}
    for note in notes:
        if (note.user_id, note.message_key) not in keys:
            continue
        record = note.record
        names = reached.setdefault((note.user_id, note.message_key), [])
        if record is not None and all(n.id != record.id or n.kind != record.kind.value for n in names):
            names.append(RecordName(record.kind.value, record.id, record.name))
    return {w.id: reached.get((w.user_id, w.message_key or ""), []) for w in resolved}


def can_attach(warning: ImportWarning) -> bool:
    """Whether "Attach to this record" applies: open, naming records, with the message kept."""
    return warning.status == WarningStatus.OPEN.value and warning.kind in ATTACHABLE_KINDS \
        and bool(warning.records) and warning.raw_sha256 is not None


def can_retry(warning: ImportWarning) -> bool:
    """Whether the kept message can be decided again."""
    return warning.status == WarningStatus.OPEN.value and warning.kind in RETRYABLE_KINDS \
        and warning.raw_sha256 is not None


# -- acting -------------------------------------------------------------------------


def _require_open(warning: ImportWarning) -> None:
    if warning.status != WarningStatus.OPEN.value:
        raise WarningActionError("This warning has already been dealt with.")


def _resolve(warning: ImportWarning, status: WarningStatus, resolution: Resolution, actor: str) -> None:
    warning.status = status.value
    warning.resolution = resolution.value
    warning.resolved_by = actor
    warning.resolved_at = utcnow()


def _parsed(store: DocumentStore, warning: ImportWarning) -> ParsedMessage:
    if not warning.raw_sha256 or not store.exists(warning.raw_sha256):
        raise WarningActionError("The original message was not kept, so it cannot be imported from here.")
    try:
        return parse_message(store.read(warning.raw_sha256))
    except MessageUnreadable as exc:
        raise WarningActionError(f"The message still cannot be read: {exc.reason}.") from exc


def message_direction(session: Session, user_id: int, folder: str | None, parsed: ParsedMessage) -> Direction:
    """Received or sent, decided as the import decides it: by the folder's role, then by the sender."""
    account = session.scalar(select(MailAccount).where(MailAccount.user_id == user_id))
    if account is not None and folder:
        role = session.scalar(select(FolderState.role).where(
            FolderState.account_id == account.id, FolderState.name == folder))
        if role == "sent":
            return Direction.SENT
    user = session.get(User, user_id)
    own = {a.lower() for a in ((user.email if user else ""), (account.account_email if account else "")) if a}
    # The user's own message in the Inbox (a copy to self) counts as sent.
    return Direction.SENT if parsed.from_addr and parsed.from_addr in own else Direction.RECEIVED


def _existing_records(session: Session, wanted: Iterable[tuple[str, int]]) -> list[RecordRef]:
    """RecordRefs of the wanted (kind, id) pairs that still exist, in the given order."""
    refs = []
    for kind, record_id in wanted:
        record: Contact | Candidate | None = (session.get(Contact, record_id) if kind == RecordKind.CONTACT.value
                                              else session.get(Candidate, record_id))
        if record is not None:
            refs.append(RecordRef(RecordKind(kind), record.id, record.name, record.updated_at))
    return refs


def _mark_ledger_imported(session: Session, warning: ImportWarning, notes_created: int, *,
                          reason: str, rule: str | None) -> None:
    """The message's ledger row (outcome warned or failed) now says imported."""
    if not warning.message_key:
        return
    rows = session.scalars(select(ImportedMessage).where(
        ImportedMessage.user_id == warning.user_id, ImportedMessage.message_key == warning.message_key))
    for row in rows:
        if row.outcome != Outcome.IMPORTED.value:
            row.outcome = Outcome.IMPORTED.value
            row.reason = reason
            row.rule = rule
        row.notes_created = (row.notes_created or 0) + notes_created


def attach(session: Session, store: DocumentStore, warning: ImportWarning, *, actor: str,
           record: tuple[str, int] | None = None, rules: CompiledRules | None = None) -> int:
    """Import the warned message now onto one of the records it names (or all of them when `record` is None).

    Returns the number of notes created (0 when the records already held it).
    """
    _require_open(warning)
    if warning.kind not in ATTACHABLE_KINDS or not warning.records:
        raise WarningActionError("This warning names no records to attach the message to.")
    listed = [(r.get("kind"), r.get("id")) for r in warning.records]
    if record is not None and record not in listed:
        raise WarningActionError("That record is not one of the records this warning names.")
    refs = _existing_records(session, [record] if record else listed)
    if not refs:
        raise WarningActionError("The record no longer exists.")
    parsed = _parsed(store, warning)
    rules = rules or active_rules(session)
    created = save_message_as_notes(
        session, store, rules, parsed, user_id=warning.user_id, folder=warning.folder or "INBOX",
        direction=message_direction(session, warning.user_id, warning.folder, parsed), records=refs)
    _mark_ledger_imported(session, warning, created, reason="attached", rule=None)
    _resolve(warning, WarningStatus.RESOLVED, Resolution.ATTACHED if record else Resolution.ATTACHED_ALL, actor)
    session.flush()
    return created


def retry(session: Session, store: DocumentStore, warning: ImportWarning, *, actor: str,
          rules: CompiledRules | None = None) -> RetryResult:
    """Decide the stored message again with today's rules and records, and import it if it now can be.

    This is how a duplicate resolved by editing the records (so the address is
    unique) gets its message: the import has moved past that message on the
    server, so it is re-decided from the copy kept with the warning, by the
    same `rolsync.rules.decide` the import uses.
    """
    _require_open(warning)
    if warning.kind not in RETRYABLE_KINDS:
        raise WarningActionError("This kind of warning has no message to import again.")
    account = session.scalar(select(MailAccount).where(MailAccount.user_id == warning.user_id))
    if account is None:
        raise WarningActionError("The mailbox settings of this warning's user are gone, so the message cannot be "
                                 "decided again.")
    parsed = _parsed(store, warning)
    rules = rules or active_rules(session)
    own_addresses = {a.lower() for a in (account.account_email, warning.user.email) if "@" in a}
    direction = message_direction(session, warning.user_id, warning.folder, parsed)
    decision = decide(session, rules, parsed, direction, own=rules.own_domains(account.host, account.account_email),
                      own_addresses=own_addresses)
    result = RetryResult(resolved=False, records=list(decision.records))
    if decision.records:
        result.notes_created = save_message_as_notes(
            session, store, rules, parsed, user_id=warning.user_id, folder=warning.folder or "INBOX",
            direction=decision.direction, records=decision.records, kept=decision.kept)
        _mark_ledger_imported(session, warning, result.notes_created, reason=decision.reason or "matched",
                              rule=decision.rule)
    still = [w for w in decision.warnings if warning.address and w.address == warning.address]
    if still:
        names = ", ".join(r["name"] for r in still[0].records)
        result.explanation = (f"{warning.address} still belongs to several records ({names})." if names
                              else "The message still cannot be imported: " + still[0].detail)
    elif decision.records:
        _resolve(warning, WarningStatus.RESOLVED, Resolution.RETRIED, actor)
        result.resolved = True
    elif decision.warnings:
        result.explanation = "The message still cannot be imported: " + decision.warnings[0].detail
    else:
        reason = {"no_match": "no contact or candidate has its address",
                  "own_domain": "it is mail between colleagues (own domain)",
                  "no_counterpart": "it names no other address",
                  "automatic": "it looks like automatic mail",
                  "blocked": "its address is blocked",
                  "held_for_record": "it is kept until a record has its address"}.get(
            decision.reason or "", (decision.reason or "").replace("_", " "))
        result.explanation = f"The message is still not imported: {reason}."
    session.flush()
    return result


def dismiss(warning: ImportWarning, *, actor: str) -> None:
    """Close the warning without importing the message."""
    _require_open(warning)
    _resolve(warning, WarningStatus.DISMISSED, Resolution.DISMISSED, actor)


def dismiss_many(session: Session, viewer: User, warning_ids: Iterable[int], *, actor: str) -> int:
    """Dismiss the open warnings among `warning_ids` that the viewer may see; returns how many."""
    ids = sorted({int(i) for i in warning_ids})
    if not ids:
        return 0
    query = _visible(select(ImportWarning), viewer).where(
        ImportWarning.id.in_(ids), ImportWarning.status == WarningStatus.OPEN.value)
    count = 0
    for warning in session.scalars(query.with_for_update()):
        _resolve(warning, WarningStatus.DISMISSED, Resolution.DISMISSED, actor)
        count += 1
    session.flush()
    return count


@dataclass
class BulkRetry:
    tried: int = 0
    resolved: int = 0
    records: list[RecordRef] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)


def retry_many(session: Session, store: DocumentStore, viewer: User, warning_ids: Iterable[int], *,
               actor: str) -> BulkRetry:
    """Retry every open, retryable warning among `warning_ids` that the viewer may see (after fixing a record)."""
    ids = sorted({int(i) for i in warning_ids})
    outcome = BulkRetry()
    if not ids:
        return outcome
    query = _visible(select(ImportWarning), viewer).where(
        ImportWarning.id.in_(ids), ImportWarning.status == WarningStatus.OPEN.value).order_by(ImportWarning.id)
    rules = active_rules(session)
    for warning in list(session.scalars(query.with_for_update())):
        if not can_retry(warning):
            continue
        outcome.tried += 1
        try:
            result = retry(session, store, warning, actor=actor, rules=rules)
        except WarningActionError as exc:
            outcome.explanations.append(str(exc))
            continue
        if result.resolved:
            outcome.resolved += 1
            outcome.records.extend(r for r in result.records if r not in outcome.records)
        elif result.explanation:
            outcome.explanations.append(result.explanation)
    session.flush()
    return outcome


def reopen(warning: ImportWarning) -> None:
    """Put a dismissed warning back in the queue (a resolved one stays resolved: its notes exist)."""
    if warning.status != WarningStatus.DISMISSED.value:
        raise WarningActionError("Only a dismissed warning can be reopened.")
    warning.status = WarningStatus.OPEN.value
    warning.resolution = None
    warning.resolved_by = None
    warning.resolved_at = None


def open_warnings_for_address(session: Session, address: str) -> list[ImportWarning]:
    """Open duplicate warnings about `address`, which an edit of the records may have settled."""
    normal = normalise_address(address)
    if not normal:
        return []
    return list(session.scalars(select(ImportWarning).where(
        ImportWarning.address == normal, ImportWarning.status == WarningStatus.OPEN.value,
        ImportWarning.kind.in_([WarningKind.DUPLICATE_ADDRESS.value, WarningKind.NO_MATCH.value]),
    ).order_by(ImportWarning.id)))
