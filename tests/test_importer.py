"""CONTRACT §1 against the real Dovecot, through `flask mail import`, on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import delete, select

from devkit.builders import build_message, minimal_pdf, tiny_png
from rolsync.extensions import db
from rolsync.models import FolderState, ImportedMessage, MailAccount
from tests.conftest import load_crm, make_consultant


def _notes_for(notes: list[dict], email: str) -> list[dict]:
    return [n for n in notes if n["record_email"] == email]


def _set_rules(consultant, tmp_path, **changes) -> None:
    rules = json.loads(consultant.cli("rules", "export").output)
    for section, values in changes.items():
        rules[section].update(values)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    result = consultant.cli("rules", "import", str(path))
    assert result.exit_code == 0, result.output


# -- 1. counterpart addresses -------------------------------------------------------


def test_inbox_message_from_a_contact_becomes_a_note(consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_="Carol Client <carol@client.example>", to=consultant.email,
        subject="Re: Senior Java role", text="Hi,\nHappy to interview Tuesday.\nCarol",
        message_id="<role-1@client.example>",
    ))

    summary = consultant.import_now()

    assert summary["imported"] == 1
    [note] = consultant.notes()
    assert note["record_kind"] == "contact"
    assert note["record_email"] == "carol@client.example"
    assert note["direction"] == "received"
    assert note["subject"] == "Re: Senior Java role"
    assert note["message_id"] == "role-1@client.example"
    assert "Happy to interview Tuesday." in note["body"]
    assert note["user"] == consultant.email
    assert note["folder"] == "INBOX"


def test_reply_to_names_the_candidate_when_a_job_board_relays(consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_="Job Board <no-reply@jobboard.example>", reply_to="Cathy <cathy@candidates.example>",
        to=consultant.email, subject="New application: Data Analyst", text="Cathy applied.",
    ))
    consultant.import_now()
    [note] = consultant.notes()
    assert note["record_kind"] == "candidate"
    assert note["record_email"] == "cathy@candidates.example"


def test_reply_to_is_ignored_when_from_matches_a_record(consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_="carol@client.example", reply_to="cathy@candidates.example",
        to=consultant.email, subject="Forwarding a CV", text="See attached.",
    ))
    consultant.import_now()
    [note] = consultant.notes()
    assert note["record_email"] == "carol@client.example"


def test_sent_mail_makes_a_note_for_every_to_cc_and_bcc_recipient(consultant, crm):
    consultant.deliver("Sent", build_message(
        from_=consultant.email, to="Carol <carol@client.example>", cc="cathy@candidates.example",
        headers={"Bcc": "both@people.example"}, subject="Interview confirmed", text="Tuesday 10am.",
    ))
    summary = consultant.import_now()
    notes = consultant.notes()
    assert summary["imported"] == 1
    assert sorted((n["record_kind"], n["record_email"]) for n in notes) == [
        ("candidate", "cathy@candidates.example"),
        ("contact", "both@people.example"),
        ("contact", "carol@client.example"),
    ]
    assert {n["direction"] for n in notes} == {"sent"}


def test_addresses_compare_case_insensitively_without_display_names(consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_='"Client, Carol" <  CAROL@Client.EXAMPLE >', to=consultant.email,
        subject="Shouting address", text="Hello",
    ))
    consultant.import_now()
    assert [n["record_email"] for n in consultant.notes()] == ["carol@client.example"]


# -- 2. own domain -------------------------------------------------------------------


def test_mail_from_the_own_domain_is_skipped(consultant, crm, app, tmp_path):
    load_crm(app, [("contact", "A Colleague", f"boss@{consultant.domain}", "Us")], tmp_path)
    consultant.deliver("INBOX", build_message(
        from_=f"Boss <Boss@{consultant.domain.upper()}>", to=consultant.email, subject="Team lunch",
        text="Friday?",
    ))
    summary = consultant.import_now()
    assert summary["imported"] == 0
    assert summary["skipped"] == 1
    assert consultant.notes() == []
    ledger = db.session.scalars(select(ImportedMessage)).all()
    assert [(m.outcome, m.reason, m.rule) for m in ledger] == [("skipped", "own_domain", "own_domain")]


def test_own_domain_recipients_are_dropped_from_sent_mail(consultant, crm, app, tmp_path):
    load_crm(app, [("contact", "A Colleague", f"boss@{consultant.domain}", "Us")], tmp_path)
    consultant.deliver("Sent", build_message(
        from_=consultant.email, to=f"boss@{consultant.domain}", cc="carol@client.example",
        subject="Carol's feedback", text="FYI",
    ))
    consultant.import_now()
    assert [n["record_email"] for n in consultant.notes()] == ["carol@client.example"]


def test_own_domain_from_an_admin_list(consultant, crm, tmp_path):
    _set_rules(consultant, tmp_path, own_domain={"source": "list", "domains": ["client.example"]})
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Now internal", text="x"))
    summary = consultant.import_now()
    assert summary["skipped"] == 1 and consultant.notes() == []


def test_own_domain_rule_switched_off_imports_colleagues(consultant, app, tmp_path):
    load_crm(app, [("contact", "A Colleague", f"boss@{consultant.domain}", "Us")], tmp_path)
    _set_rules(consultant, tmp_path, own_domain={"enabled": False})
    consultant.deliver("INBOX", build_message(from_=f"boss@{consultant.domain}", to=consultant.email,
                                              subject="Internal", text="x"))
    consultant.import_now()
    assert [n["record_email"] for n in consultant.notes()] == [f"boss@{consultant.domain}"]


# -- 3. matching ----------------------------------------------------------------------


def test_a_contact_wins_over_a_candidate_with_the_same_address(consultant, crm):
    consultant.deliver("INBOX", build_message(from_="both@people.example", to=consultant.email,
                                              subject="Who am I", text="x"))
    consultant.import_now()
    [note] = consultant.notes()
    assert (note["record_kind"], note["record_email"]) == ("contact", "both@people.example")


def test_a_candidate_gets_the_note_when_no_contact_has_the_address(consultant, crm):
    consultant.deliver("INBOX", build_message(from_="cathy@candidates.example", to=consultant.email,
                                              subject="My CV", text="Attached"))
    consultant.import_now()
    [note] = consultant.notes()
    assert note["record_kind"] == "candidate"


@pytest.mark.parametrize("address,kind,names", [
    ("shared@client.example", "contact", {"Dan Dup", "Dana Dup"}),
    ("pair@candidates.example", "candidate", {"Pat Pair", "Pam Pair"}),
])
def test_an_address_of_two_records_is_not_imported_and_warns(consultant, crm, address, kind, names):
    consultant.deliver("INBOX", build_message(from_=address, to=consultant.email,
                                              subject="Which one of us?", text="x",
                                              message_id="<dup-1@example>"))
    summary = consultant.import_now()
    assert summary["imported"] == 0 and summary["warnings"] == 1
    assert consultant.notes() == []
    [warning] = consultant.warnings()
    assert warning["kind"] == "duplicate_address"
    assert warning["address"] == address
    assert warning["subject"] == "Which one of us?"
    assert warning["user"] == consultant.email
    assert warning["status"] == "open"
    assert warning["message_id"] == "dup-1@example"
    assert {r["name"] for r in warning["records"]} == names
    assert {r["kind"] for r in warning["records"]} == {kind}


def test_an_unknown_address_is_skipped_without_a_warning(consultant, crm):
    consultant.deliver("INBOX", build_message(from_="stranger@nowhere.example", to=consultant.email,
                                              subject="Cold call", text="x"))
    summary = consultant.import_now()
    assert (summary["imported"], summary["skipped"], summary["warnings"]) == (0, 1, 0)
    assert consultant.warnings() == []
    [entry] = db.session.scalars(select(ImportedMessage)).all()
    assert entry.reason == "no_match"


def test_an_unknown_address_warns_when_the_rules_say_so(consultant, crm, tmp_path):
    _set_rules(consultant, tmp_path, no_match={"action": "warn"})
    consultant.deliver("INBOX", build_message(from_="stranger@nowhere.example", to=consultant.email,
                                              subject="Cold call", text="x"))
    consultant.import_now()
    [warning] = consultant.warnings()
    assert (warning["kind"], warning["address"]) == ("no_match", "stranger@nowhere.example")


# -- 4. the note ---------------------------------------------------------------------


def test_an_html_only_message_is_saved_as_readable_text(consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_="carol@client.example", to=consultant.email, subject="HTML only", text=None,
        html="<html><head><style>p{color:red}</style></head><body><p>Dear <b>Jo</b>,</p>"
             "<p>The <a href='https://client.example/job'>job spec</a> is here.</p></body></html>",
    ))
    consultant.import_now()
    [note] = consultant.notes()
    assert "Dear **Jo**" in note["body"] or "Dear Jo" in note["body"]
    assert "job spec" in note["body"]
    assert "<p>" not in note["body"] and "color:red" not in note["body"]


# -- 5. attachments ------------------------------------------------------------------


def test_attachments_become_documents_and_images_are_left_out(consultant, crm):
    pdf = minimal_pdf()
    consultant.deliver("INBOX", build_message(
        from_="cathy@candidates.example", to=consultant.email, subject="My CV",
        text="CV attached", attachments=[
            ("Lebenslauf Jürgen.pdf", "application/pdf", pdf),
            ("logo.png", "image/png", tiny_png()),
            ("signature.bin", "application/octet-stream", tiny_png()),  # an image by its bytes
        ],
    ))
    consultant.import_now()
    [note] = consultant.notes()
    assert note["documents"] == [{
        "filename": "Lebenslauf Jürgen.pdf",
        "content_type": "application/pdf",
        "size": len(pdf),
        "sha256": hashlib.sha256(pdf).hexdigest(),
    }]


def test_images_are_kept_when_the_rules_keep_them(consultant, crm, tmp_path):
    _set_rules(consultant, tmp_path, images={"mode": "keep"})
    consultant.deliver("INBOX", build_message(
        from_="cathy@candidates.example", to=consultant.email, subject="Photo", text="x",
        attachments=[("me.png", "image/png", tiny_png())],
    ))
    consultant.import_now()
    [note] = consultant.notes()
    assert [d["filename"] for d in note["documents"]] == ["me.png"]


def test_every_record_that_got_the_note_gets_the_documents(consultant, crm, app):
    pdf = minimal_pdf()
    consultant.deliver("Sent", build_message(
        from_=consultant.email, to="carol@client.example", cc="cathy@candidates.example",
        subject="CV for your role", text="Please find the CV", attachments=[("cv.pdf", "application/pdf", pdf)],
    ))
    consultant.import_now()
    notes = consultant.notes()
    assert len(notes) == 2
    assert all([d["sha256"] for d in n["documents"]] == [hashlib.sha256(pdf).hexdigest()] for n in notes)
    from rolsync.models import StoredFile

    assert db.session.scalar(select(db.func.count()).select_from(StoredFile)) == 1


# -- 6. at most once -------------------------------------------------------------------


def test_importing_twice_adds_nothing(consultant, crm):
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Once", text="x"))
    assert consultant.import_now()["imported"] == 1
    second = consultant.import_now()
    assert second["imported"] == 0
    assert len(consultant.notes()) == 1


def test_losing_the_folder_state_adds_nothing(consultant, crm):
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Once", text="x"))
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="No Message-ID", text="y", message_id=None))
    consultant.import_now()
    db.session.execute(delete(FolderState))
    db.session.commit()
    consultant.import_now()
    assert sorted(n["subject"] for n in consultant.notes()) == ["No Message-ID", "Once"]


def test_a_uidvalidity_change_rescans_without_duplicates(consultant, crm):
    messages = [build_message(from_=consultant.email, to="carol@client.example", subject=f"M{i}", text="x")
                for i in range(3)]
    consultant.deliver_many("Sent", messages)
    consultant.import_now()
    before = db.session.scalar(select(FolderState.uidvalidity).where(FolderState.role == "sent"))
    # Give the folder a new UIDVALIDITY, as a server migration does, and add one new message.
    consultant.dovecot.delete_folder(consultant.username, consultant.password, "Sent")
    consultant.dovecot.create_folder(consultant.username, consultant.password, "Sent")
    consultant.deliver_many("Sent", messages + [build_message(
        from_=consultant.email, to="carol@client.example", subject="M-new", text="x")])
    summary = consultant.import_now()
    after = db.session.scalar(select(FolderState.uidvalidity).where(FolderState.role == "sent"))
    assert after != before
    assert summary["imported"] == 1
    assert sorted(n["subject"] for n in consultant.notes()) == ["M-new", "M0", "M1", "M2"]


def test_without_a_sent_folder_the_inbox_still_imports_and_the_user_is_told(app, dovecot, tmp_path, crm):
    consultant = make_consultant(app, dovecot, tmp_path, sent_folder=None)
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Inbox only", text="x"))
    summary = consultant.import_now()
    assert summary["imported"] == 1
    assert summary["folders"]["sent"]["name"] is None
    assert [w["kind"] for w in consultant.warnings()] == ["no_sent_folder"]
    consultant.import_now()
    assert len(consultant.warnings()) == 1, "one open warning, not one per run"


def test_a_sent_folder_without_special_use_is_found_by_name(app, dovecot, tmp_path, crm):
    consultant = make_consultant(app, dovecot, tmp_path, sent_folder="Sent Items")
    consultant.deliver("Sent Items", build_message(from_=consultant.email, to="carol@client.example",
                                                   subject="From Sent Items", text="x"))
    summary = consultant.import_now()
    assert summary["folders"]["sent"]["name"] == "Sent Items"
    [note] = consultant.notes()
    assert (note["direction"], note["folder"]) == ("sent", "Sent Items")


def test_a_message_in_inbox_and_sent_is_imported_once(consultant, crm):
    raw = build_message(from_=consultant.email, to="carol@client.example", subject="Note to self and Carol",
                        text="x", message_id="<self-1@acme>")
    consultant.deliver("INBOX", raw)
    consultant.deliver("Sent", raw)
    consultant.import_now()
    assert len(consultant.notes()) == 1


def test_mail_two_consultants_received_shows_once_on_the_record(app, dovecot, tmp_path, crm):
    first = make_consultant(app, dovecot, tmp_path)
    second = make_consultant(app, dovecot, tmp_path)
    raw = build_message(from_="carol@client.example", to=f"{first.email}, {second.email}",
                        subject="To both of you", text="x", message_id="<both@client.example>")
    first.deliver("INBOX", raw)
    second.deliver("INBOX", raw)
    assert first.import_now()["imported"] == 1
    assert second.import_now()["imported"] == 1
    notes = first.notes()
    assert len(notes) == 1 and notes[0]["record_email"] == "carol@client.example"


def test_the_import_never_marks_mail_as_read(consultant, crm):
    uid = consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                                    subject="Unread", text="x"))
    consultant.import_now()
    flags = consultant.dovecot.flags(consultant.username, consultant.password, "INBOX", uid)
    assert "\\Seen" not in flags


# -- 7. first run ------------------------------------------------------------------------


def test_the_first_run_takes_the_newest_100_and_never_the_older_ones(consultant, app, tmp_path):
    load_crm(app, [("contact", "Carol Client", "carol@client.example", "Client Ltd")], tmp_path)
    consultant.deliver_many("INBOX", [
        build_message(from_="carol@client.example", to=consultant.email, subject=f"In {i:03}", text="x")
        for i in range(104)])
    consultant.deliver_many("Sent", [
        build_message(from_=consultant.email, to="carol@client.example", subject=f"Out {i:03}", text="x")
        for i in range(102)])
    summary = consultant.import_now()
    assert summary["folders"]["inbox"]["imported"] == 100
    assert summary["folders"]["sent"]["imported"] == 100
    subjects = {n["subject"] for n in consultant.notes()}
    assert "In 003" not in subjects and "In 004" in subjects and "In 103" in subjects
    assert "Out 001" not in subjects and "Out 002" in subjects

    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="In new", text="x"))
    later = consultant.import_now()
    assert later["imported"] == 1
    assert len(consultant.notes()) == 201


def test_the_first_run_cap_is_tunable(consultant, app, tmp_path):
    load_crm(app, [("contact", "Carol Client", "carol@client.example", "Client Ltd")], tmp_path)
    _set_rules(consultant, tmp_path, first_run={"inbox": 2, "sent": 0})
    consultant.deliver_many("INBOX", [
        build_message(from_="carol@client.example", to=consultant.email, subject=f"In {i}", text="x")
        for i in range(5)])
    consultant.deliver("Sent", build_message(from_=consultant.email, to="carol@client.example",
                                             subject="Old sent", text="x"))
    consultant.import_now()
    assert sorted(n["subject"] for n in consultant.notes()) == ["In 3", "In 4"]
    consultant.deliver("Sent", build_message(from_=consultant.email, to="carol@client.example",
                                             subject="New sent", text="x"))
    consultant.import_now()
    assert sorted(n["subject"] for n in consultant.notes()) == ["In 3", "In 4", "New sent"]


# -- secrets ---------------------------------------------------------------------------------


def test_the_mailbox_password_is_not_stored_in_clear(consultant):
    account = db.session.scalar(select(MailAccount))
    assert consultant.password not in account.password_encrypted
    uri = consultant.app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        db.session.commit()
        with open(uri.removeprefix("sqlite:///"), "rb") as fh:
            assert consultant.password.encode() not in fh.read()
