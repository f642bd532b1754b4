"""Retention: imported notes and documents older than the admins' limit are deleted, with an audit of counts."""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, delete, func, null, or_, select, update
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.erasure import ErasureCounts
from rolsync.models import Document, Erasure, ImportedMessage, Note, StoredFile, utcnow
from rolsync.privacy import policy, unreferenced_files

log = logging.getLogger(__name__)

BATCH = 500
"""Notes deleted per transaction, so a first run over years of mail holds no long lock."""

MAX_MONTHS = 1200


def cutoff(now: datetime, months: int) -> datetime:
    """`months` calendar months before `now` (a day of the month that does not exist falls back to the last)."""
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    month += 1
    for day in (now.day, 30, 29, 28):
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _expired(column_date, column_created, limit: datetime):
    """Older than the limit by the message's date, or (without one) by when it was imported."""
    return or_(column_date < limit, and_(column_date.is_(None), column_created < limit))


def apply_retention(session: Session, store: DocumentStore, *, now: datetime | None = None,
                    months: int | None = None) -> Erasure | None:
    """Delete notes (and their documents and files) older than the limit and blank the ledger's subjects and
    addresses of the same age; returns the audit row, or None when there is no limit or nothing to do.

    Commits batch by batch; a file goes only after the commit that removed the last row naming it.
    """
    months = months if months is not None else policy(session).retention_months
    if not months:
        return None
    limit = cutoff(now or utcnow(), months)
    counts = ErasureCounts()
    while True:
        ids = list(session.scalars(select(Note.id).where(_expired(Note.sent_at, Note.created_at, limit))
                                   .order_by(Note.id).limit(BATCH)))
        if not ids:
            break
        files = set(session.scalars(select(Document.sha256).where(Document.note_id.in_(ids))))
        counts.documents += session.scalar(select(func.count(Document.id)).where(Document.note_id.in_(ids))) or 0
        session.execute(delete(Document).where(Document.note_id.in_(ids)))
        session.execute(delete(Note).where(Note.id.in_(ids)))
        counts.notes += len(ids)
        unused = unreferenced_files(session, files)
        if unused:
            session.execute(delete(StoredFile).where(StoredFile.sha256.in_(sorted(unused))))
        session.commit()
        for digest in sorted(unused):
            store.delete(digest)
        counts.files += len(unused)
    # The ledger rows stay (the messages are not imported again) without what they said.
    old = and_(_expired(ImportedMessage.sent_at, ImportedMessage.created_at, limit),
               or_(ImportedMessage.subject != "", ImportedMessage.from_addr != "", ImportedMessage.to_addrs != ""))
    counts.ledger_entries = session.scalar(select(func.count(ImportedMessage.id)).where(old)) or 0
    if counts.ledger_entries:
        session.execute(update(ImportedMessage).where(old).values(
            subject="", from_addr="", to_addrs="", details=null()).execution_options(synchronize_session=False))
    if not (counts.notes or counts.ledger_entries):
        session.commit()
        return None
    audit = Erasure(erased_at=utcnow(), erased_by=f"retention: older than {months} months", counts=counts.as_json())
    session.add(audit)
    session.commit()
    log.info("retention (%s months): %s", months, counts.as_json())
    return audit
