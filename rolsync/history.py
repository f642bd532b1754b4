"""What the import did: the ledger searched for the history page, and the numbers behind the dashboard."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session

from rolsync.labels import OUTCOME_LABELS, REASON_LABELS, rule_label
from rolsync.models import (
    Candidate,
    Contact,
    ImportedMessage,
    ImportRun,
    ImportWarning,
    MailAccount,
    Note,
    Outcome,
    RecordKind,
    User,
    WarningStatus,
)
from rolsync.pagination import DEFAULT_PER_PAGE, Page, paginate

MAIL_DATE = func.coalesce(ImportedMessage.sent_at, ImportedMessage.created_at)
"""When the mail was written (its Date header); rows without one fall back to when rolsync saw them.

History and the dashboard's chart order and count by it: a first import decides
a hundred old messages at one moment, and "newest first" means the newest mail.
"""


@dataclass(frozen=True)
class HistoryFilter:
    text: str = ""  # an address, words of the subject, or a Message-ID
    outcome: str | None = None
    user_id: int | None = None  # admins only


@dataclass(frozen=True)
class RecordLink:
    kind: str
    id: int
    name: str


@dataclass
class HistoryEntry:
    message: ImportedMessage
    user_email: str
    records: list[RecordLink] = field(default_factory=list)

    @property
    def outcome_label(self) -> str:
        return OUTCOME_LABELS.get(self.message.outcome, self.message.outcome)

    @property
    def reason_label(self) -> str:
        reason = self.message.reason or ""
        return REASON_LABELS.get(reason, reason.replace("_", " "))

    @property
    def rule_label(self) -> str:
        return rule_label(self.message.rule)


def _visible(query: Select, viewer: User) -> Select:
    """Users see their own ledger; admins everyone's."""
    return query if viewer.is_admin else query.where(ImportedMessage.user_id == viewer.id)


def search_history(session: Session, viewer: User, wanted: HistoryFilter, page: int = 1,
                   per_page: int = DEFAULT_PER_PAGE) -> Page[HistoryEntry]:
    """The ledger, newest first: the viewer's own messages (admins: everyone's), filtered."""
    query = _visible(select(ImportedMessage), viewer)
    if wanted.outcome:
        query = query.where(ImportedMessage.outcome == wanted.outcome)
    if wanted.user_id is not None and viewer.is_admin:
        query = query.where(ImportedMessage.user_id == wanted.user_id)
    text = wanted.text.strip().lower()
    if text:
        # The ledger keeps the sender and the recipients; for messages
        # imported before it kept recipients, they are found through the notes
        # and warnings the message produced.
        in_notes = exists().where(Note.message_key == ImportedMessage.message_key, or_(
            func.lower(Note.to_addrs).contains(text, autoescape=True),
            func.lower(Note.cc_addrs).contains(text, autoescape=True)))
        in_warnings = exists().where(ImportWarning.message_key == ImportedMessage.message_key,
                                     ImportWarning.user_id == ImportedMessage.user_id,
                                     func.lower(ImportWarning.address).contains(text, autoescape=True))
        query = query.where(or_(
            func.lower(ImportedMessage.subject).contains(text, autoescape=True),
            func.lower(ImportedMessage.from_addr).contains(text, autoescape=True),
            func.lower(ImportedMessage.to_addrs).contains(text, autoescape=True),
            func.lower(ImportedMessage.message_id) == text.strip("<>"),
            in_notes, in_warnings,
        ))
    query = query.order_by(MAIL_DATE.desc(), ImportedMessage.id.desc())
    found = paginate(session, query, page, per_page)
    return Page(items=_entries(session, found.items), page=found.page, per_page=found.per_page, total=found.total)


