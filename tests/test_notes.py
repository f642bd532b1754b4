"""rolsync.notes: one message saved as notes and documents, shared by the import and the warning queue."""
from __future__ import annotations

from sqlalchemy import func, select

from devkit.builders import build_message, minimal_pdf, tiny_png
from rolsync import crm, importer, notes, resources
from rolsync.extensions import db
from rolsync.mail.parse import parse_message
from rolsync.matching import find_records
from rolsync.models import Direction, Document, Note, RecordKind, StoredFile
from rolsync.rules.store import active_rules


def _records(address: str):
    found = find_records(db.session, [address])[address]
    return found.contacts + found.candidates


def test_each_record_gets_one_note_with_the_kept_documents(app):
    crm.load_rows(db.session, [crm.CrmRow(RecordKind.CONTACT, "Dan Dup", "shared@client.example", ""),
                               crm.CrmRow(RecordKind.CONTACT, "Dana Dup", "shared@client.example", "")])
    parsed = parse_message(build_message(
        from_="shared@client.example", to="me@agency.example", cc="x@agency.example", subject="Budget",
        text="80k", attachments=[("budget.pdf", "application/pdf", minimal_pdf()), ("logo.png", "image/png",
                                                                                    tiny_png())]))
    store, rules = resources.get().documents, active_rules(db.session)
    created = notes.save_message_as_notes(db.session, store, rules, parsed, user_id=_user_id(), folder="INBOX",
                                          direction=Direction.RECEIVED, records=_records("shared@client.example"))
    assert created == 2
    again = notes.save_message_as_notes(db.session, store, rules, parsed, user_id=_user_id(), folder="INBOX",
                                        direction=Direction.RECEIVED, records=_records("shared@client.example"))
    assert again == 0  # a record never holds two notes of one message
    db.session.commit()
    saved = list(db.session.scalars(select(Note)))
    assert {(n.subject, n.direction, n.from_addr, n.cc_addrs, n.body.strip()) for n in saved} == {
        ("Budget", "received", "shared@client.example", "x@agency.example", "80k")}
    assert [d.filename for d in db.session.scalars(select(Document))] == ["budget.pdf", "budget.pdf"]
    assert db.session.scalar(select(func.count(StoredFile.sha256))) == 1  # stored once
    [document] = list(db.session.scalars(select(Document)))[:1]
    assert store.read(document.sha256) == minimal_pdf()


def test_the_key_is_the_importers(app):
    for raw in (build_message(message_id="<abc@example.org>"), build_message(message_id=None)):
        parsed = parse_message(raw)
        assert notes.message_key(parsed) == importer.message_key(parsed, parsed.content_hash)


def _user_id() -> int:
    from rolsync.accounts import create_user
    from rolsync.models import User

    user = db.session.scalar(select(User))
    return user.id if user else create_user(db.session, "notes@agency.example", "long-password-1").id
