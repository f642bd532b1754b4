"""Privacy per mailbox against the test Dovecot: capture levels, private keyword and folder, removed notes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from rolsync import privacy, services
from rolsync.extensions import db
from rolsync.models import (
    CaptureLevel,
    Document,
    FolderState,
    ImportedMessage,
    ImportWarning,
    MailAccount,
    Note,
    StoredFile,
    User,
)
from tests.mail.builders import build_message, minimal_pdf

CV = minimal_pdf("Capture level curriculum")


def _account(consultant) -> MailAccount:
    db.session.expire_all()
    return db.session.scalar(select(MailAccount).join(User).where(User.email == consultant.email))


def _set(consultant, **changes) -> None:
    account = _account(consultant)
    current = {"visibility": account.visibility, "capture_level": privacy.capture_level(db.session, account).value,
               "private_keyword": account.private_keyword or "", "private_folder": account.private_folder or ""}
    privacy.save_mailbox_privacy(db.session, account, privacy.MailboxPrivacy(**{**current, **changes}))
    db.session.commit()


def _store_files(app) -> list[Path]:
    root = Path(app.config["DOCUMENT_ROOT"])
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")] if root.exists() else []


def _deliver_application(consultant) -> None:
    consultant.deliver("INBOX", build_message(
        from_="Carol Client <carol@client.example>", to=consultant.email, subject="Shortlist for the Java role",
        text="Here is the shortlist we discussed.", attachments=[("cv.pdf", "application/pdf", CV)],
        message_id="<shortlist-1@client.example>"))


@pytest.mark.parametrize("level", list(CaptureLevel))
def test_each_capture_level_stores_exactly_what_it_says(app, consultant, crm, level):
    _set(consultant, capture_level=level.value)
    _deliver_application(consultant)
    # Two records share this address: a warning, which at full capture keeps the raw message.
    consultant.deliver("INBOX", build_message(from_="shared@client.example", to=consultant.email,
                                              subject="Which Dan?", text="Guess who."))

    summary = consultant.import_now()

    assert summary["imported"] == 1 and summary["warnings"] == 1
    [note] = db.session.scalars(select(Note)).all()
    assert note.capture_level == level.value
    assert note.from_addr == "carol@client.example" and note.to_addrs == consultant.email
    assert note.sent_at is not None
    [ledger] = db.session.scalars(select(ImportedMessage).where(ImportedMessage.outcome == "imported")).all()
    [warning] = db.session.scalars(select(ImportWarning)).all()
    documents = db.session.scalars(select(Document)).all()
    stored = db.session.scalars(select(StoredFile.sha256)).all()
    files = _store_files(app)
    if level is CaptureLevel.FULL:
        assert note.subject == "Shortlist for the Java role"
        assert "shortlist we discussed" in note.body
        assert [d.sha256 for d in documents] == [hashlib.sha256(CV).hexdigest()]
        assert warning.raw_sha256 is not None and warning.snippet
        assert len(files) == 2 and len(stored) == 2  # the CV and the warning's raw message
    else:
        assert note.body == "" and documents == [] and stored == [] and files == []
        assert warning.raw_sha256 is None and warning.snippet == ""
        expected = "Shortlist for the Java role" if level is CaptureLevel.SUBJECT else ""
        assert note.subject == expected and ledger.subject == expected
        assert warning.subject == ("Which Dan?" if level is CaptureLevel.SUBJECT else "")
    exported = consultant.notes()
    assert exported[0]["capture_level"] == level.value


def test_a_locked_default_is_a_ceiling(app, consultant, crm):
    _set(consultant, capture_level="full")
    privacy.save_policy(db.session, "subject", True, by="admin@agency.example")
    db.session.commit()

    with pytest.raises(privacy.PrivacyError, match="allows no more than"):
        _set(consultant, capture_level="full")
    db.session.rollback()
    _set(consultant, capture_level="participants")  # less is always allowed
    assert privacy.allowed_levels(db.session) == [CaptureLevel.SUBJECT, CaptureLevel.PARTICIPANTS]
    account = _account(consultant)
    account.capture_level = "full"  # chosen before the admin locked: the ceiling wins
    db.session.commit()
    _deliver_application(consultant)
    consultant.import_now()
    [note] = db.session.scalars(select(Note)).all()
    assert note.capture_level == "subject" and note.body == ""


def test_mail_with_the_private_keyword_is_never_imported(app, consultant, crm):
    _set(consultant, private_keyword="Private")
    consultant.deliver("INBOX", build_message(
        from_="carol@client.example", to=consultant.email, subject="About my divorce",
        text="Between us.", message_id="<personal-1@client.example>"), flags=["private"])
    _deliver_application(consultant)

    summary = consultant.import_now()

    assert summary["imported"] == 1 and summary["skipped"] == 1
    assert [n["subject"] for n in consultant.notes()] == ["Shortlist for the Java role"]
    [kept_out] = db.session.scalars(select(ImportedMessage).where(ImportedMessage.reason == "private")).all()
    assert kept_out.outcome == "skipped"
    assert kept_out.subject == "" and kept_out.from_addr == "" and kept_out.to_addrs == ""
    assert kept_out.message_id is None


def test_the_private_folder_is_never_read(app, consultant, crm):
    _set(consultant, private_folder="Sent")
    consultant.deliver("Sent", build_message(from_=consultant.email, to="carol@client.example",
                                             subject="Sent privately", text="Not for the CRM."))
    _deliver_application(consultant)

    summary = consultant.import_now()

    assert summary["imported"] == 1
    assert summary["folders"]["sent"]["imported"] == 0
    roles = db.session.scalars(select(FolderState.role)).all()
    assert roles == ["inbox"]  # the folder was not even opened
    assert [n["subject"] for n in consultant.notes()] == ["Shortlist for the Java role"]
    with pytest.raises(privacy.PrivacyError, match="Inbox cannot be kept out"):
        _set(consultant, private_folder="inbox")


def test_a_removed_note_does_not_come_back(app, consultant, crm):
    _deliver_application(consultant)
    consultant.import_now()
    [note] = db.session.scalars(select(Note)).all()
    user = db.session.scalar(select(User).where(User.email == consultant.email))

    privacy.remove_note(db.session, services.get().documents, user, note.id)

    assert db.session.scalar(select(func.count(Note.id))) == 0
    assert _store_files(app) == []  # the CV was only on that note
    # A later poll, and the folder read again from scratch, bring nothing back.
    consultant.import_now()
    db.session.execute(delete(FolderState))
    db.session.commit()
    again = consultant.import_now()
    assert again["imported"] == 0
    assert db.session.scalar(select(func.count(Note.id))) == 0
    [entry] = db.session.scalars(select(ImportedMessage)).all()
    assert entry.removed_at is not None


def test_only_the_owner_removes_a_note(app, consultant, crm, tmp_path):
    from tests.conftest import make_consultant

    _deliver_application(consultant)
    consultant.import_now()
    [note] = db.session.scalars(select(Note)).all()
    other = make_consultant(app, consultant.dovecot, tmp_path)
    someone_else = db.session.scalar(select(User).where(User.email == other.email))

    with pytest.raises(privacy.PrivacyError, match="your own mailbox"):
        privacy.remove_note(db.session, services.get().documents, someone_else, note.id)

    assert db.session.scalar(select(func.count(Note.id))) == 1
