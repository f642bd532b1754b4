"""Scheduled imports on real RQ workers, under faults: nothing lost, nothing duplicated.

Real worker processes (`python worker.py`), the real Redis, the test Dovecot,
a TCP proxy that cuts or stalls connections, SIGKILL at random moments.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from rq.exceptions import InvalidJobOperation
from sqlalchemy import func, select

from devkit.builders import build_message, minimal_pdf
from devkit.dovecot import DovecotServer
from rolsync import jobs, resources
from rolsync.extensions import db
from rolsync.models import ImportRun, MailAccount, Note, StoredFile
from tests.conftest import _make_app, make_consultant

ROOT = Path(__file__).resolve().parent.parent
CAROL = "carol@client.example"
FAST = {
    "ROLSYNC_POLL_INTERVAL_SECONDS": "2",
    "ROLSYNC_SCHEDULE_TICK_SECONDS": "1",
    "ROLSYNC_IMPORT_LOCK_SECONDS": "3",
    "ROLSYNC_IMPORT_RETRY_DELAYS": "1,1,2",
    "ROLSYNC_IMAP_TIMEOUT": "3",
    "ROLSYNC_IMPORT_RUN_MESSAGES": "100",
}
KILLS = int(os.environ.get("ROLSYNC_TEST_KILLS", "20"))


@pytest.fixture
def fast_app(monkeypatch, tmp_path, database_url):
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    app = _make_app(monkeypatch, tmp_path, database_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class Worker:
    """A `python worker.py` process group of its own, so SIGKILL takes the work horse too.

    `slow`: the worker of tests/support/slow_worker.py, where a message with
    SLOW-<seconds> in its subject takes that long to decide.
    """

    def __init__(self, app, *args: str, slow: bool = False, env: dict[str, str] | None = None):
        env = {**os.environ, **app.config["TEST_ENV"], **FAST, **(env or {})}
        self.log = open(Path(app.instance_path) / f"worker-{time.monotonic_ns()}.log", "w+")
        command = ["-m", "tests.support.slow_worker"] if slow else ["worker.py"]
        self.process = subprocess.Popen([sys.executable, *command, *args], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the worker, its scheduler and its work horse (RQ puts the horse in a group of its own)."""
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.process.wait(timeout=30)
        if not self.log.closed:
            self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(app, *args: str, **kwargs) -> Worker:
        worker = Worker(app, *args, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_until(predicate, timeout: float = 90, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # see other processes' commits
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {message}")


def note_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Note))


def assert_each_message_once(expected_subjects: set[str]) -> None:
    db.session.rollback()
    rows = db.session.execute(select(Note.subject, func.count()).group_by(Note.subject)).all()
    counts = dict(rows)
    assert set(counts) == expected_subjects, f"missing: {sorted(expected_subjects - set(counts))[:5]}"
    duplicated = {subject: n for subject, n in counts.items() if n != 1}
    assert duplicated == {}


def allow_first_run(consultant, tmp_path, n: int = 1000) -> None:
    rules = json.loads(consultant.cli("rules", "export").output)
    rules["first_run"] = {"inbox": n, "sent": n}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    assert consultant.cli("rules", "import", str(path)).exit_code == 0


def corpus(consultant, n: int, prefix: str = "Message") -> list[bytes]:
    return [build_message(from_=CAROL, to=consultant.email, subject=f"{prefix} {i:04}", text=f"Body {i}",
                          attachments=[(f"cv-{i % 7}.pdf", "application/pdf", minimal_pdf(f"CV {i % 7}"))])
            for i in range(n)]


def crm_with_carol(app, tmp_path):
    from tests.conftest import load_crm

    load_crm(app, [("contact", "Carol Client", CAROL, "Client Ltd")], tmp_path)


# -- the schedule ----------------------------------------------------------------------


def test_a_running_worker_imports_every_mailbox_on_its_schedule(fast_app, dovecot, tmp_path, workers):
    crm_with_carol(fast_app, tmp_path)
    first = make_consultant(fast_app, dovecot, tmp_path)
    second = make_consultant(fast_app, dovecot, tmp_path)
    for consultant in (first, second):
        consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email,
                                                  subject=f"Early for {consultant.email}", text="x"))
    workers(fast_app)
    wait_until(lambda: note_count() == 2, message="the first scheduled imports")
    for consultant in (first, second):
        consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email,
                                                  subject=f"Later for {consultant.email}", text="x"))
    wait_until(lambda: note_count() == 4, message="the next scheduled imports")
    runs = dict(db.session.execute(select(ImportRun.account_id, func.count()).group_by(ImportRun.account_id)).all())
    assert len(runs) == 2 and min(runs.values()) >= 2


