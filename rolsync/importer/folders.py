"""A mailbox's folders as the import knows them: their state, what is new in them, and the UIDVALIDITY breaker.

`FolderState` keeps, per folder (Inbox and Sent), the watermark (`last_uid`),
the first run's floor (`floor_uid`, then `floor_date`), UIDVALIDITY and the
UIDNEXT at which the folder was last read to the end (so a poll with nothing
new costs one STATUS). A server that keeps renumbering a folder would have us
read it again and again: after `limit` changes within a day the account is
paused (`UidValidityUnstable`).
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.mail.imap import MailboxSession
from rolsync.models import FolderState, ImportWarning, WarningKind, WarningStatus, as_utc, utcnow

log = logging.getLogger(__name__)

FOLDER_ROLES = ("inbox", "sent")
UIDVALIDITY_WINDOW = timedelta(hours=24)


class UidValidityUnstable(Exception):
    """A folder keeps changing its UIDVALIDITY: the account is paused rather than re-read forever."""

    def __init__(self, folder: str, changes: int):
        self.folder = folder
        self.changes = changes
        self.message = (f"The folder {folder} changed its UIDVALIDITY {changes} times within a day, so "
                        "importing is paused to avoid reading it again and again. Ask the mail server's "
                        "administrator whether the mailbox is being migrated, then resume the import.")
        self.hint = None
        super().__init__(self.message)


def known_folders(session: Session, account_id: int) -> dict[str, str | None] | None:
    """The folder names found before, so a poll needs no LIST."""
    states = session.scalars(select(FolderState).where(FolderState.account_id == account_id))
    known: dict[str, str | None] = {state.role: state.name for state in states}
    return known if set(known) == set(FOLDER_ROLES) else None


def folder_state(session: Session, account_id: int, role: str, name: str) -> FolderState:
    """The folder's state row, made on the first run."""
    state = session.scalar(
        select(FolderState).where(FolderState.account_id == account_id, FolderState.role == role)
    )
    if state is None:
        state = FolderState(account_id=account_id, role=role, name=name, last_uid=0, floor_uid=0,
                            uidvalidity_changes=0)
        session.add(state)
    state.name = name
    return state


def uids_to_read(session: Session, mailbox: MailboxSession, state: FolderState, *, first_run_limit: int,
                 uidvalidity_limit: int, first_run_since: date | None = None) -> tuple[list[int], int]:
    """The UIDs of the folder to import now, and its UIDNEXT; opens the folder read-only.

    On the first run only the newest `first_run_limit`, or what arrived since
    `first_run_since` when the admin set a day; after a renumbering
    (counted by the breaker) the whole folder again: the ledger keeps out
    what was imported, `floor_date` what is too old.
    """
    status = mailbox.examine(state.name)
    if state.uidvalidity is None:
        # First run: only the newest N, or what arrived since a day; everything older stays out for good.
        if first_run_since is not None:
            found = mailbox.uids_since(first_run_since)
            state.floor_uid = found[0] if found else status.uidnext
        else:
            cap = first_run_limit
            newest = mailbox.newest_uids(cap) if cap else []
            state.floor_uid = newest[0] if newest else (0 if cap else status.uidnext)
        state.uidvalidity = status.uidvalidity
        state.last_uid = 0
    elif state.uidvalidity != status.uidvalidity:
        uidvalidity_changed(session, state, uidvalidity_limit)
        # The server renumbered the folder: read it again from the start.
        log.info("UIDVALIDITY of %s changed for account %s; rescanning", state.name, state.account_id)
        state.uidvalidity = status.uidvalidity
        state.last_uid = 0
        state.floor_uid = 0
        state.caught_up_uidnext = None
    state.uidnext = status.uidnext
    session.commit()
    uids = [uid for uid in mailbox.uids_after(state.last_uid) if uid >= state.floor_uid]
    return uids, status.uidnext


def uidvalidity_changed(session: Session, state: FolderState, limit: int) -> None:
    """Count renumberings; a folder that keeps renumbering trips the breaker.

    Each change means reading the whole folder again, so a server that
    changes UIDVALIDITY on every session would have us re-fetch forever.
    """
    now = utcnow()
    recent = state.uidvalidity_changed_at and now - as_utc(state.uidvalidity_changed_at) < UIDVALIDITY_WINDOW
    state.uidvalidity_changes = (state.uidvalidity_changes or 0) + 1 if recent else 1
    state.uidvalidity_changed_at = now
    if state.uidvalidity_changes > limit:
        session.commit()
        raise UidValidityUnstable(state.name, state.uidvalidity_changes)


def below_floor(state: FolderState, internaldate: datetime | None) -> bool:
    """Whether a message is older than the first run's cap (older ones reappear after a UIDVALIDITY change).

    The first message read after the floor sets `floor_date`.
    """
    if state.floor_date is None and state.floor_uid and internaldate:
        state.floor_date = internaldate
        return False
    return bool(state.floor_date and internaldate and as_utc(internaldate) < as_utc(state.floor_date))


def note_missing_sent_folder(session: Session, user_id: int) -> None:
    """One open warning that the mailbox has no Sent folder, however many runs find none."""
    exists = session.scalar(
        select(ImportWarning.id).where(
            ImportWarning.user_id == user_id,
            ImportWarning.kind == WarningKind.NO_SENT_FOLDER.value,
            ImportWarning.status == WarningStatus.OPEN.value,
        )
    )
    if exists is None:
        session.add(ImportWarning(
            user_id=user_id,
            kind=WarningKind.NO_SENT_FOLDER.value,
            detail="No Sent folder was found in the mailbox, so sent mail is not imported. "
                   "The Inbox still imports.",
        ))
        session.commit()
