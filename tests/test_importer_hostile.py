"""Mail that could stop a mailbox for good: huge recipient lists, a batch the database refuses, huge messages."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select, text

from rolsync import importer, matching
from rolsync.extensions import db
from rolsync.models import FolderState, ImportedMessage
from tests.mail.builders import build_message

CAROL = "carol@client.example"


def allow_first_run(consultant, tmp_path, n: int = 1000) -> None:
    rules = json.loads(consultant.cli("rules", "export").output)
    rules["first_run"] = {"inbox": n, "sent": n}
    path = tmp_path / "first-run.json"
    path.write_text(json.dumps(rules))
    assert consultant.cli("rules", "import", str(path)).exit_code == 0


def watermark(role: str) -> int:
    db.session.rollback()
    return db.session.scalar(select(FolderState.last_uid).where(FolderState.role == role))


def bulk_mail(consultant, messages: int, recipients: int) -> list[bytes]:
    """Sent mail to Carol and `recipients` strangers each, every address distinct across the batch."""
    return [build_message(from_=consultant.email, subject=f"Bulk {m:03}", text="Our newsletter",
                          to=[CAROL, *(f"person{m}-{r}@bulk.example" for r in range(recipients))])
            for m in range(messages)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("chunks", ["chunked", "one statement, split by the import"])
def test_200_messages_of_330_recipients_import_and_so_does_the_next_message(consultant, crm, tmp_path,
                                                                           monkeypatch, chunks):
    """66,000 addresses in one batch: past PostgreSQL's 65,535 parameters (and SQLite's 32,766).

    Without chunking (second case), the database refuses the batch's lookup
    and the import splits the batch until each part passes.
    """
    if chunks != "chunked":
        monkeypatch.setattr(matching, "IN_CHUNK", 10**9)
    allow_first_run(consultant, tmp_path)
    consultant.deliver_many("Sent", bulk_mail(consultant, 200, 330))
    summary = consultant.import_now()
    assert (summary["imported"], summary["failed"]) == (200, 0)

    consultant.deliver("Sent", build_message(from_=consultant.email, to=CAROL, subject="After the bulk", text="x"))
    assert consultant.import_now()["imported"] == 1
    subjects = sorted(n["subject"] for n in consultant.notes())
    assert subjects == sorted([f"Bulk {m:03}" for m in range(200)] + ["After the bulk"])


def test_a_message_the_database_refuses_becomes_a_warning_and_the_rest_import(consultant, crm, tmp_path,
                                                                            monkeypatch):
    find_records = importer.find_records

    def refuse_the_poison(session, addresses):
        addresses = set(addresses)
        if "poison@bulk.example" in addresses:
            # A real refusal by the database, of a kind that retrying would only repeat.
            session.execute(text("SELECT * FROM no_such_table"))
        return find_records(session, addresses)

    monkeypatch.setattr(importer, "find_records", refuse_the_poison)
    subjects = ["One", "Two", "Three", "Poison", "Five", "Six", "Seven"]
    consultant.deliver_many("INBOX", [
        build_message(from_="poison@bulk.example" if s == "Poison" else CAROL, to=consultant.email,
                      subject=s, text="x") for s in subjects])
    summary = consultant.import_now()
    assert (summary["imported"], summary["failed"]) == (6, 1)
    assert sorted(n["subject"] for n in consultant.notes()) == sorted(set(subjects) - {"Poison"})
    [warning] = consultant.warnings()
    assert warning["kind"] == "import_failed"
    assert "the database refused to save it" in warning["detail"]
    assert "UID 4 in INBOX" in warning["detail"]
    assert watermark("inbox") == 7, "the watermark moved past the whole batch"

    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Later", text="x"))
    summary = consultant.import_now()
    assert (summary["imported"], summary["failed"]) == (1, 0)


def test_a_message_over_the_size_limit_is_not_fetched_and_says_why(consultant, crm, app):
    app.config["LIMIT_MESSAGE_BYTES"] = 60 * 1024
    big = build_message(from_=CAROL, to=consultant.email, subject="Huge", text="y" * 200_000)
    consultant.deliver_many("INBOX", [
        build_message(from_=CAROL, to=consultant.email, subject="Before", text="x"), big,
        build_message(from_=CAROL, to=consultant.email, subject="After", text="x")])
    summary = consultant.import_now()
    assert (summary["imported"], summary["warnings"], summary["failed"]) == (2, 1, 0)
    assert sorted(n["subject"] for n in consultant.notes()) == ["After", "Before"]
    [warning] = consultant.warnings()
    assert warning["kind"] == "message_too_large"
    assert "UID 2 in INBOX was not imported" in warning["detail"]
    assert re.search(r"at \d{3} KB it is larger than the 60 KB limit", warning["detail"]), warning["detail"]
    db.session.rollback()
    ledger = db.session.execute(select(ImportedMessage.uid, ImportedMessage.outcome, ImportedMessage.reason)
                                .order_by(ImportedMessage.uid)).all()
    assert [(uid, outcome) for uid, outcome, _ in ledger] == [(1, "imported"), (2, "warned"), (3, "imported")]
    assert ledger[1].reason == "too_large"
    assert watermark("inbox") == 3

    # Alone in its run (no batch to plan) it is still measured first; and never reported twice.
    consultant.deliver("INBOX", big)
    summary = consultant.import_now()
    assert (summary["imported"], summary["warnings"]) == (0, 1)
    assert watermark("inbox") == 4
    assert consultant.import_now()["warnings"] == 0
    assert [w["kind"] for w in consultant.warnings()] == ["message_too_large"] * 2
