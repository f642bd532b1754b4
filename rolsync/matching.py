"""Finding the contacts and candidates that own an e-mail address."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.mail.parse.addresses import normalise_address
from rolsync.models import Candidate, Contact, EmailAddress, RecordKind

IN_CHUNK = 1000
"""Values per `IN (...)`: a batch's addresses can number tens of thousands, and
PostgreSQL (psycopg) takes at most 65,535 parameters per statement, SQLite 32,766."""

T = TypeVar("T")


def chunked(values: Sequence[T], size: int | None = None) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `size` (IN_CHUNK), for statements with one parameter per value."""
    size = size or IN_CHUNK
    for start in range(0, len(values), size):
        yield values[start:start + size]


@dataclass(frozen=True)
class RecordRef:
    """Enough of a record to decide on it and to name it in a warning."""

    kind: RecordKind
    id: int
    name: str
    updated_at: datetime | None

    def as_json(self, address: str) -> dict:
        return {"kind": self.kind.value, "id": self.id, "name": self.name, "email": address}


@dataclass
class Matches:
    contacts: list[RecordRef] = field(default_factory=list)
    candidates: list[RecordRef] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[RecordRef]:
        return self.contacts if kind == RecordKind.CONTACT.value else self.candidates


def find_records(session: Session, addresses: Iterable[str]) -> dict[str, Matches]:
    """Every normalised address -> the records holding it, contacts and candidates in id order.

    One query on the address index, then the records by primary key: no
    join, so the cost does not grow with the CRM (a join lets PostgreSQL's
    planner pick a hash join that scans a small CRM's whole table). Each is
    chunked (`IN_CHUNK`), however many addresses a batch brings.
    """
    wanted = sorted({a for a in (normalise_address(x) for x in addresses) if a})
    found: dict[str, Matches] = {address: Matches() for address in wanted}
    if not wanted:
        return found
    owners = [row for part in chunked(wanted) for row in session.execute(
        select(EmailAddress.address, EmailAddress.contact_id, EmailAddress.candidate_id)
        .where(EmailAddress.address.in_(part))
    )]
    for kind, model, column in ((RecordKind.CONTACT, Contact, 1), (RecordKind.CANDIDATE, Candidate, 2)):
        ids = {row[column] for row in owners if row[column] is not None}
        if not ids:
            continue
        records = {id_: RecordRef(kind, id_, name, updated) for part in chunked(sorted(ids))
                   for id_, name, updated in session.execute(
                       select(model.id, model.name, model.updated_at).where(model.id.in_(part)))}
        for row in sorted(owners, key=lambda row: row[column] or 0):
            if row[column] in records:
                found[row.address].of_kind(kind.value).append(records[row[column]])
    return found
