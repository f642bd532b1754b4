"""Plain builders for the panel's tests: records, a note with a document, a warning shaped like the import's."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from devkit.builders import build_message, minimal_pdf
from rolsync import crm, notes, resources
from rolsync.extensions import db
from rolsync.mail.parse import parse_message, snippet
from rolsync.matching import find_records
from rolsync.models import (
    Contact,
    Direction,
    Document,
    EmailAddress,
    ImportedMessage,
    ImportWarning,
    Outcome,
    RecordKind,
    WarningKind,
)
from rolsync.rules.store import active_rules

ROWS = [
    crm.CrmRow(RecordKind.CONTACT, "Carol Client", "carol@client.example", "Client Ltd"),
    crm.CrmRow(RecordKind.CONTACT, "Dan Dup", "shared@client.example", "Client Ltd"),
    crm.CrmRow(RecordKind.CONTACT, "Dana Dup", "shared@client.example", "Other Co"),
]


@dataclass
class Seeded:
    carol_id: int
    dan_id: int
    dana_id: int
    document_id: int
    note_id: int


def contact_id(name: str) -> int:
    return db.session.scalar(select(Contact.id).where(Contact.name == name))


def seed_crm(app, owner_id: int) -> Seeded:
    """Three contacts (two sharing an address) and a note with a PDF on Carol, filed from `owner_id`'s mailbox."""
    with app.app_context():
        crm.load_rows(db.session, ROWS)
        raw = build_message(from_="carol@client.example", to="me@agency.example", subject="CV for the Java role",
                            text="Please find the CV attached.",
                            attachments=[("cv.pdf", "application/pdf", minimal_pdf())])
        parsed = parse_message(raw)
        carol = find_records(db.session, ["carol@client.example"])["carol@client.example"].contacts
        notes.save_message_as_notes(db.session, resources.get().documents, active_rules(db.session), parsed,
                                    user_id=owner_id, folder="INBOX", direction=Direction.RECEIVED, records=carol)
        db.session.commit()
        document = db.session.scalar(select(Document))
        seeded = Seeded(contact_id("Carol Client"), contact_id("Dan Dup"), contact_id("Dana Dup"), document.id,
                        document.note_id)
        return seeded


def seed_duplicate_warning(app, owner_id: int, *, subject: str = "Budget for the new hire",
                           text: str = "We can go to 80k.", address: str = "shared@client.example") -> int:
    """A duplicate_address warning and its ledger row, as the import leaves them; returns the warning's id."""
    with app.app_context():
        raw = build_message(from_=f"Dan <{address}>", to="me@agency.example", subject=subject, text=text,
                            attachments=[("budget.pdf", "application/pdf", minimal_pdf())])
        parsed = parse_message(raw)
        store = resources.get().documents
        writer = notes.NoteWriter(db.session, store)
        sha = writer.store_bytes(raw)
        writer.flush()
        key = notes.message_key(parsed)
        holders = find_records(db.session, [address])[address].contacts
        warning = ImportWarning(
            user_id=owner_id, kind=WarningKind.DUPLICATE_ADDRESS.value, message_key=key,
            message_id=parsed.message_id, folder="INBOX", subject=parsed.subject, from_addr=parsed.from_addr,
            sent_at=parsed.date, address=address, records=[r.as_json(address) for r in holders],
            detail=f"{address} belongs to {len(holders)} contacts, so the message was not imported.",
            snippet=snippet(parsed.text), raw_sha256=sha, rule="duplicate_contact")
        db.session.add(warning)
        db.session.add(ImportedMessage(
            user_id=owner_id, dedupe_key=key, message_key=key, message_id=parsed.message_id, folder="INBOX",
            uid=1, subject=parsed.subject, from_addr=parsed.from_addr, sent_at=parsed.date,
            outcome=Outcome.WARNED.value, reason="duplicate_address", rule="duplicate_contact"))
        db.session.commit()
        return warning.id


def remove_address(app, contact_name: str, address: str) -> None:
    with app.app_context():
        record = db.session.get(Contact, contact_id(contact_name))
        for email in list(record.emails):
            if email.address == address:
                record.emails.remove(email)
        db.session.commit()
        assert db.session.scalar(select(EmailAddress.id).where(EmailAddress.contact_id == record.id,
                                                               EmailAddress.address == address)) is None