# -- one import per mailbox at a time ----------------------------------------------------------


def test_two_workers_and_many_enqueues_run_one_import_at_a_time(fast_app, dovecot, tmp_path, workers):
    crm_with_carol(fast_app, tmp_path)
    consultant = make_consultant(fast_app, dovecot, tmp_path)
    allow_first_run(consultant, tmp_path)
    consultant.deliver_many("INBOX", corpus(consultant, 250))
    account_id = db.session.scalar(select(MailAccount.id))
    queue = resources.get().queue
    workers(fast_app)
    workers(fast_app)
    created = 0
    for _ in range(30):
        _job, was_created = jobs.enqueue_import(queue, account_id)
        created += was_created
        time.sleep(0.1)
    wait_until(lambda: note_count() == 250, timeout=120, message="all 250 notes")
    assert created < 30, "enqueues while one is queued or running are no-ops"
    runs = db.session.execute(select(ImportRun.started_at, ImportRun.finished_at)
                              .where(ImportRun.account_id == account_id).order_by(ImportRun.started_at)).all()
    for (_, finished), (next_started, _) in itertools.pairwise(runs):
        assert finished is not None and finished <= next_started, "two imports of one mailbox overlapped"
    assert_each_message_once({f"Message {i:04}" for i in range(250)})


def import_runs_never_overlap(account_id: int) -> None:
    runs = db.session.execute(select(ImportRun.started_at, ImportRun.finished_at)
                              .where(ImportRun.account_id == account_id).order_by(ImportRun.started_at)).all()
    for (_, finished), (next_started, _) in itertools.pairwise(runs):
        assert finished is not None and finished <= next_started, "two imports of one mailbox overlapped"


def test_a_message_slower_than_the_lock_lets_no_second_import_start(fast_app, dovecot, tmp_path, workers):
    """A message that takes five lock lifetimes to handle: the job keeps its lock, the dispatcher sees a live worker."""
    crm_with_carol(fast_app, tmp_path)
    consultant = make_consultant(fast_app, dovecot, tmp_path)
    allow_first_run(consultant, tmp_path)
    slow = int(FAST["ROLSYNC_IMPORT_LOCK_SECONDS"]) * 5
    subjects = [f"Before {i}" for i in range(5)] + [f"Hostile SLOW-{slow}"] + [f"After {i}" for i in range(5)]
    consultant.deliver_many("INBOX", [build_message(from_=CAROL, to=consultant.email, subject=subject, text="x")
                                      for subject in subjects])
    account_id = db.session.scalar(select(MailAccount.id))
    queue = resources.get().queue
    started = [workers(fast_app, slow=True), workers(fast_app, slow=True)]
    # Besides both workers' schedulers (every second), enqueue as eagerly as a dispatcher could.
    deadline = time.monotonic() + slow + 5
    while time.monotonic() < deadline:
        jobs.enqueue_import(queue, account_id)
        time.sleep(0.5)
    wait_until(lambda: note_count() == len(subjects), timeout=120, message="every note, the slow one too")
    time.sleep(3)  # a second import, if one had started, would have been recorded by now
    db.session.rollback()
    import_runs_never_overlap(account_id)
    assert_each_message_once(set(subjects))
    output = "".join(worker.output() for worker in started)
    assert "LockNotOwnedError" not in output and "was lost" not in output, output[-3000:]


def test_the_job_timeout_is_not_swallowed_by_the_import(fast_app, dovecot, tmp_path, workers):
    """RQ's timeout fires while a message is being handled: the job fails in RQ, no message becomes a warning."""
    crm_with_carol(fast_app, tmp_path)
    consultant = make_consultant(fast_app, dovecot, tmp_path)
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Endless SLOW-60", text="x"))
    account_id = db.session.scalar(select(MailAccount.id))
    job, _ = jobs.enqueue_import(resources.get().queue, account_id)
    job.timeout = 4
    job.retries_left = 0  # one attempt is enough to see how it ends
    job.save()
    worker = workers(fast_app, "--burst", slow=True)
    worker.process.wait(timeout=120)
    assert job.get_status(refresh=True) == "failed", worker.output()[-3000:]
    assert "ImportTimedOut" in job.latest_result().exc_string
    assert "import_failed" not in [w["kind"] for w in consultant.warnings()]
    assert note_count() == 0
    db.session.rollback()
    [run] = db.session.scalars(select(ImportRun).where(ImportRun.account_id == account_id))
    assert run.finished_at is not None and "ran longer than its time limit" in run.error


