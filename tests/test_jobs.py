"""The job path: `flask mail enqueue` on the real Redis, then a real `python worker.py --burst`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rq import Queue
from rq.job import Job

from devkit.builders import build_message, minimal_pdf
from rolsync import resources

ROOT = Path(__file__).resolve().parent.parent


def run_worker_burst(app) -> subprocess.CompletedProcess:
    env = {**os.environ, **app.config["TEST_ENV"]}
    return subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


def test_enqueue_and_a_burst_worker_import_like_mail_import(consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_="cathy@candidates.example", to=consultant.email, subject="CV via the queue", text="x",
        attachments=[("cv.pdf", "application/pdf", minimal_pdf())]))
    consultant.deliver("INBOX", build_message(from_="shared@client.example", to=consultant.email,
                                              subject="Duplicate", text="x"))

    enqueued = consultant.cli("mail", "enqueue", consultant.email)
    assert enqueued.exit_code == 0, enqueued.output
    job_id = enqueued.output.strip().splitlines()[0]

    again = consultant.cli("mail", "enqueue", consultant.email)
    assert again.exit_code == 0
    assert again.output.strip().splitlines()[0] == job_id
    queue: Queue = resources.get().queue
    assert queue.count == 1, "a mailbox already queued is not queued twice"

    job = Job.fetch(job_id, connection=resources.get().redis)
    assert consultant.password not in repr(job.args) + repr(job.kwargs)

    worker = run_worker_burst(consultant.app)
    assert worker.returncode == 0, worker.stderr[-3000:]
    job = Job.fetch(job_id, connection=resources.get().redis)
    assert job.get_status() == "finished", worker.stderr[-3000:]
    assert job.return_value()["imported"] == 1
    assert consultant.password not in worker.stdout + worker.stderr

    [note] = consultant.notes()
    assert note["subject"] == "CV via the queue"
    assert [d["filename"] for d in note["documents"]] == ["cv.pdf"]
    assert [w["kind"] for w in consultant.warnings()] == ["duplicate_address"]

    # Once finished, the mailbox can be queued again, and the import stays idempotent.
    assert consultant.cli("mail", "enqueue", "--all").exit_code == 0
    assert run_worker_burst(consultant.app).returncode == 0
    assert len(consultant.notes()) == 1


def test_a_manual_only_mailbox_imports_on_import_now_and_never_by_itself(consultant, crm):
    from rolsync import jobs
    from rolsync.extensions import db
    from rolsync.models import MailAccount

    consultant.deliver("INBOX", build_message(from_="cathy@candidates.example", to=consultant.email,
                                              subject="Manual only", text="x"))
    account = db.session.scalar(db.select(MailAccount))
    account.enabled = False
    db.session.commit()
    queue: Queue = resources.get().queue

    # The schedule's kind of job (and `--all`) leaves a manual-only mailbox alone.
    listed = consultant.cli("mail", "enqueue", "--all")
    assert listed.exit_code == 0 and listed.output.strip() == "No enabled mailbox to import."
    scheduled, _ = jobs.enqueue_import(queue, account.id)
    assert run_worker_burst(consultant.app).returncode == 0
    assert consultant.notes() == []
    scheduled.delete()

    # Import now (manual) imports it.
    manual, created = jobs.enqueue_import(queue, account.id, manual=True)
    assert created
    worker = run_worker_burst(consultant.app)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert Job.fetch(manual.id, connection=resources.get().redis).return_value()["imported"] == 1
    assert [n["subject"] for n in consultant.notes()] == ["Manual only"]


def test_enqueue_all_prints_a_readable_line_per_mailbox(consultant):
    first = consultant.cli("mail", "enqueue", "--all")
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"{consultant.email}: import queued"
    again = consultant.cli("mail", "enqueue", "--all")
    assert again.output.strip() == f"{consultant.email}: an import is already queued; not queued twice"
    resources.get().queue.empty()
