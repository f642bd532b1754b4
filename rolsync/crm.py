"""Loading contacts and candidates into the CRM from CSV rows."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.mail.parse.addresses import normalise_address
from rolsync.models import Candidate, Company, Contact, EmailAddress, RecordKind

HEADER = ("kind", "name", "email", "company")


class CrmLoadError(ValueError):
    """The file cannot be loaded; nothing was changed."""


@dataclass(frozen=True)
class CrmRow:
    kind: RecordKind
    name: str
    email: str
    company: str


def read_rows(reader) -> list[CrmRow]:
    """Check every row before any is loaded, so a bad file changes nothing."""
    if reader.fieldnames is None or tuple(f.strip().lower() for f in reader.fieldnames) != HEADER:
        raise CrmLoadError(f"the CSV header must be exactly {','.join(HEADER)}")
    rows, errors = [], []
    for line, raw in enumerate(reader, start=2):
        values = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        kind = values.get("kind", "").lower()
        if kind not in ("contact", "candidate"):
            errors.append(f"line {line}: kind must be contact or candidate, got {values.get('kind')!r}")
            continue
        email = normalise_address(values.get("email"))
        if not email:
            errors.append(f"line {line}: {values.get('email')!r} is not an e-mail address")
            continue
        if not values.get("name"):
            errors.append(f"line {line}: the name is empty")
            continue
        rows.append(CrmRow(RecordKind(kind), values["name"], email, values.get("company", "")))
    if errors:
        raise CrmLoadError("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    return rows


def _company(session: Session, name: str) -> Company | None:
    if not name:
        return None
    company = session.scalar(select(Company).where(Company.name == name))
    if company is None:
        company = Company(name=name)
        session.add(company)
        session.flush()
    return company


def _existing(session: Session, row: CrmRow) -> Contact | Candidate | None:
    model = Contact if row.kind is RecordKind.CONTACT else Candidate
    owner = EmailAddress.contact_id if row.kind is RecordKind.CONTACT else EmailAddress.candidate_id
    return session.scalar(
        select(model).join(EmailAddress, owner == model.id)
        .where(EmailAddress.address == row.email, model.name == row.name)
    )


def without_suppressed(session: Session, key: bytes, rows: list[CrmRow]) -> tuple[list[CrmRow], int]:
    """The rows whose address is not an erased person's, and how many were left out."""
    from rolsync.erasure import suppressed_among

    erased = suppressed_among(session, key, (row.email for row in rows))
    kept = [row for row in rows if row.email.lower() not in erased]
    return kept, len(rows) - len(kept)


def load_rows(session: Session, rows: Iterable[CrmRow], store: DocumentStore | None = None) -> tuple[int, int]:
    """Add each row as a record unless the same kind, name and address exist already.

    Two rows with one address and different names are two records: that is
    how duplicates arrive in a real CRM, and the import warns about them.
    """
    added = unchanged = 0
    new_addresses = []
    for row in rows:
        if _existing(session, row) is not None:
            unchanged += 1
            continue
        if row.kind is RecordKind.CONTACT:
            record = Contact(name=row.name, company=_company(session, row.company))
            record.emails.append(EmailAddress(address=row.email))
        else:
            record = Candidate(name=row.name)
            record.emails.append(EmailAddress(address=row.email))
        session.add(record)
        session.flush()
        new_addresses.append(row.email)
        added += 1
    if new_addresses and store is not None:
        # Mail held for addresses nobody had ("keep and link it later") now has its record.
        from rolsync.notes import link_pending
        from rolsync.rules.store import active_rules

        link_pending(session, store, active_rules(session), new_addresses)
    return added, unchanged
