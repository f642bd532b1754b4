"""Finding the contacts and candidates that own an e-mail address."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.mail.parse import normalise_address
from rolsync.models import Candidate, Contact, EmailAddress, RecordKind


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
    """Every normalised address -> the records holding it; two indexed queries per batch."""
    wanted = sorted({a for a in (normalise_address(x) for x in addresses) if a})
    found: dict[str, Matches] = {address: Matches() for address in wanted}
    if not wanted:
        return found
    contacts = session.execute(
        select(EmailAddress.address, Contact.id, Contact.name, Contact.updated_at)
        .join(Contact, EmailAddress.contact_id == Contact.id)
        .where(EmailAddress.address.in_(wanted))
        .order_by(Contact.id)
    )
    for address, id_, name, updated in contacts:
        found[address].contacts.append(RecordRef(RecordKind.CONTACT, id_, name, updated))
    candidates = session.execute(
        select(EmailAddress.address, Candidate.id, Candidate.name, Candidate.updated_at)
        .join(Candidate, EmailAddress.candidate_id == Candidate.id)
        .where(EmailAddress.address.in_(wanted))
        .order_by(Candidate.id)
    )
    for address, id_, name, updated in candidates:
        found[address].candidates.append(RecordRef(RecordKind.CANDIDATE, id_, name, updated))
    return found