# -- crashes and dropped connections ----------------------------------------------------------------


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(fast_app, dovecot, tmp_path, workers):
    crm_with_carol(fast_app, tmp_path)
    consultant = make_consultant(fast_app, dovecot, tmp_path)
    allow_first_run(consultant, tmp_path)
    consultant.deliver_many("INBOX", corpus(consultant, 600))
    account_id = db.session.scalar(select(MailAccount.id))
    svc = resources.get()
    rng = random.Random(int(os.environ.get("ROLSYNC_TEST_SEED", "20261127")))
    counts_at_kill = []
    for _ in range(KILLS):
        wait_until(lambda: not svc.redis.exists(jobs.lock_key(account_id)), timeout=30,
                   message="the dead worker's lock to expire")
        job, _ = jobs.enqueue_import(svc.queue, account_id)
        worker = workers(fast_app)
        # Kill at a random moment of the import itself, not of the worker's start-up.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if job.get_status(refresh=True) in ("started", "finished", "failed"):
                    break
            except InvalidJobOperation:
                break  # replaced meanwhile (RQ's clean-up of the last killed run): it runs anyway
            time.sleep(0.05)
        # Once the import has saved something (or ended), at a random moment: the compiled parser
        # imports the 600 messages in well under a second, so a kill at a random time from the
        # job's start would mostly find the work done.
        db.session.rollback()
        before = note_count()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and note_count() == before and before < 600:
            time.sleep(0.02)
            db.session.rollback()
        time.sleep(rng.uniform(0.0, 0.3))
        worker.kill()
        db.session.rollback()
        counts_at_kill.append(note_count())
    wait_until(lambda: not svc.redis.exists(jobs.lock_key(account_id)), timeout=30, message="lock expiry")
    final = consultant.cli("mail", "import", consultant.email)
    assert final.exit_code == 0, final.output

    print(f"notes at each of {len(counts_at_kill)} kills: {counts_at_kill}")
    assert any(0 < n < 600 for n in counts_at_kill), f"no kill landed mid-import: {counts_at_kill}"
    assert_each_message_once({f"Message {i:04}" for i in range(600)})
    stored = [p for p in Path(svc.documents.root).rglob("*") if p.is_file() and not p.name.startswith(".tmp")]
    assert len(stored) == len({p.name for p in stored}) == db.session.scalar(
        select(func.count()).select_from(StoredFile)) == 7, "each distinct document stored once"


class FaultyProxy:
    """A TCP proxy to Dovecot that breaks its first connections after some bytes.

    mode "cut" closes both sides mid-stream; "stall" stops forwarding and
    holds the connection open, as a hung server does.
    """

    def __init__(self, target_port: int, *, mode: str, after_bytes: int, faulty_connections: int = 1):
        self.target_port, self.mode, self.after_bytes = target_port, mode, after_bytes
        self.faulty_left = faulty_connections
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.broken = 0
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, server]
            faulty = self.faulty_left > 0
            self.faulty_left -= 1
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.after_bytes if faulty else None),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    self.broken += 1
                    if self.mode == "stall":
                        self._stop.wait(60)
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for sock in self._sockets:
            sock.close()


@pytest.mark.parametrize("mode", ["cut", "stall"])
def test_a_connection_cut_or_stalled_mid_fetch_is_retried_and_resumed(fast_app, dovecot, tmp_path, workers, mode):
    crm_with_carol(fast_app, tmp_path)
    proxy = FaultyProxy(dovecot.ssl_port, mode=mode, after_bytes=150_000)
    try:
        consultant = make_consultant(fast_app, dovecot, tmp_path)
        assert consultant.cli("mail", "configure", consultant.email, "--host", "127.0.0.1", "--port", str(proxy.port),
                              "--username", consultant.username, "--password-stdin", "--ca-file",
                              str(tmp_path / "ca.pem"), input=consultant.password + "\n").exit_code == 0
        allow_first_run(consultant, tmp_path)
        consultant.deliver_many("INBOX", corpus(consultant, 120))
        account_id = db.session.scalar(select(MailAccount.id))
        jobs.enqueue_import(resources.get().queue, account_id)
        workers(fast_app)
        wait_until(lambda: note_count() == 120, timeout=120, message="all notes after the fault")
        assert proxy.broken >= 1, "the proxy never broke a connection"
        errors = [r.error for r in db.session.scalars(select(ImportRun)) if r.error]
        assert errors, "the broken run is recorded with its error"
        assert_each_message_once({f"Message {i:04}" for i in range(120)})
    finally:
        proxy.close()


