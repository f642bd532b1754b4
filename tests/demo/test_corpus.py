"""The demo's generated mailbox and sample CRM: deterministic, real files, every kind of mail the import meets."""
from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

from sqlalchemy import func, select

from devkit import sample_crm as sample
from devkit import sample_files as files
from devkit import sample_mail as corpus
from rolsync.extensions import db
from rolsync.mail.parse import parse_message
from rolsync.models import Candidate, Company, Contact

END = datetime(2025, 6, 2, 9, 0, tzinfo=timezone.utc)


def _pdf_is_valid(data: bytes) -> bool:
    """The header, the trailer, and every xref offset pointing at its object."""
    if not data.startswith(b"%PDF-1.") or not data.rstrip().endswith(b"%%EOF"):
        return False
    xref = int(re.search(rb"startxref\n(\d+)\n", data).group(1))
    table = data[xref:].split(b"trailer")[0].splitlines()[3:]
    return all(data[int(line[:10]):].startswith(f"{n} 0 obj".encode()) for n, line in enumerate(table, start=1))


def test_the_same_seed_gives_the_same_mailbox_byte_for_byte():
    first = corpus.build_mailbox(END)
    again = corpus.build_mailbox(END)
    assert [m.raw for m in first] == [m.raw for m in again]
    assert [m.raw for m in corpus.build_mailbox(END, seed=9)] != [m.raw for m in first]


def test_a_few_hundred_messages_over_six_months_oldest_first():
    messages = corpus.build_mailbox(END)
    assert sum(m.folder == corpus.INBOX for m in messages) == corpus.INBOX_MESSAGES
    assert sum(m.folder == corpus.SENT for m in messages) == corpus.SENT_MESSAGES
    dates = [m.date for m in messages]
    assert dates == sorted(dates)
    assert END - timedelta(days=corpus.DAYS + 3) < dates[0] and dates[-1] < END
    assert dates[-1] - dates[0] > timedelta(days=150)


def test_attachments_are_real_pdf_word_and_png_files():
    kinds = set()
    for message in corpus.build_mailbox(END):
        parsed = parse_message(message.raw)
        assert parsed.defects == []
        for attachment in parsed.attachments:
            kinds.add(attachment.content_type)
            if attachment.content_type == files.PDF_TYPE:
                assert _pdf_is_valid(attachment.data), attachment.filename
            elif attachment.content_type == files.DOCX_TYPE:
                archive = zipfile.ZipFile(io.BytesIO(attachment.data))
                assert archive.testzip() is None
                ElementTree.fromstring(archive.read("word/document.xml"))
            else:
                assert attachment.content_type == files.PNG_TYPE and attachment.inline
                assert attachment.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert kinds == {files.PDF_TYPE, files.DOCX_TYPE, files.PNG_TYPE}


def test_the_newest_mail_holds_every_kind_the_import_meets():
    """The first import reads the newest 100 of each folder: each case must be among them."""
    messages = corpus.build_mailbox(END)
    inbox = [parse_message(m.raw) for m in messages if m.folder == corpus.INBOX][-100:]
    sent = [parse_message(m.raw) for m in messages if m.folder == corpus.SENT][-100:]
    candidates = {c.email for c in sample.CANDIDATES}
    contacts = {c.email for c in sample.CONTACTS}
    own = f"@{sample.AGENCY_DOMAIN}"

    def has_cv(m):
        return any(a.content_type in (files.PDF_TYPE, files.DOCX_TYPE) for a in m.attachments)

    assert any(m.from_addr in candidates and has_cv(m) for m in inbox)
    assert any(m.from_addr in contacts and any(a.inline for a in m.attachments) for m in inbox)
    assert any(m.from_addr == sample.SHARED_ADDRESS for m in inbox)
    assert any(m.from_addr.endswith(own) for m in inbox)
    assert any(m.from_addr == sample.JOB_BOARD.email and m.reply_to[0] in candidates and has_cv(m) for m in inbox)
    assert any("list-unsubscribe" in m.headers for m in inbox)
    assert any(m.headers.get("auto-submitted") == "auto-replied" for m in inbox)
    assert any(m.from_addr in {s.email for s in sample.STRANGERS} for m in inbox)
    assert any(set(m.to) & contacts and has_cv(m) for m in sent)
    assert any(sample.SHARED_ADDRESS in m.to for m in sent)
    assert any(m.cc and m.cc[0].endswith(own) for m in sent)
    assert all(m.date <= END for m in inbox + sent)


def test_the_sample_crm_loads_through_flask_crm_load(sqlite_app, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text(sample.csv_text(), encoding="utf-8")
    runner = sqlite_app.test_cli_runner()
    result = runner.invoke(args=["crm", "load", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Loaded {len(sample.CONTACTS) + len(sample.CANDIDATES)} new record(s)" in result.output
    assert "Loaded 0 new record(s)" in runner.invoke(args=["crm", "load", str(path)]).output


def test_loading_the_sample_crm_relates_group_companies(sqlite_app):
    from rolsync import resources

    added = sample.load(db.session, resources.get().documents)
    db.session.commit()
    assert added == len(sample.CONTACTS) + len(sample.CANDIDATES)
    assert db.session.scalar(select(func.count(Contact.id))) == len(sample.CONTACTS)
    assert db.session.scalar(select(func.count(Candidate.id))) == len(sample.CANDIDATES)
    brightwave = db.session.scalar(select(Company).where(Company.name == "Brightwave Energy"))
    assert [c.name for c in brightwave.related] == ["Brightwave Grid Services"]
    shared = db.session.scalars(select(Contact).where(Contact.emails.any(address=sample.SHARED_ADDRESS))).all()
    assert sorted(c.name for c in shared) == ["Priya Nair", "Tom Becker"]
