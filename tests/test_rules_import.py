"""Each rule option changes a real import from the test Dovecot the way its help text says."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from devkit.builders import build_message, minimal_pdf, tiny_png
from rolsync.extensions import db
from rolsync.models import ImportedMessage
from tests.conftest import load_crm

ROOT = Path(__file__).resolve().parent.parent
CAROL = "carol@client.example"


def set_rules(consultant, tmp_path, **sections) -> None:
    rules = json.loads(consultant.cli("rules", "export").output)
    for name, value in sections.items():
        if isinstance(value, dict):
            rules[name].update(value)
        else:
            rules[name] = value
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    result = consultant.cli("rules", "import", str(path))
    assert result.exit_code == 0, result.output


def subjects(consultant) -> list[str]:
    return sorted(n["subject"] for n in consultant.notes())


def ledger() -> dict[str, tuple]:
    db.session.rollback()
    return {m.subject: (m.outcome, m.reason, m.rule) for m in db.session.scalars(select(ImportedMessage))}


BIG_PNG = tiny_png() + b"\0" * 20_000  # still an image by its bytes, but large


@pytest.mark.parametrize("option,changes,expect_documents", [
    ("images: exclude all (default)", {}, ["cv.pdf"]),
    ("images: only inline", {"images": {"mode": "exclude_inline"}}, ["cv.pdf", "photo.png"]),
    ("images: keep", {"images": {"mode": "keep"}}, ["cv.pdf", "logo.png", "photo.png"]),
    ("images: keep but drop small", {"images": {"mode": "keep", "min_size": 1000}}, ["cv.pdf", "photo.png"]),
    ("attachments: size limit", {"attachments": {"max_size": 300}}, []),
    ("attachments: blocked types", {"attachments": {"blocked_extensions": [".pdf"]}}, []),
])
def test_attachment_options(consultant, crm, tmp_path, option, changes, expect_documents):
    set_rules(consultant, tmp_path, **changes)
    consultant.deliver("INBOX", build_message(
        from_=CAROL, to=consultant.email, subject="Files", text="See files", html="<p>See files</p>",
        inline_images=[("logo1", "logo.png", "image/png", tiny_png())],
        attachments=[("cv.pdf", "application/pdf", minimal_pdf()), ("photo.png", "image/png", BIG_PNG)]))
    consultant.import_now()
    [note] = consultant.notes()
    assert sorted(d["filename"] for d in note["documents"]) == expect_documents
    entry = db.session.scalar(select(ImportedMessage))
    dropped = {d["filename"] for d in (entry.details or {}).get("dropped", [])}
    assert dropped == {"cv.pdf", "logo.png", "photo.png"} - set(expect_documents), "the history says what was dropped"


@pytest.mark.parametrize("action,expect_notes,expect_warning", [
    ("warn", [], True),
    ("attach_all", ["Dan Dup", "Dana Dup"], False),
    ("attach_latest", ["Dana Dup"], False),
])
def test_duplicate_address_options(consultant, crm, tmp_path, action, expect_notes, expect_warning):
    set_rules(consultant, tmp_path, duplicate_address={"action": action})
    consultant.deliver("INBOX", build_message(from_="shared@client.example", to=consultant.email,
                                              subject="Shared", text="x"))
    consultant.import_now()
    from rolsync.models import Contact, Note

    names = sorted(db.session.scalars(select(Contact.name).join(Note, Note.contact_id == Contact.id)))
    assert names == expect_notes
    assert any(w["kind"] == "duplicate_address" for w in consultant.warnings()) is expect_warning


def test_no_match_keep_links_the_message_to_a_record_added_later(consultant, crm, tmp_path, app):
    # With a CV attached the message would be an application for New people (tests/test_intake.py).
    set_rules(consultant, tmp_path, no_match={"action": "keep"}, intake={"enabled": False})
    consultant.deliver("INBOX", build_message(from_="newcomer@prospect.example", to=consultant.email,
                                              subject="Before I was a contact", text="Hello",
                                              attachments=[("cv.pdf", "application/pdf", minimal_pdf())]))
    summary = consultant.import_now()
    assert summary["imported"] == 0 and consultant.notes() == []
    assert ledger()["Before I was a contact"][1] == "held_for_record"
    load_crm(app, [("candidate", "Nina Newcomer", "newcomer@prospect.example", "")], tmp_path)
    [note] = consultant.notes()
    assert (note["record_email"], note["subject"]) == ("newcomer@prospect.example", "Before I was a contact")
    assert [d["filename"] for d in note["documents"]] == ["cv.pdf"]


def test_automatic_mail_is_skipped_by_default_and_can_be_kept(consultant, crm, tmp_path):
    auto = build_message(from_=CAROL, to=consultant.email, subject="Out of office", text="Away",
                         headers={"Auto-Submitted": "auto-replied"})
    consultant.deliver("INBOX", auto)
    consultant.import_now()
    assert consultant.notes() == []
    assert ledger()["Out of office"][1:] == ("automatic", "automatic_mail")
    set_rules(consultant, tmp_path, automatic_mail={"skip": False})
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Newsletter", text="News",
                                              headers={"List-Id": "<news.client.example>"}))
    consultant.import_now()
    assert subjects(consultant) == ["Newsletter"]


def test_blocked_addresses(consultant, crm, tmp_path):
    set_rules(consultant, tmp_path, blocked={"addresses": ["@client.example"]})
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Blocked", text="x"))
    consultant.deliver("INBOX", build_message(from_="cathy@candidates.example", to=consultant.email,
                                              subject="Allowed", text="x"))
    consultant.import_now()
    assert subjects(consultant) == ["Allowed"]
    assert ledger()["Blocked"][1:] == ("blocked", "blocked_addresses")


CUSTOM = {"name": "Interview invites", "match": "all",
          "conditions": [{"field": "subject", "op": "contains", "value": "interview"}]}


@pytest.mark.parametrize("action,extra,check", [
    ("skip", {}, lambda c: subjects(c) == ["Other"] and ledger()["Interview Tuesday"][2] == "custom: Interview invites"),
    ("warn", {}, lambda c: subjects(c) == ["Other"]
     and [w["kind"] for w in c.warnings()] == ["custom_rule"]),
    ("send_to_record", {"record": {"kind": "candidate", "email": "cathy@candidates.example"}},
     lambda c: {(n["subject"], n["record_email"]) for n in c.notes()} == {
         ("Interview Tuesday", "cathy@candidates.example"), ("Other", CAROL)}),
])
def test_custom_rule_actions_in_a_real_import(consultant, crm, tmp_path, action, extra, check):
    set_rules(consultant, tmp_path, custom_rules=[{**CUSTOM, "action": action, **extra}])
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Interview Tuesday",
                                              text="x"))
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Other", text="x"))
    consultant.import_now()
    assert check(consultant), (consultant.notes(), consultant.warnings(), ledger())


def test_custom_drop_attachment_in_a_real_import(consultant, crm, tmp_path):
    set_rules(consultant, tmp_path, custom_rules=[{
        "name": "No invites", "action": "drop_attachment",
        "conditions": [{"field": "attachment_name", "op": "regex", "value": r"\.ics$"}]}])
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Invite", text="x",
                                              attachments=[("invite.ics", "text/calendar", b"BEGIN:VCALENDAR"),
                                                           ("cv.pdf", "application/pdf", minimal_pdf())]))
    consultant.import_now()
    [note] = consultant.notes()
    assert [d["filename"] for d in note["documents"]] == ["cv.pdf"]
    entry = db.session.scalar(select(ImportedMessage))
    assert entry.details["dropped"] == [{"filename": "invite.ics", "reason": "custom", "rule": "custom: No invites"}]


def test_a_new_version_applies_to_the_next_import_and_names_itself(consultant, crm, tmp_path):
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Before", text="x",
                                              attachments=[("a.png", "image/png", tiny_png())]))
    consultant.import_now()
    set_rules(consultant, tmp_path, images={"mode": "keep"})
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="After", text="x",
                                              attachments=[("a.png", "image/png", tiny_png())]))
    consultant.import_now()
    documents = {n["subject"]: [d["filename"] for d in n["documents"]] for n in consultant.notes()}
    assert documents == {"Before": [], "After": ["a.png"]}
    versions = {m.subject: m.ruleset_version for m in db.session.scalars(select(ImportedMessage))}
    assert versions == {"Before": None, "After": 1}


def test_a_running_worker_picks_up_a_new_version_without_restart(consultant, crm, tmp_path):
    from rolsync import jobs, resources
    from rolsync.models import MailAccount

    env = {**os.environ, **consultant.app.config["TEST_ENV"], "ROLSYNC_POLL_INTERVAL_SECONDS": "1",
           "ROLSYNC_SCHEDULE_TICK_SECONDS": "1"}
    worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import time

        account_id = db.session.scalar(select(MailAccount.id))
        consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="First", text="x",
                                                  attachments=[("a.png", "image/png", tiny_png())]))
        jobs.enqueue_import(resources.get().queue, account_id)

        def wait_for(subject):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                found = [n for n in consultant.notes() if n["subject"] == subject]
                if found:
                    return found[0]
                time.sleep(0.3)
            raise AssertionError(f"no note {subject}")

        assert wait_for("First")["documents"] == []
        set_rules(consultant, tmp_path, images={"mode": "keep"})
        consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Second", text="x",
                                                  attachments=[("a.png", "image/png", tiny_png())]))
        assert [d["filename"] for d in wait_for("Second")["documents"]] == ["a.png"]
    finally:
        import signal

        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
