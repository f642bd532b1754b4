"""Reconciliation: every message on the server at the last poll, counted by what rolsync did with it.

A poll records the folder's STATUS (MESSAGES, UIDNEXT). When that changed
since the last count (or there is none yet), the importer asks the server for
the folder's UIDs once (UID SEARCH ALL) and sorts each into exactly one bucket:

* below the first run's floor: ``before_first_run``;
* above the watermark (``last_uid``): ``not_read_yet``;
* a ledger row for that folder, UIDVALIDITY and UID: its outcome
  (``imported``, ``warned``, ``failed``, or ``skipped`` by reason);
* otherwise the message is fetched (at most ``INSPECT_LIMIT`` of them): older
  than the floor's date (a folder read again after a UIDVALIDITY change) is
  ``before_first_run``; in the ledger under another UID (a second copy, e.g.
  mail to oneself in Inbox and Sent) is ``skipped`` as ``already_imported``;
  anything left is ``unaccounted``, and raises a warning.

So the buckets add up to the server's count by construction, and an idle poll
(STATUS unchanged) costs nothing more than before.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.mail.imap import FolderStatus, MailboxSession
from rolsync.mail.parse import ParsedMessage, parse_or_failure
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

log = logging.getLogger(__name__)

COUNTED = ("imported", "warned", "failed", "before_first_run", "not_read_yet", "unaccounted")
"""The buckets besides ``skipped`` (an object by reason); with it they add up to ``messages``."""
INSPECT_LIMIT = 200
"""At most this many messages without a ledger row are fetched to explain them; the rest stay unaccounted."""
ALREADY_IMPORTED = "already_imported"


def note_poll(state: FolderState, status: FolderStatus) -> bool:
    """Record a poll's STATUS on the folder; True when the folder changed since it was last counted."""
    changed = (state.reconciliation is None or state.server_messages != status.exists
               or state.uidnext != status.uidnext or state.uidvalidity != status.uidvalidity)
    state.server_messages = status.exists
    state.uidnext = status.uidnext
    state.polled_at = utcnow()
    if status.uidnext != state.caught_up_uidnext and state.uidnext_pending_since is None:
        state.uidnext_pending_since = state.polled_at  # cleared by the count once nothing is left unread
    return changed


def count_folder(session: Session, mailbox: MailboxSession, state: FolderState, user_id: int) -> dict:
    """Count the folder against the ledger now (one UID SEARCH ALL) and keep the result."""
    if mailbox.examined != state.name:
        # Right after an import the folder is still open: opening it again costs the server a rescan
        # (~130 ms for 20,000 messages in Maildir), and the server reports what arrived meanwhile anyway.
        mailbox.examine(state.name)
    uids = mailbox.all_uids()
    counts = classify(session, user_id, state, uids, mailbox)
    # Mail on the server above the watermark after the import has run: new mail left unread (the stall
    # alarm's second cause), whether the import stopped early or the server's SEARCH did not list it.
    if counts["not_read_yet"]:
        state.uidnext_pending_since = state.uidnext_pending_since or utcnow()
    elif state.caught_up_uidnext == state.uidnext:
        state.uidnext_pending_since = None
    if counts["unaccounted"]:
        log.warning("account %s: %d messages of %s unaccounted for (UIDs %s)", state.account_id,
                    counts["unaccounted"], state.name, counts["unaccounted_uids"])
    state.reconciliation = counts
    state.reconciled_at = utcnow()
    session.commit()
    _warn_if_unaccounted(session, state.account)
    return counts


def classify(session: Session, user_id: int, state: FolderState, uids: list[int],
             mailbox: MailboxSession | None) -> dict:
    """The folder's UIDs sorted into the buckets of the module doc; `mailbox` explains the leftovers."""
    low = min(uids, default=0)
    ledger: dict[int, tuple[str, str | None]] = {
        uid: (outcome, reason) for uid, outcome, reason in session.execute(
            select(ImportedMessage.uid, ImportedMessage.outcome, ImportedMessage.reason).where(
                ImportedMessage.user_id == user_id, ImportedMessage.folder == state.name,
                ImportedMessage.uidvalidity == state.uidvalidity,
                ImportedMessage.uid >= low, ImportedMessage.uid <= state.last_uid))}
    buckets: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    leftovers = []
    for uid in uids:
        if uid > state.last_uid:
            buckets["not_read_yet"] += 1
        elif uid < (state.floor_uid or 0):
            buckets["before_first_run"] += 1
        elif uid in ledger:
            outcome, reason = ledger[uid]
            if outcome in (Outcome.IMPORTED.value, Outcome.WARNED.value, Outcome.FAILED.value):
                buckets[outcome] += 1
            else:  # skipped, or an outcome added later: still counted once, under its reason
                skipped[reason or outcome] += 1
        else:
            leftovers.append(uid)
    unaccounted, vanished = leftovers, 0
    if leftovers and mailbox is not None:
        unaccounted, vanished = _explain(session, user_id, state, leftovers, mailbox, buckets, skipped)
    buckets["unaccounted"] = len(unaccounted)
    return {
        "messages": len(uids) - vanished,
        "uidnext": state.uidnext,
        **{name: buckets[name] for name in COUNTED},
        "skipped": dict(sorted(skipped.items())),
        "unaccounted_uids": unaccounted[:20],
    }


