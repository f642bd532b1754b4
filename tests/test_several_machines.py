"""Several machines: workers with instance folders of their own share one PostgreSQL, one Redis and one bucket.

A scheduler and two workers run as the deploy/ units run them (`--scheduler-only`,
`--no-scheduler`), each worker in its own instance folder, as on two machines;
one is SIGKILLed in the middle of the work and the other finishes it.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from devkit.builders import build_message, minimal_pdf
from rolsync.extensions import db
from rolsync.models import ImportRun, MailAccount, StoredFile
from tests.conftest import _make_app, make_consultant
from tests.test_worker_faults import (
    CAROL,
    FAST,
    allow_first_run,
    assert_each_message_once,
    crm_with_carol,
    descendants,
    note_count,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
MAILBOXES = 8
MESSAGES = 80


class Machine:
    """`python worker.py ARGS` with an instance folder of its own, in a process group of its own."""

    def __init__(self, app, folder: Path, *args: str):
        folder.mkdir(parents=True)
        self.folder = folder
        env = {**os.environ, **app.config["TEST_ENV"], **FAST, "ROLSYNC_INSTANCE_PATH": str(folder / "instance"),
               "ROLSYNC_DOCUMENT_ROOT": str(folder / "documents"),
               # Small batches: an import lasts long enough to be killed in the middle of it.
               "ROLSYNC_IMPORT_FETCH_BATCH": "10"}
        self.log_path = folder / "worker.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "worker.py", *args], cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def kill(self) -> None:
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def shared_app(s3_bucket, monkeypatch, tmp_path, postgres_url):
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    app = _make_app(monkeypatch, tmp_path / "panel", postgres_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def machines():
    started: list[Machine] = []

    def start(app, folder: Path, *args: str) -> Machine:
        machine = Machine(app, folder, *args)
        started.append(machine)
        return machine

    yield start
    for machine in started:
        machine.stop()


def test_two_machines_share_the_mailboxes_and_one_carries_on_when_the_other_is_killed(
        shared_app, s3_bucket, dovecot, tmp_path, machines):
    crm_with_carol(shared_app, tmp_path)
    expected = set()
    for n in range(MAILBOXES):
        consultant = make_consultant(shared_app, dovecot, tmp_path)
        if n == 0:
            allow_first_run(consultant, tmp_path)
        subjects = [f"Mailbox {n} message {i:03}" for i in range(MESSAGES)]
        consultant.deliver_many("INBOX", [
            build_message(from_=CAROL, to=consultant.email, subject=subject, text=subject,
                          attachments=[(f"cv-{i % 5}.pdf", "application/pdf", minimal_pdf(f"CV {i % 5}"))])
            for i, subject in enumerate(subjects)])
        expected.update(subjects)
    total = MAILBOXES * MESSAGES

    machines(shared_app, tmp_path / "scheduler", "--scheduler-only")
    first = machines(shared_app, tmp_path / "machine-a", "--no-scheduler")
    second = machines(shared_app, tmp_path / "machine-b", "--no-scheduler")

    # Kill the first machine's worker while it imports, with work left for the second.
    wait_until(lambda: "import run started" in first.output() and 0 < note_count() < total,
               timeout=180, message="the first machine to be importing")
    first.kill()
    db.session.rollback()
    at_kill = note_count()

    wait_until(lambda: note_count() == total, timeout=300, message=f"all {total} notes after the kill")
    print(f"notes when the first machine was killed: {at_kill} of {total}")
    assert at_kill < total
    assert "import run started" in second.output(), "the second machine imported too"
    assert_each_message_once(expected)

    # Never two imports of one mailbox at once: every finished run ended before the next began.
    for account_id in db.session.scalars(select(MailAccount.id)):
        runs = db.session.execute(select(ImportRun.started_at, ImportRun.finished_at)
                                  .where(ImportRun.account_id == account_id).order_by(ImportRun.started_at)).all()
        for (_, finished), (next_started, _) in itertools.pairwise(runs):
            assert finished is None or finished <= next_started, f"imports of mailbox {account_id} overlapped"

    # The documents are in the bucket, each once, and on neither machine's disk.
    stored = db.session.scalar(select(func.count()).select_from(StoredFile))
    assert stored == len(s3_bucket.keys()) == 5
    for machine in ("machine-a", "machine-b"):
        assert not (tmp_path / machine / "documents").exists()
        spool = tmp_path / machine / "instance" / "spool"
        assert not spool.exists() or not [p for p in spool.rglob("*") if p.is_file()]
