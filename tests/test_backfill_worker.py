"""Import past e-mails on a record page, run by real RQ workers: once, even pressed twice or with a worker killed."""
from __future__ import annotations

import json
import re
import time

import pytest
from rq.job import Job
from sqlalchemy import func, select

from devkit.builders import build_message
from rolsync import backfill, jobs, resources
from rolsync.extensions import db
from rolsync.models import Candidate, MailAccount, Note
from tests.conftest import load_crm, make_consultant
from tests.test_worker_faults import fast_app, wait_until, workers  # noqa: F401  (fixtures)
from tests.web.conftest import sign_in

CATHY = "cathy@candidates.example"
OLD = 80


@pytest.fixture
def small_batches(monkeypatch):
    # Small fetch batches, so the backfill commits several times and a kill lands between two of them.
    monkeypatch.setenv("ROLSYNC_IMPORT_FETCH_BATCH", "2")


def _notes_on(candidate_id: int) -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(Note.subject).where(Note.candidate_id == candidate_id)))


def test_import_past_emails_imports_each_old_message_once_despite_a_second_press_and_a_killed_worker(
        small_batches, fast_app, dovecot, tmp_path, workers):  # noqa: F811
    app = fast_app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, [("candidate", "Cathy Candidate", CATHY, ""), ("contact", "Carol", "carol@client.example", "C")],
             tmp_path)
    rules = json.loads(consultant.cli("rules", "export").output)
    rules["first_run"] = {"inbox": 1, "sent": 1}
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    assert consultant.cli("rules", "import", str(tmp_path / "rules.json")).exit_code == 0
    consultant.deliver_many("INBOX", [
        build_message(from_=f"Cathy <{CATHY}>", to=consultant.email, subject=f"Old {n:02d}",
                      text="x" * 100_000, date="Mon, 01 Jan 2024 09:00:00 +0000") for n in range(OLD)])
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="Newest"))
    assert consultant.import_now()["imported"] == 1
    candidate_id = db.session.scalar(select(Candidate.id).where(Candidate.name == "Cathy Candidate"))
    assert _notes_on(candidate_id) == []

    client = app.test_client()
    sign_in(client, consultant.email, "user-password-123")
    page = f"/records/candidate/{candidate_id}"
    assert "Import past e-mails" in client.get(page).get_data(as_text=True)
    first = client.post(f"{page}/past-mail", data={"since": ""}, follow_redirects=True).get_data(as_text=True)
    assert "Searching your mailbox for the past e-mails" in first
    second = client.post(f"{page}/past-mail", data={}, follow_redirects=True).get_data(as_text=True)
    assert "already under way" in second

    # A worker takes the job and is killed half-way.
    worker = workers(app)
    deadline = time.monotonic() + 90
    while len(_notes_on(candidate_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.kill()
    done_before = len(_notes_on(candidate_id))
    assert done_before < OLD, "the backfill finished before the kill; make the messages bigger"
    svc = resources.get()
    account_id = db.session.scalar(select(MailAccount.id))
    wait_until(lambda: not svc.redis.exists(jobs.lock_key(account_id, svc.queue.name)),
               message="the dead worker's lock")

    # Pressed again: the abandoned job is replaced, and a new worker finishes it.
    again = client.post(f"{page}/past-mail", data={}, follow_redirects=True).get_data(as_text=True)
    assert "Searching your mailbox" in again or "already under way" in again
    workers(app)
    wait_until(lambda: len(_notes_on(candidate_id)) >= OLD, timeout=120, message="every old message")
    wait_until(lambda: not client.get(f"{page}/past-mail.json").get_json()["active"],
               message="the backfill job to finish")
    subjects = _notes_on(candidate_id)
    assert sorted(subjects) == [f"Old {n:02d}" for n in range(OLD)]
    assert re.search(r"Found \d+ messages: \d+ added to the record", client.get(page).get_data(as_text=True))

    # A third press finds them all and adds nothing.
    client.post(f"{page}/past-mail", data={}, follow_redirects=True)
    job_id = backfill.job_id_for(svc.queue.name, account_id, "candidate", candidate_id)
    wait_until(lambda: Job.fetch(job_id, connection=svc.redis).get_status(refresh=True) == "finished",
               message="the third backfill")
    result = Job.fetch(job_id, connection=svc.redis).return_value()
    assert result["found"] == OLD and result["imported"] == 0
    assert db.session.scalar(select(func.count()).select_from(Note).where(Note.candidate_id == candidate_id)) == OLD