def test_dovecot_restarted_during_a_run(fast_app, tmp_path, workers):
    crm_with_carol(fast_app, tmp_path)
    # Dovecot's Unix sockets need a short path; pytest's tmp_path can be too long.
    base = Path(tempfile.mkdtemp(prefix="dv-"))
    server = DovecotServer(base)
    server.start()
    try:
        consultant = make_consultant(fast_app, server, tmp_path)
        allow_first_run(consultant, tmp_path)
        consultant.deliver_many("INBOX", corpus(consultant, 300))
        account_id = db.session.scalar(select(MailAccount.id))
        jobs.enqueue_import(resources.get().queue, account_id)
        workers(fast_app)
        wait_until(lambda: note_count() >= 20, timeout=60, message="the run to be under way")
        server.restart()
        wait_until(lambda: note_count() == 300, timeout=120, message="all notes after the restart")
        assert_each_message_once({f"Message {i:04}" for i in range(300)})
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- accounts that must stop ----------------------------------------------------------------------


def test_three_refused_logins_pause_the_account_until_the_password_is_fixed(fast_app, dovecot, tmp_path, workers):
    crm_with_carol(fast_app, tmp_path)
    consultant = make_consultant(fast_app, dovecot, tmp_path)
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="After the fix", text="x"))
    configure = ["mail", "configure", consultant.email, "--host", dovecot.host, "--port", str(dovecot.ssl_port),
                 "--username", consultant.username, "--password-stdin", "--ca-file", str(tmp_path / "ca.pem")]
    assert consultant.cli(*configure, input="not-the-password\n").exit_code == 0
    svc = resources.get()
    account = db.session.scalar(select(MailAccount))

    job, _ = jobs.enqueue_import(svc.queue, account.id)
    burst = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, **fast_app.config["TEST_ENV"], **FAST}, timeout=120)
    assert burst.returncode == 0
    job.refresh()
    assert job.get_status() == "failed" and job.retries_left == 0, "a refused login is not retried by RQ"
    assert "not-the-password" not in burst.stdout + burst.stderr

    for _ in range(2):
        assert consultant.cli("mail", "import", consultant.email).exit_code != 0
    db.session.refresh(account)
    assert account.paused and account.auth_failures == 3
    assert [w["kind"] for w in consultant.warnings() if w["status"] == "open"] == ["auth_failed"]
    assert jobs.due_accounts(db.session, 0) == [], "a paused account is not scheduled"

    assert consultant.cli(*configure, input=consultant.password + "\n").exit_code == 0
    db.session.refresh(account)
    assert not account.paused
    assert [w["status"] for w in consultant.warnings() if w["kind"] == "auth_failed"] == ["resolved"]
    workers(fast_app)
    wait_until(lambda: note_count() == 1, message="the import to resume on schedule")


def test_a_folder_that_keeps_renumbering_trips_the_breaker(fast_app, dovecot, tmp_path):
    crm_with_carol(fast_app, tmp_path)
    consultant = make_consultant(fast_app, dovecot, tmp_path)
    message = build_message(from_=consultant.email, to=CAROL, subject="Renumbered", text="x")
    results = []
    for _ in range(5):
        consultant.dovecot.delete_folder(consultant.username, consultant.password, "Sent")
        consultant.dovecot.create_folder(consultant.username, consultant.password, "Sent")
        consultant.deliver("Sent", message)
        results.append(consultant.cli("mail", "import", consultant.email).exit_code)
    assert results[:4] == [0, 0, 0, 0] and results[4] != 0
    account = db.session.scalar(select(MailAccount))
    assert account.paused
    assert "uidvalidity_unstable" in [w["kind"] for w in consultant.warnings()]
    assert note_count() == 1
