"""The import saves a fetch batch per transaction: a bad message fails alone, a crash keeps nothing of the batch."""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import rolsync.mail.parse.attachments as attachments
from rolsync import importer, notes, services
from rolsync.extensions import db
from rolsync.models import FolderState, ImportedMessage, Note
from tests.mail.builders import build_message, minimal_pdf

CAROL = "carol@client.example"


def _mail(consultant, subjects: list[str]) -> None:
    consultant.deliver_many("INBOX", [
        build_message(from_=CAROL, to=consultant.email, subject=subject, text=f"About {subject}",
                      attachments=[("cv.pdf", "application/pdf", minimal_pdf(subject))])
        for subject in subjects])


def test_a_message_that_cannot_be_saved_fails_alone(consultant, crm, monkeypatch):
    _mail(consultant, ["One", "Two", "Poison", "Four", "Five"])
    add = notes.NoteWriter.add

    def add_or_fail(self, parsed, **kwargs):
        if parsed.subject == "Poison":
            raise ValueError("cannot save this one")
        return add(self, parsed, **kwargs)

    monkeypatch.setattr(notes.NoteWriter, "add", add_or_fail)
    summary = consultant.import_now()
    assert (summary["imported"], summary["failed"]) == (4, 1)
    assert sorted(n["subject"] for n in consultant.notes()) == ["Five", "Four", "One", "Two"]
    assert [w["kind"] for w in consultant.warnings()] == ["import_failed"]
    assert consultant.import_now()["imported"] == 0


def test_a_crash_mid_batch_keeps_nothing_of_it_and_the_next_run_imports_it_once(consultant, crm, monkeypatch):
    _mail(consultant, [f"Message {i}" for i in range(6)])
    ledger_row = importer.AccountImporter._ledger_row

    def crash_on_the_fourth(self, message, state):
        if message.parsed.subject == "Message 3":
            # As SQLAlchemy reports a lost connection: transient, so the run stops rather than splitting.
            raise OperationalError("INSERT", {}, Exception("the database went away"), connection_invalidated=True)
        return ledger_row(self, message, state)

    monkeypatch.setattr(importer.AccountImporter, "_ledger_row", crash_on_the_fourth)
    assert consultant.cli("mail", "import", consultant.email).exit_code != 0
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0
    assert db.session.scalar(select(func.count()).select_from(ImportedMessage)) == 0
    assert db.session.scalar(select(FolderState.last_uid).where(FolderState.role == "inbox")) == 0

    monkeypatch.setattr(importer.AccountImporter, "_ledger_row", ledger_row)
    assert consultant.import_now()["imported"] == 6
    subjects = [n["subject"] for n in consultant.notes()]
    assert sorted(subjects) == [f"Message {i}" for i in range(6)]


def test_a_big_folder_with_spooled_attachments_imports_every_file_whole(consultant, crm, monkeypatch, tmp_path):
    monkeypatch.setattr(attachments, "SPOOL_MIN_BYTES", 1000)  # every CV goes through a spool file too
    rules = json.loads(consultant.cli("rules", "export").output)
    rules["first_run"] = {"inbox": 1000, "sent": 1000}
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    assert consultant.cli("rules", "import", str(tmp_path / "rules.json")).exit_code == 0
    cvs = {f"Message {i}": minimal_pdf(f"CV {i}") + bytes(2000 + i) for i in range(30)}
    consultant.deliver_many("INBOX", [build_message(from_=CAROL, to=consultant.email, subject=subject, text="x",
                                                    attachments=[("cv.pdf", "application/pdf", cv)])
                                      for subject, cv in cvs.items()])
    assert consultant.import_now()["imported"] == 30
    found = {n["subject"]: n["documents"] for n in consultant.notes()}
    assert found == {subject: [{"filename": "cv.pdf", "content_type": "application/pdf", "size": len(cv),
                                "sha256": hashlib.sha256(cv).hexdigest()}] for subject, cv in cvs.items()}
    root = services.get().documents.root
    assert not [p for p in root.rglob(".tmp*")], "no spool file is left behind"
    assert all(services.get().documents.read(hashlib.sha256(cv).hexdigest()) == cv for cv in cvs.values())
