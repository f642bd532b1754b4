"""Retention: notes and documents older than the limit go (by the nightly job), the rest stays, with an audit."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from rolsync import jobs, privacy, retention
from rolsync.extensions import db
from rolsync.models import Document, Erasure, FolderState, ImportedMessage, Note, StoredFile
from tests.mail.builders import build_message, minimal_pdf

OLD_CV = minimal_pdf("An old curriculum")
NEW_CV = minimal_pdf("A recent curriculum")


def test_cutoff_counts_calendar_months():
    now = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
    assert retention.cutoff(now, 1) == datetime(2026, 2, 28, 12, tzinfo=timezone.utc)
    assert retention.cutoff(now, 15) == datetime(2024, 12, 31, 12, tzinfo=timezone.utc)


def test_the_nightly_job_deletes_what_is_older_than_the_limit(app, consultant, crm, monkeypatch):
    monkeypatch.setattr(jobs, "_app", app)  # the job runs in this test's app, as in a worker's
    consultant.deliver("INBOX", build_message(
        from_="carol@client.example", to=consultant.email, subject="Old shortlist", text="From long ago.",
        date="Mon, 03 Jun 2024 10:00:00 +0200", attachments=[("old.pdf", "application/pdf", OLD_CV)]))
    consultant.deliver("INBOX", build_message(
        from_="carol@client.example", to=consultant.email, subject="New shortlist", text="From this month.",
        date="Mon, 02 Nov 2026 10:00:00 +0100", attachments=[("new.pdf", "application/pdf", NEW_CV)]))
    consultant.import_now()
    assert jobs.apply_retention_job() is None  # no limit: everything is kept
    privacy.save_retention(db.session, 12, by="admin@agency.example")
    db.session.commit()

    counts = jobs.apply_retention_job()

    assert counts == {"records": 0, "notes": 1, "documents": 1, "files": 1, "ledger_entries": 1, "warnings": 0,
                      "intake_items": 0, "held_messages": 0}
    db.session.expire_all()
    assert db.session.scalars(select(Note.subject)).all() == ["New shortlist"]
    assert db.session.scalars(select(Document.filename)).all() == ["new.pdf"]
    assert db.session.scalar(select(func.count(StoredFile.sha256))) == 1
    files = [p for p in Path(app.config["DOCUMENT_ROOT"]).rglob("*") if p.is_file()]
    assert len(files) == 1 and b"An old curriculum" not in files[0].read_bytes()
    subjects = sorted(db.session.scalars(select(ImportedMessage.subject)).all())
    assert subjects == ["", "New shortlist"]  # the old message stays handled, without what it said
    [audit] = db.session.scalars(select(Erasure)).all()
    assert audit.erased_by == "retention: older than 12 months"
    # Nothing left to do the next night, and a re-read brings nothing back.
    assert jobs.apply_retention_job() is None
    db.session.execute(FolderState.__table__.delete())
    db.session.commit()
    assert consultant.import_now()["imported"] == 0
