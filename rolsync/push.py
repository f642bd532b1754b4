"""Push (IMAP IDLE) as the rest of rolsync sees it: the switches, the Redis keys, and whether a mailbox is live.

The watcher (rolsync/watcher.py) holds each mailbox it watches with a lease,
``rolsync:<queue>:push-lease:<id>`` (its own id as the value, expiring
unless renewed), and marks it live while an IDLE is open on its Inbox,
``rolsync:<queue>:push-live:<id>``, whose value says whether the Sent folder
is watched too ("all") or only the Inbox ("inbox"). The live key expires
with the lease, so a watcher that dies stops counting as live on its own.
The scheduler polls a live mailbox only at the slow safety interval (if its
Sent folder is watched too); Preferences shows it as "Live".
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolsync.models import AppSetting, ImportedMessage, MailAccount

LEASE_KEY = "rolsync:{queue}:push-lease:{account_id}"
LIVE_KEY = "rolsync:{queue}:push-live:{account_id}"
SETTING_KEY = "push"
"""The AppSetting that switches push for every mailbox: "on" (the default) or "off"."""

LIVE_ALL = "all"
"""Live value: the Inbox and the Sent folder are both watched (NOTIFY), or there is no Sent folder."""
LIVE_INBOX = "inbox"
"""Live value: only the Inbox is watched; the Sent folder is left to the schedule's usual interval."""


def lease_key(queue: str, account_id: int) -> str:
    return LEASE_KEY.format(queue=queue, account_id=account_id)


def live_key(queue: str, account_id: int) -> str:
    return LIVE_KEY.format(queue=queue, account_id=account_id)


def push_on(session: Session) -> bool:
    """Whether push is switched on for the deployment (it is unless an admin switched it off)."""
    value = session.scalar(select(AppSetting.value).where(AppSetting.key == SETTING_KEY))
    return value != "off"


def set_push_on(session: Session, on: bool) -> None:
    """Switch push on or off for every mailbox; watchers follow at their next refresh."""
    setting = session.get(AppSetting, SETTING_KEY)
    if setting is None:
        setting = AppSetting(key=SETTING_KEY, value="")
        session.add(setting)
    setting.value = "on" if on else "off"
    session.flush()


def set_mailbox_push(session: Session, account: MailAccount, on: bool) -> None:
    """Switch push on or off for one mailbox."""
    account.push_enabled = on
    session.flush()


def live_states(redis: Redis, queue: str, account_ids: Iterable[int]) -> dict[int, str]:
    """The mailboxes among `account_ids` a watcher holds in IDLE right now, with LIVE_ALL or LIVE_INBOX."""
    ids = list(account_ids)
    if not ids:
        return {}
    values = redis.mget([live_key(queue, account_id) for account_id in ids])
    return {account_id: value.decode() if isinstance(value, bytes) else str(value)
            for account_id, value in zip(ids, values, strict=True) if value is not None}


def live_state(redis: Redis, queue: str, account_id: int) -> str | None:
    """LIVE_ALL, LIVE_INBOX, or None when no watcher holds the mailbox in IDLE (or Redis cannot say)."""
    try:
        return live_states(redis, queue, [account_id]).get(account_id)
    except RedisError:
        return None


def last_mail_at(session: Session, account: MailAccount) -> datetime | None:
    """When the import last took in a new message of this mailbox (whatever it decided about it)."""
    return session.scalar(select(func.max(ImportedMessage.created_at))
                          .where(ImportedMessage.user_id == account.user_id))
