"""Bad mail ends as a note, a skip or a warning, and the run always completes."""
from __future__ import annotations

import hashlib
import os

from sqlalchemy import select

from devkit.builders import build_message, build_tnef, minimal_docx, minimal_pdf, raw_message
from rolsync.extensions import db
from rolsync.importer import dedupe_key
from rolsync.mail.imap import FetchedMessage
from rolsync.mail.parse import parse_message
from rolsync.models import ImportedMessage

CAROL = "carol@client.example"


def outcomes() -> dict[str, tuple[str, str | None]]:
    return {m.subject or f"uid {m.uid}": (m.outcome, m.reason) for m in db.session.scalars(select(ImportedMessage))}


def test_awkward_mail_is_imported_and_the_run_completes(consultant, crm):
    big = os.urandom(20 * 1024 * 1024)
    enclosed = build_message(from_="someone@else.example", to=CAROL, subject="Original offer", text="Offer")
    consultant.deliver_many("INBOX", [
        # multipart with a boundary that never appears: the body is still read
        raw_message([("From", CAROL), ("To", consultant.email), ("Subject", "Broken MIME"),
                     ("Message-ID", "<broken@client.example>"), ("MIME-Version", "1.0"),
                     ("Content-Type", 'multipart/mixed; boundary="missing"')],
                    "This is the text of a message whose MIME is broken.\r\n"),
        build_message(from_=CAROL, to=consultant.email, subject="No Message-ID", text="x", message_id=None),
        raw_message([("From", b"Carol \xe9l\xe9gante <carol@client.example>"), ("To", consultant.email),
                     ("Subject", b"R\xc3\xa9sum\xc3\xa9 for the 8-bit header"), ("Message-ID", "<8bit@client>")],
                    b"Body with 8-bit \xe9 text\r\n"),
        raw_message([("From", CAROL), ("To", consultant.email), ("Subject", "Unknown charset"),
                     ("Message-ID", "<charset@client>"), ("MIME-Version", "1.0"),
                     ("Content-Type", 'text/plain; charset="x-no-such-charset"')],
                    "Plain words survive an unknown charset\r\n"),
        build_message(from_=CAROL, to=consultant.email, subject="Twenty megabytes", text="Big file",
                      attachments=[("portfolio.bin", "application/octet-stream", big)]),
        build_message(from_=CAROL, to=consultant.email, subject="Forwarded offer", text="See below",
                      attachments=[(None, "message/rfc822", enclosed)]),
        build_message(from_=CAROL, to=consultant.email, subject="Outlook winmail", text="CV inside",
                      attachments=[("winmail.dat", "application/ms-tnef",
                                    build_tnef([("CV Jane.docx", "application/vnd.openxmlformats-"
                                                 "officedocument.wordprocessingml.document", minimal_docx())]))]),
    ])

    summary = consultant.import_now()

    assert summary["failed"] == 0
    assert summary["imported"] == 7, outcomes()
    notes = {n["subject"]: n for n in consultant.notes()}
    assert "message whose MIME is broken" in notes["Broken MIME"]["body"]
    assert "Résumé for the 8-bit header" in notes
    assert "Plain words survive" in notes["Unknown charset"]["body"]
    [document] = notes["Twenty megabytes"]["documents"]
    assert (document["size"], document["sha256"]) == (len(big), hashlib.sha256(big).hexdigest())
    assert [d["content_type"] for d in notes["Forwarded offer"]["documents"]] == ["message/rfc822"]
    assert [d["filename"] for d in notes["Outlook winmail"]["documents"]] == ["CV Jane.docx"]
    assert notes["No Message-ID"]["message_id"] is None


def test_mail_that_is_not_a_message_becomes_a_warning(consultant, crm):
    consultant.deliver_many("INBOX", [
        b"\r\n\r\n",
        build_message(from_=CAROL, to=consultant.email, subject="After the junk", text="x",
                      attachments=[("cv.pdf", "application/pdf", minimal_pdf())]),
    ])
    summary = consultant.import_now()
    assert summary["imported"] == 1
    assert summary["warnings"] == 1
    kinds = [w["kind"] for w in consultant.warnings()]
    assert kinds == ["unreadable_message"]
    assert [n["subject"] for n in consultant.notes()] == ["After the junk"]
    assert consultant.import_now()["warnings"] == 0, "the same junk is not warned about twice"


def test_gmail_messages_are_keyed_by_x_gm_msgid():
    raw = build_message(from_=CAROL, subject="Gmail", text="x", message_id="<g@client>")
    parsed = parse_message(raw)
    in_inbox = FetchedMessage(uid=10, raw=raw, gm_msgid=1234567890123, internaldate=None)
    in_all_mail = FetchedMessage(uid=99, raw=raw, gm_msgid=1234567890123, internaldate=None)
    elsewhere = FetchedMessage(uid=10, raw=raw, gm_msgid=None, internaldate=None)
    assert dedupe_key(parsed, in_inbox, parsed.content_hash) == dedupe_key(parsed, in_all_mail, parsed.content_hash)
    assert dedupe_key(parsed, in_inbox, parsed.content_hash) == "gm:1234567890123"
    assert dedupe_key(parsed, elsewhere, parsed.content_hash) == "mid:g@client"
