"""The import schedule: how often a mailbox is imported, whether it is due, and when it runs next."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.models import MailAccount, as_utc, utcnow


def enabled_accounts(session: Session) -> list[MailAccount]:
    """The mailboxes the schedule imports: switched on and not paused."""
    return list(session.scalars(
        select(MailAccount)
        .where(MailAccount.enabled.is_(True), MailAccount.paused.is_(False))
        .order_by(MailAccount.id)
    ))


def schedule_interval(account: MailAccount, default_seconds: int) -> timedelta:
    """How often the account is imported: its own interval, else the deployment's (POLL_INTERVAL_SECONDS)."""
    return timedelta(seconds=account.poll_interval_seconds or default_seconds)


def is_due(account: MailAccount, default_seconds: int, now: datetime, safety_seconds: int = 0) -> bool:
    """Whether the schedule should import the account now: never run, or last run an interval ago or more.

    `safety_seconds`: a mailbox a watcher holds in IDLE (rolsync.push) is polled
    only this often, in case a notification went missing.
    """
    last = account.last_run_at
    interval = max(schedule_interval(account, default_seconds), timedelta(seconds=safety_seconds))
    return last is None or now - as_utc(last) >= interval


def due_accounts(session: Session, default_seconds: int, watched: frozenset[int] | set[int] = frozenset(),
                 safety_seconds: int = 0) -> list[MailAccount]:
    """Enabled, unpaused accounts whose last run is at least their interval ago (`watched`: the safety one)."""
    now = utcnow()
    return [account for account in enabled_accounts(session)
            if is_due(account, default_seconds, now, safety_seconds if account.id in watched else 0)]


def describe_interval(interval: timedelta) -> str:
    """"every 5 minutes", "every minute", "every 30 seconds"."""
    seconds = int(interval.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        hours = seconds // 3600
        return "every hour" if hours == 1 else f"every {hours} hours"
    if seconds % 60 == 0 and seconds >= 60:
        minutes = seconds // 60
        return "every minute" if minutes == 1 else f"every {minutes} minutes"
    return f"every {seconds} seconds"


def next_scheduled_run(account: MailAccount, default_seconds: int, now: datetime) -> datetime | None:
    """Roughly when the schedule takes the account next; None when it is switched off or paused."""
    if not account.enabled or account.paused:
        return None
    if account.last_run_at is None:
        return now
    return max(now, as_utc(account.last_run_at) + schedule_interval(account, default_seconds))