def _explain(session: Session, user_id: int, state: FolderState, uids: list[int], mailbox: MailboxSession,
             buckets: Counter, skipped: Counter) -> tuple[list[int], int]:
    """Fetch messages with no ledger row of their own; (the UIDs still unexplained, how many vanished)."""
    from rolsync.importer import dedupe_key  # the importer calls this module: imported here, not at the top

    look, rest = uids[:INSPECT_LIMIT], uids[INSPECT_LIMIT:]
    floor_date = _aware(state.floor_date)
    keys: dict[int, set[str]] = {}
    before_floor = 0
    for fetched in mailbox.fetch(look, batch_size=50):
        when = _aware(fetched.internaldate)
        if floor_date is not None and when is not None and when < floor_date:
            before_floor += 1
            continue
        sha = hashlib.sha256(fetched.raw).hexdigest()
        parsed = parse_or_failure(fetched.raw)
        readable = parsed if isinstance(parsed, ParsedMessage) else None
        keys[fetched.uid] = {dedupe_key(readable, fetched, sha), f"sha:{sha}"}
        if readable is not None:
            readable.discard_spool()
    buckets["before_first_run"] += before_floor
    known = set(session.scalars(select(ImportedMessage.dedupe_key).where(
        ImportedMessage.user_id == user_id,
        ImportedMessage.dedupe_key.in_(sorted({key for found in keys.values() for key in found})))))
    unexplained = []
    for uid in sorted(keys):
        if keys[uid] & known:
            skipped[ALREADY_IMPORTED] += 1
        else:
            unexplained.append(uid)
    # Expunged between the SEARCH and the FETCH: no longer on the server, so not counted at all.
    vanished = len(look) - len(keys) - before_floor
    return unexplained + rest, vanished


def _warn_if_unaccounted(session: Session, account: MailAccount) -> None:
    """One open warning while any folder has unaccounted messages; resolved once none has."""
    states = session.scalars(select(FolderState).where(FolderState.account_id == account.id)).all()
    missing = {state.name: (state.reconciliation or {}).get("unaccounted", 0) for state in states}
    total = sum(missing.values())
    open_warning = session.scalar(select(ImportWarning).where(
        ImportWarning.user_id == account.user_id, ImportWarning.kind == WarningKind.UNACCOUNTED.value,
        ImportWarning.status == WarningStatus.OPEN.value))
    if total and open_warning is None:
        where = ", ".join(f"{count} in {name}" for name, count in missing.items() if count)
        session.add(ImportWarning(
            user_id=account.user_id, kind=WarningKind.UNACCOUNTED.value,
            detail=f"{total} messages on the mail server ({where}) were neither imported nor left out for a "
                   "known reason. Your administrator can see their numbers on the Mailboxes page; the warning "
                   "clears itself once every message is accounted for."))
    elif not total and open_warning is not None:
        open_warning.status = WarningStatus.RESOLVED.value
        open_warning.resolved_at = utcnow()
        open_warning.resolution = "cleared"
    session.commit()


def report(session: Session, account: MailAccount, states: list[FolderState] | None = None) -> dict:
    """The last counts of each folder and their total: what `flask mail reconcile` prints.

    `states` are the account's folder states when the caller has them already (a page of mailboxes).
    """
    if states is None:
        states = list(session.scalars(select(FolderState).where(FolderState.account_id == account.id)
                                      .order_by(FolderState.role)))
    folders = {}
    for state in states:
        counts = dict(state.reconciliation or _empty(state))
        if not counts.get("unaccounted"):
            counts.pop("unaccounted_uids", None)
        folders[state.role] = {"name": state.name, **counts,
                               "polled_at": _iso(state.polled_at), "counted_at": _iso(state.reconciled_at)}
    total: dict = {"messages": 0, "uidnext": None, "skipped": {}}
    for name in COUNTED:
        total[name] = 0
    for counts in folders.values():
        total["messages"] += counts["messages"]
        for name in COUNTED:
            total[name] += counts[name]
        for reason, count in counts["skipped"].items():
            total["skipped"][reason] = total["skipped"].get(reason, 0) + count
    total["skipped"] = dict(sorted(total["skipped"].items()))
    return {"folders": folders, **total}


def _empty(state: FolderState) -> dict:
    """A folder never counted: nothing known, so nothing to add up yet."""
    return {"messages": 0, "uidnext": state.uidnext, **{name: 0 for name in COUNTED}, "skipped": {}}


def adds_up(counts: dict) -> bool:
    """The buckets sum to the server's count (true of every count this module makes)."""
    return sum(counts[name] for name in COUNTED) + sum(counts["skipped"].values()) == counts["messages"]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    aware = _aware(value)
    return aware.isoformat() if aware else None