def _entries(session: Session, messages: list[ImportedMessage]) -> list[HistoryEntry]:
    """Attach the records holding each message's note, and the user, in two queries for the page."""
    keys = {m.message_key for m in messages if m.outcome == Outcome.IMPORTED.value}
    records: dict[str, list[RecordLink]] = defaultdict(list)
    if keys:
        rows = session.execute(
            select(Note.message_key, Note.contact_id, Contact.name, Note.candidate_id, Candidate.name)
            .outerjoin(Contact, Note.contact_id == Contact.id)
            .outerjoin(Candidate, Note.candidate_id == Candidate.id)
            .where(Note.message_key.in_(keys)).order_by(Note.id))
        for key, contact_id, contact_name, candidate_id, candidate_name in rows:
            if contact_id is not None:
                records[key].append(RecordLink(RecordKind.CONTACT.value, contact_id, contact_name))
            else:
                records[key].append(RecordLink(RecordKind.CANDIDATE.value, candidate_id, candidate_name))
    user_ids = {m.user_id for m in messages}
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()) if user_ids else {}
    return [HistoryEntry(m, emails.get(m.user_id, ""), records.get(m.message_key, []) if
                         m.outcome == Outcome.IMPORTED.value else []) for m in messages]


# -- the dashboard ---------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class OutcomeCount:
    outcome: str
    reason: str | None
    count: int

    @property
    def label(self) -> str:
        reason = REASON_LABELS.get(self.reason or "", (self.reason or "").replace("_", " "))
        outcome = OUTCOME_LABELS.get(self.outcome, self.outcome)
        return f"{outcome}: {reason}" if reason else outcome


def _as_date(value) -> date:
    # PostgreSQL hands back a date, SQLite a 'YYYY-MM-DD' string.
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def imported_per_day(session: Session, viewer: User, *, days: int = 30, today: date | None = None,
                     user_id: int | None = None) -> list[DayCount]:
    """Messages imported on each of the last `days` days (UTC), oldest first, zeros included."""
    today = today or datetime.now(timezone.utc).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    day = func.date(MAIL_DATE)
    query = _visible(select(day, func.count(ImportedMessage.id)), viewer).where(
        ImportedMessage.outcome == Outcome.IMPORTED.value, MAIL_DATE >= since)
    if user_id is not None and viewer.is_admin:
        query = query.where(ImportedMessage.user_id == user_id)
    counts = {_as_date(d): n for d, n in session.execute(query.group_by(day))}
    return [DayCount(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)]


def outcomes(session: Session, viewer: User, *, days: int = 30, user_id: int | None = None) -> list[OutcomeCount]:
    """How the messages of the last `days` days were decided, most frequent first."""
    since = datetime.now(timezone.utc) - timedelta(days=days)
    query = _visible(select(ImportedMessage.outcome, ImportedMessage.reason, func.count(ImportedMessage.id)),
                     viewer).where(ImportedMessage.created_at >= since)
    if user_id is not None and viewer.is_admin:
        query = query.where(ImportedMessage.user_id == user_id)
    rows = session.execute(query.group_by(ImportedMessage.outcome, ImportedMessage.reason))
    found = [OutcomeCount(outcome, reason, count) for outcome, reason, count in rows]
    order = list(OUTCOME_LABELS)
    return sorted(found, key=lambda c: (order.index(c.outcome) if c.outcome in order else 99, -c.count))


def recent_runs(session: Session, account_id: int, limit: int = 5) -> list[ImportRun]:
    """The account's latest import runs, newest first."""
    return list(session.scalars(select(ImportRun).where(ImportRun.account_id == account_id)
                                .order_by(ImportRun.started_at.desc(), ImportRun.id.desc()).limit(limit)))


def last_finished_run(session: Session, account_id: int) -> ImportRun | None:
    """The account's latest run that has ended (well or with an error)."""
    return session.scalar(select(ImportRun).where(ImportRun.account_id == account_id,
                                                  ImportRun.finished_at.is_not(None))
                          .order_by(ImportRun.finished_at.desc(), ImportRun.id.desc()).limit(1))


@dataclass
class AccountOverview:
    """One row of the admins' mailbox table."""

    user: User
    account: MailAccount | None
    last_run: ImportRun | None
    open_warnings: int


def account_overview(session: Session) -> list[AccountOverview]:
    """Every user with their mailbox, its last finished run and their open warnings (the admins' table)."""
    users = list(session.scalars(select(User).order_by(func.lower(User.email))))
    open_by_user = dict(session.execute(
        select(ImportWarning.user_id, func.count(ImportWarning.id))
        .where(ImportWarning.status == WarningStatus.OPEN.value).group_by(ImportWarning.user_id)).all())
    rows = []
    for user in users:
        account = user.mail_account
        rows.append(AccountOverview(user, account, last_finished_run(session, account.id) if account else None,
                                    open_by_user.get(user.id, 0)))
    return rows
