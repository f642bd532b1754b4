"""Every mailbox's state (healthy, paused, failing, stalled, never tested) and the stall alarms.

A mailbox is *stalled* when it should have imported and has not:

* its last successful poll is older than ``STALL_INTERVALS`` poll intervals
  (a worker that does not run, a server that keeps failing);
* a poll saw new mail on the server (UIDNEXT moved) that has stayed unread
  for as long;
* its OAuth access token can no longer be renewed (at once: waiting does not help).

`check_stalls` runs on the scheduler's dispatcher tick: three queries for all
mailboxes, no IMAP. It opens one ``stalled`` warning per owner, and resolves it
when the cause has gone. The labels are computed when read, so the Mailboxes
page is right even when no tick runs.
"""
from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from rolsync import reconcile
from rolsync.accounts import resume_account
from rolsync.models import (
    FolderState,
    ImportedMessage,
    ImportWarning,
    MailAccount,
    Outcome,
    WarningKind,
    WarningStatus,
    utcnow,
)
from rolsync.status import schedule_interval

STALL_INTERVALS = 3
"""Missed poll intervals before a mailbox counts as stalled."""
OAUTH_REFRESH_FAILING = "oauth_provider_error"
"""The failure code of an access token that the provider would not renew (rolsync.mail.errors.OAuthProviderError)."""


class MailboxState(str, enum.Enum):
    HEALTHY = "healthy"
    PAUSED = "paused"
    FAILING = "failing"
    STALLED = "stalled"
    NEVER_TESTED = "never tested"


@dataclass
class MailboxRow:
    """One mailbox as the Mailboxes page shows it."""

    account: MailAccount
    state: MailboxState
    stall: str | None = None  # why it is stalled, in words
    last_import_at: datetime | None = None
    counts: dict = field(default_factory=dict)  # reconcile.report()'s totals

    @property
    def user_email(self) -> str:
        return self.account.user.email


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def stall_cause(account: MailAccount, pending_since: datetime | None, now: datetime, config: dict) -> str | None:
    """Why the mailbox is stalled, in words for its owner; None when it is not (or is paused on purpose)."""
    if not account.enabled or account.paused:
        return None
    if account.uses_oauth and account.last_error_code == OAUTH_REFRESH_FAILING:
        return ("rolsync can no longer renew its access to the mailbox, so no mail is being imported. "
                f"The last attempt said: {account.last_error} ")
    limit = schedule_interval(account, config) * STALL_INTERVALS
    since = _aware(account.last_success_at) or _aware(account.created_at)
    if since is not None and now - since > limit:
        what = "No import of the mailbox has worked" if account.last_success_at else "The mailbox has not been read"
        error = f" The last attempt said: {account.last_error}" if account.last_error else \
            " No import has run since: the workers may be stopped."
        return f"{what} since {since:%Y-%m-%d %H:%M} UTC, so new mail is not being imported.{error}"
    pending = _aware(pending_since)
    if pending is not None and now - pending > limit:
        return (f"New mail reached the mailbox on {pending:%Y-%m-%d %H:%M} UTC and has not been imported since. "
                "rolsync keeps trying; if this stays, tell your administrator.")
    return None


def state_of(account: MailAccount, stall: str | None) -> MailboxState:
    """The label: a pause wins, then a failing last run, then a stall, then never having run."""
    if not account.enabled or account.paused:
        return MailboxState.PAUSED
    if account.last_error_code:
        return MailboxState.FAILING
    if stall:
        return MailboxState.STALLED
    if account.last_run_at is None:
        return MailboxState.NEVER_TESTED
    return MailboxState.HEALTHY


def _pending_since(session: Session) -> dict[int, datetime]:
    """The oldest unread-new-mail time of each mailbox that has one (one query)."""
    return {account_id: since for account_id, since in session.execute(
        select(FolderState.account_id, func.min(FolderState.uidnext_pending_since))
        .where(FolderState.uidnext_pending_since.is_not(None)).group_by(FolderState.account_id))}


def check_stalls(session: Session, config: dict, now: datetime | None = None) -> dict[str, int]:
    """Open a `stalled` warning for each stalled mailbox's owner, resolve those whose cause has gone."""
    now = now or utcnow()
    pending = _pending_since(session)
    accounts = session.scalars(select(MailAccount)).all()
    open_warnings = {w.user_id: w for w in session.scalars(select(ImportWarning).where(
        ImportWarning.kind == WarningKind.STALLED.value, ImportWarning.status == WarningStatus.OPEN.value))}
    raised = cleared = 0
    for account in accounts:
        cause = stall_cause(account, pending.get(account.id), now, config)
        warning = open_warnings.get(account.user_id)
        if cause and warning is None:
            session.add(ImportWarning(user_id=account.user_id, kind=WarningKind.STALLED.value, detail=cause))
            raised += 1
        elif cause and warning is not None:
            warning.detail = cause
        elif warning is not None:
            warning.status = WarningStatus.RESOLVED.value
            warning.resolved_at = now
            warning.resolution = "cleared"
            cleared += 1
    session.commit()
    return {"raised": raised, "cleared": cleared}


def mailbox_rows(session: Session, config: dict, state: str | None = None,
                 now: datetime | None = None) -> list[MailboxRow]:
    """Every user's mailbox with its state, last import and counts, by user; only `state` ones if given."""
    now = now or utcnow()
    pending = _pending_since(session)
    accounts = session.scalars(select(MailAccount).options(selectinload(MailAccount.user))).all()
    last_import: dict[int, datetime] = {user_id: when for user_id, when in session.execute(
        select(ImportedMessage.user_id, func.max(ImportedMessage.created_at))
        .where(ImportedMessage.outcome == Outcome.IMPORTED.value).group_by(ImportedMessage.user_id))}
    folders: dict[int, list[FolderState]] = defaultdict(list)
    for folder in session.scalars(select(FolderState).order_by(FolderState.role)):
        folders[folder.account_id].append(folder)
    rows = []
    for account in sorted(accounts, key=lambda a: a.user.email):
        stall = stall_cause(account, pending.get(account.id), now, config)
        row = MailboxRow(account, state_of(account, stall), stall, last_import.get(account.user_id),
                         reconcile.report(session, account, folders[account.id]))
        if state is None or row.state.value == state:
            rows.append(row)
    return rows


def state_counts(session: Session, config: dict, now: datetime | None = None) -> dict[str, int]:
    """How many mailboxes are in each state (every state present, zero or not)."""
    counts: dict[str, int] = defaultdict(int, {s.value: 0 for s in MailboxState})
    now = now or utcnow()
    pending = _pending_since(session)
    for account in session.scalars(select(MailAccount)):
        counts[state_of(account, stall_cause(account, pending.get(account.id), now, config)).value] += 1
    return dict(counts)


def resume_paused(session: Session, account_ids: list[int]) -> int:
    """Resume these paused mailboxes (the Mailboxes page's bulk action); how many were paused."""
    resumed = 0
    for account in session.scalars(select(MailAccount).where(MailAccount.id.in_(account_ids))):
        if account.paused:
            resume_account(session, account)
            resumed += 1
    session.commit()
    return resumed
