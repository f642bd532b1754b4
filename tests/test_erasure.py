"""Erasing a person (`flask records erase`): nothing of them is left anywhere, and nothing brings them back."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from sqlalchemy import JSON, String, Text, cast, delete, func, select

from rolsync.extensions import db
from rolsync.models import Candidate, Erasure, FolderState, ImportedMessage, ImportWarning, SuppressedAddress
from tests.conftest import load_crm, make_consultant
from tests.mail.builders import build_message, minimal_pdf

CATHY = "cathy@candidates.example"
CV = minimal_pdf("Curriculum of Cathy 7734")
SECRETS = ["cathy@candidates.example", "My salary expectation is 91234 a year",
           "Cathy secret application subject", "Cathy Candidate"]


def _database_mentions(needle: str) -> list[str]:
    """Every text column of every table holding `needle`: what a dump of the database would show."""
    found = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, String | Text | JSON):
                continue
            count = db.session.scalar(select(func.count()).select_from(table).where(
                func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True)))
            if count:
                found.append(f"{table.name}.{column.name}")
    return found


def _files_mentioning(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.lower() in p.read_bytes().lower()]


def _sqlite_files(app) -> list[Path]:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("sqlite"):
        return []
    path = Path(url.split("///", 1)[1])
    return [p for p in (path, Path(f"{path}-wal")) if p.exists()]


def _deliver_cathys_mail(consultant) -> None:
    consultant.deliver("INBOX", build_message(
        from_="Cathy Candidate <cathy@candidates.example>", to=consultant.email,
        subject="Cathy secret application subject",
        text="Hello,\nMy salary expectation is 91234 a year\nCathy",
        attachments=[("cv.pdf", "application/pdf", CV)], message_id="<apply-1@candidates.example>"))
    consultant.deliver("Sent", build_message(
        from_=consultant.email, to="Carol Client <carol@client.example>", cc=CATHY,
        subject="Introduction", text="Carol, meet the candidate we spoke about.",
        message_id="<intro-1@acme-recruit.com>"))
    # Two candidates share this address: a warning that keeps the raw message.
    consultant.deliver("INBOX", build_message(
        from_="pair@candidates.example", to=consultant.email, subject="Pair question",
        text="Which of us is it?", message_id="<pair-1@candidates.example>"))


def test_erasing_leaves_nothing_and_nothing_brings_them_back(app, consultant, crm, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="rolsync")
    _deliver_cathys_mail(consultant)
    summary = consultant.import_now()
    assert summary["imported"] == 2 and summary["warnings"] == 1
    store = Path(app.config["DOCUMENT_ROOT"])
    assert _files_mentioning(store, b"Curriculum of Cathy 7734")

    result = consultant.cli("records", "erase", CATHY, "--yes")

    assert result.exit_code == 0, result.output
    assert "records: 1" in result.output
    assert "notes: 2" in result.output  # her application, and the introduction on her record
    assert "documents: 1" in result.output
    assert "ledger entries: 2" in result.output  # her application and the introduction she was copied on
    assert "intake items: 0" in result.output
    db.session.expire_all()
    for secret in SECRETS:
        assert _database_mentions(secret) == [], secret
        assert _files_mentioning(store, secret.encode()) == [], secret
        for path in _sqlite_files(app):
            assert secret.lower().encode() not in path.read_bytes().lower(), (secret, path)
        assert secret.lower() not in caplog.text.lower(), secret
    assert not _files_mentioning(store, b"Curriculum of Cathy 7734")
    assert not (store / hashlib.sha256(CV).hexdigest()[:2]).exists() or not list(
        store.rglob(hashlib.sha256(CV).hexdigest()))
    # Carol keeps the introduction, without Cathy's address.
    [carol_note] = consultant.notes()
    assert carol_note["record_email"] == "carol@client.example"
    assert carol_note["cc"] == "(erased)"
    # The audit entry: who and how many, nothing about her.
    [audit] = db.session.scalars(select(Erasure)).all()
    assert audit.erased_by == "flask records erase"
    assert audit.counts == {"records": 1, "notes": 2, "documents": 1, "files": 1, "ledger_entries": 2,
                            "warnings": 0, "intake_items": 0, "held_messages": 0}
    assert "cathy" not in json.dumps(audit.counts).lower()
    [suppressed] = db.session.scalars(select(SuppressedAddress.digest)).all()
    assert CATHY not in suppressed and hashlib.sha256(CATHY.encode()).hexdigest() != suppressed

    # The same mailbox read again from scratch, a new message of hers, and another consultant's copy.
    db.session.execute(delete(FolderState))
    db.session.commit()
    consultant.deliver("INBOX", build_message(
        from_=CATHY, to=consultant.email, subject="Cathy secret application subject",
        text="My salary expectation is 91234 a year", message_id="<apply-2@candidates.example>"))
    other = make_consultant(app, consultant.dovecot, tmp_path)
    _deliver_cathys_mail(other)
    load_crm(app, [("candidate", "Cathy Candidate", CATHY, "")], tmp_path)  # left out: she was erased
    again = consultant.import_now()
    other.import_now()

    assert again["imported"] == 0
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Candidate.id)).where(Candidate.name == "Cathy Candidate")) == 0
    for secret in SECRETS:
        assert _database_mentions(secret) == [], secret
        assert _files_mentioning(store, secret.encode()) == [], secret
        assert secret.lower() not in caplog.text.lower(), secret
    reasons = db.session.scalars(select(ImportedMessage.reason).where(
        ImportedMessage.message_id.in_(["apply-2@candidates.example"]))).all()
    assert reasons == []  # the ledger keeps no Message-ID of a message naming her
    assert db.session.scalar(select(func.count(ImportedMessage.id)).where(
        ImportedMessage.reason == "erased_person")) == 3  # her new message; the other's application and intro


def test_erasing_a_shared_address_removes_its_warnings_and_kept_message(app, consultant, crm):
    _deliver_cathys_mail(consultant)
    consultant.import_now()
    [warning] = db.session.scalars(select(ImportWarning)).all()
    raw = warning.raw_sha256
    store = Path(app.config["DOCUMENT_ROOT"])
    assert list(store.rglob(raw))

    result = consultant.cli("records", "erase", "pair@candidates.example", "--yes")

    assert result.exit_code == 0, result.output
    assert "records: 2" in result.output and "warnings: 1" in result.output
    db.session.expire_all()
    assert db.session.scalars(select(ImportWarning)).all() == []
    assert not list(store.rglob(raw))
    assert _database_mentions("pair@candidates.example") == []
    assert _database_mentions("Which of us is it?") == []


def test_erase_asks_first_and_no_is_no(app, consultant, crm):
    result = consultant.cli("records", "erase", CATHY, input="n\n")

    assert result.exit_code != 0
    assert "records: 1" in result.output
    assert "nothing was erased" in result.output
    assert db.session.scalar(select(func.count(Candidate.id)).where(Candidate.name == "Cathy Candidate")) == 1
    assert db.session.scalars(select(Erasure)).all() == []


def test_erase_refuses_what_is_not_an_address(app, consultant):
    result = consultant.cli("records", "erase", "not an address", "--yes")

    assert result.exit_code != 0
    assert "is not one e-mail address" in result.output


def test_a_lifted_address_loads_again(app, consultant, crm, tmp_path):
    from rolsync import erasure, services

    assert consultant.cli("records", "erase", CATHY, "--yes").exit_code == 0
    key = services.get().suppression_key
    assert erasure.is_suppressed(db.session, key, "  Cathy@Candidates.example ")
    assert erasure.lift_suppression(db.session, key, CATHY)
    db.session.commit()

    load_crm(app, [("candidate", "Cathy Candidate", CATHY, "")], tmp_path)

    assert db.session.scalar(select(func.count(Candidate.id)).where(Candidate.name == "Cathy Candidate")) == 1


def test_intake_items_are_counted_apart_and_erased(app, consultant, crm):
    from rolsync.models import User

    owner = db.session.scalar(select(User.id).where(User.email == consultant.email))
    db.session.add_all([
        ImportWarning(user_id=owner, kind="intake", address=CATHY, subject="Application: data analyst",
                      from_addr=CATHY, records=[]),
        ImportWarning(user_id=owner, kind="no_match", address=CATHY, subject="Hello again", from_addr=CATHY,
                      records=[]),
    ])
    db.session.commit()

    result = consultant.cli("records", "erase", CATHY, "--yes")

    assert result.exit_code == 0, result.output
    assert "intake items: 1" in result.output and "warnings: 1" in result.output
    db.session.expire_all()
    assert db.session.scalars(select(ImportWarning)).all() == []


def test_only_the_whole_address_is_erased(app, consultant, crm):
    from rolsync.models import User

    owner = db.session.scalar(select(User.id).where(User.email == consultant.email))
    for n, (sender, to) in enumerate([("mccathy@candidates.example", "team@client.example"),
                                      ("carol@client.example", "cathy@candidates.example.org"),
                                      ("carol@client.example", f"x@client.example, {CATHY.upper()}")]):
        db.session.add(ImportedMessage(user_id=owner, dedupe_key=f"k{n}", message_key=f"k{n}", folder="INBOX",
                                       subject=f"Subject {n}", from_addr=sender, to_addrs=to, outcome="skipped"))
    db.session.commit()

    result = consultant.cli("records", "erase", CATHY, "--yes")

    assert "ledger entries: 1" in result.output, result.output
    db.session.expire_all()
    rows = db.session.scalars(select(ImportedMessage).order_by(ImportedMessage.dedupe_key)).all()
    assert [(r.subject, r.from_addr, r.to_addrs) for r in rows] == [
        ("Subject 0", "mccathy@candidates.example", "team@client.example"),
        ("Subject 1", "carol@client.example", "cathy@candidates.example.org"),
        ("", "carol@client.example", "x@client.example, (erased)"),
    ]
