"""Held mail follows new records: mail kept for an address imports onto the record that gets the address.

The import holds a message (`PendingMessage`) when the rules say "keep it
until a record has the address" or when it is an application for New people.
When an address is added to a record, `follow_new_addresses` imports what is
held for it: at once when there is little (the person sees it on the record
page straight away), else in an RQ job (`link_held_job`), in committed chunks,
so a big backlog neither holds a web request nor one long transaction. Both go
through `rolsync.notes.link_pending`, which marks each message linked and its
ledger row imported, so a message lands on the record once however often
this runs, and its note carries the date the message was received.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.models import EmailAddress, PendingMessage, User
from rolsync.notes import link_pending
from rolsync.rules.store import active_rules

log = logging.getLogger(__name__)

LINK_NOW = 100
"""Held messages imported within the request that added the address; more go to a background job."""
CHUNK = 200
"""Held messages one transaction of the background job imports."""


@dataclass(frozen=True)
class Followed:
    linked: int = 0  # notes made now
    queued: int = 0  # held messages left to the background job


def waiting(session: Session, addresses: Iterable[str], viewer: User | None = None) -> int:
    """How many held messages (that `viewer` may see) wait for these addresses."""
    from rolsync import privacy

    wanted = sorted(set(addresses))
    if not wanted:
        return 0
    return session.scalar(select(func.count(PendingMessage.id)).where(
        PendingMessage.address.in_(wanted), PendingMessage.linked_at.is_(None),
        privacy.held_visible(viewer))) or 0


def follow_new_addresses(session: Session, store: DocumentStore, addresses: Iterable[str], *,
                         viewer: User | None = None, queue=None, link_now: int | None = None) -> Followed:
    """Import the mail held for newly added addresses: now if it is little or there is no queue, else in a job.

    With `viewer`, only held mail their visibility lets them see is imported now
    (`rolsync.notes.link_pending`); the background job links what its owners may see.
    """
    addresses = sorted(set(addresses))
    count = waiting(session, addresses, viewer)
    if count == 0:
        return Followed()
    if queue is None or count <= (LINK_NOW if link_now is None else link_now):
        return Followed(linked=link_pending(session, store, active_rules(session), addresses, viewer))
    ids = sorted(session.scalars(select(EmailAddress.id).where(EmailAddress.address.in_(
        select(PendingMessage.address).where(PendingMessage.address.in_(addresses),
                                             PendingMessage.linked_at.is_(None))))))
    from rq import Retry

    queue.enqueue(link_held_job, ids, viewer.id if viewer is not None else None, description=f"held mail of {len(ids)} new addresses", result_ttl=3600,
                  failure_ttl=7 * 24 * 3600, retry=Retry(max=3, interval=[5, 30, 120]))
    return Followed(queued=count)


def link_held_job(email_ids: list[int], viewer_id: int | None = None) -> dict:
    """Import the mail held for these addresses (EmailAddress ids), a chunk per transaction; re-runnable.

    `viewer_id`: the person who added the addresses; only held mail they may see is linked.
    """
    from rolsync import resources
    from rolsync.extensions import db
    from rolsync.jobs import _after_fork, _get_app

    app = _get_app()
    with app.app_context():
        _after_fork(db)
        try:
            session = db.session
            from rolsync.matching import find_records

            found = find_records(session, session.scalars(select(EmailAddress.address).where(
                EmailAddress.id.in_(sorted(set(email_ids))))))
            # An address on several records stays held (as the import decides), so it is not retried here.
            addresses = sorted(a for a, m in found.items() if len(m.contacts or m.candidates) == 1)
            store = resources.get().documents
            viewer = session.get(User, viewer_id) if viewer_id is not None else None
            linked = 0
            while True:
                before = waiting(session, addresses, viewer)
                linked += link_pending(session, store, active_rules(session), addresses, viewer, limit=CHUNK)
                session.commit()
                if before == 0 or waiting(session, addresses, viewer) >= before:
                    break  # done, or what is left cannot be linked (an address on several records)
            return {"linked": linked}
        finally:
            db.session.remove()
