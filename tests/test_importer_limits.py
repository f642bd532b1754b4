"""A hostile message hits the parse limits and the rest of its batch imports; none of it stops the mailbox."""
from __future__ import annotations

import time

from flask import current_app

import rolsync.mail.parse.message as message_module
from tests.mail.builders import build_message, build_tnef, minimal_pdf

CAROL = "carol@client.example"


def test_the_mime_part_and_tnef_bombs_hit_their_limits_and_the_batch_imports(consultant, crm):
    current_app.config.update(LIMIT_MIME_PARTS=20, LIMIT_ATTACHMENTS=5)
    parts = build_message(from_=CAROL, to=consultant.email, subject="Parts", text="Many files",
                          attachments=[(f"f{i}.pdf", "application/pdf", minimal_pdf(f"File {i}")) for i in range(60)])
    tnef = build_message(from_=CAROL, to=consultant.email, subject="TNEF", text="Outlook",
                         attachments=[("winmail.dat", "application/ms-tnef",
                                       build_tnef([(f"empty{i}.txt", "text/plain", b"") for i in range(40)]))])
    after = build_message(from_=CAROL, to=consultant.email, subject="After", text="Still here")
    consultant.deliver_many("INBOX", [parts, tnef, after])
    assert consultant.import_now()["imported"] == 3
    found = {note["subject"]: note for note in consultant.notes()}
    assert len(found["Parts"]["documents"]) == 5
    assert "more were not read" in found["Parts"]["body"] and "13 more were dropped" in found["Parts"]["body"]
    assert len(found["TNEF"]["documents"]) <= 5
    assert "more attachments than rolsync keeps (5); 35 more were dropped" in found["TNEF"]["body"]
    assert found["After"]["body"] == "Still here"


def test_a_message_over_its_processor_time_is_a_warning_and_the_next_one_imports(consultant, crm, monkeypatch):
    current_app.config.update(LIMIT_PARSE_SECONDS=0.3)
    parse_fast = message_module.parse_fast

    def slow_for_one(raw, **kwargs):
        if b"Subject: Slow" in raw:
            end = time.thread_time() + 0.5
            while time.thread_time() < end:  # a message that costs processor time to read
                pass
        return parse_fast(raw, **kwargs)

    monkeypatch.setattr(message_module, "parse_fast", slow_for_one)
    consultant.deliver_many("INBOX", [build_message(from_=CAROL, to=consultant.email, subject=subject, text="x")
                                      for subject in ("Before", "Slow", "After")])
    assert consultant.import_now()["imported"] == 2
    assert sorted(note["subject"] for note in consultant.notes()) == ["After", "Before"]
    [warning] = [w for w in consultant.warnings() if w["kind"] == "unreadable_message"]
    assert "processor time" in warning["detail"]
