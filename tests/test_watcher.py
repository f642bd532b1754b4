"""Push: a real `python worker.py --watch` and a real RQ worker against the test Dovecot, Redis and both databases.

The schedule is set to an hour unless a test says otherwise, so mail that
turns up on a record within seconds came by push, not by a poll.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from devkit.builders import build_message
from devkit.dovecot import DovecotServer
from rolsync import push, resources
from rolsync.extensions import db
from rolsync.models import ImportRun, MailAccount, Note
from rolsync.watcher import is_bye, is_new_mail
from tests.conftest import _make_app, load_crm, make_consultant
from tests.test_worker_faults import assert_each_message_once, descendants, wait_until

ROOT = Path(__file__).resolve().parent.parent
CAROL = "carol@client.example"
PUSH = {
    "ROLSYNC_POLL_INTERVAL_SECONDS": "3600",
    "ROLSYNC_SCHEDULE_TICK_SECONDS": "1",
    "ROLSYNC_IMPORT_LOCK_SECONDS": "3",
    "ROLSYNC_IMPORT_RETRY_DELAYS": "1,1,2",
    "ROLSYNC_IMAP_TIMEOUT": "5",
    "ROLSYNC_PUSH_LEASE_SECONDS": "3",
    "ROLSYNC_PUSH_REFRESH_SECONDS": "1",
    "ROLSYNC_PUSH_IDLE_RENEW_SECONDS": "4",
    "ROLSYNC_PUSH_BACKOFF_MAX_SECONDS": "2",
    "ROLSYNC_PUSH_SAFETY_POLL_SECONDS": "3600",
    "ROLSYNC_AUTH_FAILURES_BEFORE_PAUSE": "50",
}


@pytest.fixture
def push_env(monkeypatch):
    """The settings above, plus what a test adds, for the app and every process it starts."""
    env = dict(PUSH)

    def make(tmp_path, database_url, **extra: str):
        env.update(extra)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return _make_app(monkeypatch, tmp_path, database_url)

    return make


@pytest.fixture
def push_app(push_env, tmp_path, database_url):
    app = push_env(tmp_path, database_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class Process:
    """`python worker.py ARGS` in a process group of its own, its output in the instance folder."""

    def __init__(self, app, *args: str):
        env = {**os.environ, **app.config["TEST_ENV"],
               **{k: v for k, v in os.environ.items() if k.startswith("ROLSYNC_")}}
        self.log = open(Path(app.instance_path) / f"proc-{time.monotonic_ns()}.log", "w+")
        self.process = subprocess.Popen([sys.executable, "worker.py", *args], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

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
                pass
        self.kill()
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()


@pytest.fixture
def processes():
    started: list[Process] = []

    def start(app, *args: str) -> Process:
        process = Process(app, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def live(account_id: int) -> str | None:
    svc = resources.get()
    return push.live_state(svc.redis, svc.queue.name, account_id)


def lease_holder(account_id: int) -> bytes | None:
    svc = resources.get()
    return svc.redis.get(push.lease_key(svc.queue.name, account_id))


def subjects() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(Note.subject)))


def runs(account_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(ImportRun).where(ImportRun.account_id == account_id))


def mail(consultant, subject: str) -> bytes:
    return build_message(from_=CAROL, to=consultant.email, subject=subject, text=f"About {subject}")


def account_of(consultant) -> MailAccount:
    db.session.rollback()
    return db.session.scalar(select(MailAccount).where(MailAccount.username == consultant.username))


def ready(app, dovecot, tmp_path, processes, *, watchers: int = 1):
    """A consultant whose first import is done (so the schedule waits an hour), a worker and watchers."""
    load_crm(app, [("contact", "Carol Client", CAROL, "Client Ltd")], tmp_path)
    consultant = make_consultant(app, dovecot, tmp_path)
    consultant.import_now()
    account_id = account_of(consultant).id
    processes(app)
    started = [processes(app, "--watch") for _ in range(watchers)]
    wait_until(lambda: live(account_id) is not None, 60, "the watcher to be in IDLE")
    return consultant, account_id, started


# -- the parts that need no server ---------------------------------------------------------------


def test_what_counts_as_new_mail():
    assert is_new_mail(b"* 12 EXISTS") and is_new_mail(b"* 1 RECENT")
    assert is_new_mail(b'* STATUS "Sent" (UIDNEXT 9 MESSAGES 8)')
    assert not is_new_mail(b"* 3 EXPUNGE") and not is_new_mail(b"* OK Still here")
    assert not is_new_mail(b"A001 OK IDLE done")
    assert is_bye(b"* BYE Server shutting down.") and not is_bye(b"* OK")


# -- push ------------------------------------------------------------------------------------------


def test_mail_appended_while_idle_is_on_the_record_without_a_poll(push_app, dovecot, tmp_path, processes):
    consultant, account_id, [watcher] = ready(push_app, dovecot, tmp_path, processes)
    # Dovecot offers NOTIFY, so the Sent folder is watched in the same connection.
    assert live(account_id) == push.LIVE_ALL
    before = runs(account_id)
    time.sleep(5)  # past an IDLE renewal (every 4 s here): mail still arrives on the renewed IDLE

    consultant.deliver("INBOX", mail(consultant, "CV arriving live"))
    wait_until(lambda: "CV arriving live" in subjects(), 30, "the pushed message to become a note")
    consultant.deliver("Sent", build_message(from_=consultant.email, to=CAROL, subject="Reply sent live",
                                             text="Thanks"))
    wait_until(lambda: "Reply sent live" in subjects(), 30, "the sent message to become a note")

    # Nothing else could have run them: the schedule's next poll is an hour away.
    assert runs(account_id) - before <= 4
    assert sorted(subjects()) == ["CV arriving live", "Reply sent live"]
    # IDLE was re-issued meanwhile (every 4 s here) without trouble.
    assert "Traceback" not in watcher.output() and "connection trouble" not in watcher.output()


def test_a_watcher_killed_is_replaced_and_nothing_is_lost_or_doubled(push_app, dovecot, tmp_path, processes):
    consultant, account_id, [first] = ready(push_app, dovecot, tmp_path, processes)
    holder = lease_holder(account_id)
    second = processes(push_app, "--watch")
    consultant.deliver("INBOX", mail(consultant, "Before the kill"))
    wait_until(lambda: "Before the kill" in subjects(), 30, "the first message")

    first.kill()
    # Mail while nobody watches: the second watcher takes the mailbox once the lease lapses (3 s here)
    # and imports what came meanwhile.
    for i in range(3):
        consultant.deliver("INBOX", mail(consultant, f"During the gap {i}"))
    wait_until(lambda: lease_holder(account_id) not in (None, holder), 60, "another watcher to take the mailbox")
    wait_until(lambda: live(account_id) is not None, 60, "the second watcher to be in IDLE")
    consultant.deliver("INBOX", mail(consultant, "After the takeover"))
    expected = {"Before the kill", "After the takeover", *(f"During the gap {i}" for i in range(3))}
    wait_until(lambda: expected <= set(subjects()), 60, "every message")
    assert second.process.poll() is None
    assert_each_message_once(expected)


def test_dovecot_restarted_under_the_watcher(push_env, tmp_path, database_url, processes):
    server = DovecotServer(tmp_path / "dovecot")
    server.start()
    app = push_env(tmp_path, database_url)
    try:
        with app.app_context():
            consultant, account_id, [watcher] = ready(app, server, tmp_path, processes)
            server.restart()
            consultant.deliver("INBOX", mail(consultant, "While it restarted"))
            wait_until(lambda: "While it restarted" in subjects(), 60, "the message that came during the restart")
            wait_until(lambda: live(account_id) is not None, 60, "the watcher to be back in IDLE")
            consultant.deliver("INBOX", mail(consultant, "After the restart"))
            wait_until(lambda: "After the restart" in subjects(), 30, "the pushed message after the restart")
            assert "reconnecting in" in watcher.output() and "Traceback" not in watcher.output()
            assert_each_message_once({"While it restarted", "After the restart"})
            db.session.remove()
            db.engine.dispose()
    finally:
        server.stop()


def test_push_and_a_poll_racing_make_one_note_per_message(push_env, tmp_path, database_url, dovecot, processes):
    app = push_env(tmp_path, database_url, ROLSYNC_POLL_INTERVAL_SECONDS="1",
                   ROLSYNC_PUSH_SAFETY_POLL_SECONDS="1")
    with app.app_context():
        consultant, account_id, _ = ready(app, dovecot, tmp_path, processes)
        processes(app)  # a second worker: push and poll jobs may land on either
        expected = set()
        for i in range(25):
            consultant.deliver("INBOX", mail(consultant, f"Racing {i:02}"))
            expected.add(f"Racing {i:02}")
            time.sleep(0.1 * (i % 3))
        wait_until(lambda: expected <= set(subjects()), 90, "every message")
        time.sleep(3)  # let any import still running finish: it must not add a second copy
        assert_each_message_once(expected)
        db.session.remove()
        db.engine.dispose()


def test_a_changed_password_is_followed_without_a_restart(push_app, dovecot, tmp_path, processes):
    consultant, account_id, [watcher] = ready(push_app, dovecot, tmp_path, processes)
    logins_before = dovecot.log_path.read_text().count(f"user=<{consultant.username}>")
    new_password = consultant.password + "-new"
    dovecot.add_user(consultant.username, new_password)
    ca_file = tmp_path / "ca.pem"
    saved = consultant.cli("mail", "configure", consultant.email, "--host", dovecot.host, "--port",
                           str(dovecot.ssl_port), "--security", "ssl", "--username", consultant.username,
                           "--password-stdin", "--ca-file", str(ca_file), input=new_password + "\n")
    assert saved.exit_code == 0, saved.output
    consultant.password = new_password
    wait_until(lambda: "settings changed; reconnecting" in watcher.output(), 30, "the watcher to notice")
    wait_until(lambda: live(account_id) is not None, 30, "the watcher to be back in IDLE")
    consultant.deliver("INBOX", mail(consultant, "After the new password"))
    wait_until(lambda: "After the new password" in subjects(), 30, "the pushed message")
    # It signed in again, with the new password: no refused login was counted.
    assert dovecot.log_path.read_text().count(f"user=<{consultant.username}>") > logins_before
    account = account_of(consultant)
    assert account.auth_failures == 0 and not account.paused


def test_a_wrong_password_is_not_hammered_and_the_right_one_is_picked_up(push_app, dovecot, tmp_path, processes):
    load_crm(push_app, [("contact", "Carol Client", CAROL, "Client Ltd")], tmp_path)
    consultant = make_consultant(push_app, dovecot, tmp_path)
    consultant.import_now()
    account_id = account_of(consultant).id
    right = consultant.password
    dovecot.add_user(consultant.username, right + "-changed-on-the-server")
    processes(push_app)
    watcher = processes(push_app, "--watch")
    wait_until(lambda: "cannot watch (auth_failed)" in watcher.output(), 30, "the refused login")
    time.sleep(3)
    # One refused login counted, like one import run: no retry loop that would get the mailbox locked.
    assert account_of(consultant).auth_failures == 1
    assert live(account_id) is None

    dovecot.add_user(consultant.username, right)
    saved = consultant.cli("mail", "configure", consultant.email, "--host", dovecot.host, "--port",
                           str(dovecot.ssl_port), "--security", "ssl", "--username", consultant.username,
                           "--password-stdin", "--ca-file", str(tmp_path / "ca.pem"), input=right + "\n")
    assert saved.exit_code == 0, saved.output
    wait_until(lambda: live(account_id) is not None, 30, "the watcher to sign in with the saved password")
    consultant.deliver("INBOX", mail(consultant, "Once the password was right"))
    wait_until(lambda: "Once the password was right" in subjects(), 30, "the pushed message")


def test_a_server_without_idle_falls_back_to_polling(push_env, tmp_path, database_url, processes):
    server = DovecotServer(tmp_path / "dovecot-no-idle",
                           imap_capability="IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE NAMESPACE "
                                           "CHILDREN UIDPLUS LIST-EXTENDED SPECIAL-USE")
    server.start()
    app = push_env(tmp_path, database_url, ROLSYNC_POLL_INTERVAL_SECONDS="2")
    try:
        with app.app_context():
            load_crm(app, [("contact", "Carol Client", CAROL, "Client Ltd")], tmp_path)
            consultant = make_consultant(app, server, tmp_path)
            account_id = account_of(consultant).id
            processes(app)
            watcher = processes(app, "--watch")
            wait_until(lambda: "does not offer IDLE" in watcher.output(), 30, "the watcher to find no IDLE")
            consultant.deliver("INBOX", mail(consultant, "Polled, not pushed"))
            wait_until(lambda: "Polled, not pushed" in subjects(), 60, "the schedule to import it")
            assert live(account_id) is None
            db.session.remove()
            db.engine.dispose()
    finally:
        server.stop()


def test_switched_off_mailboxes_and_push_for_all_are_let_go(push_app, dovecot, tmp_path, processes):
    consultant, account_id, _ = ready(push_app, dovecot, tmp_path, processes)
    account = account_of(consultant)
    push.set_mailbox_push(db.session, account, False)
    db.session.commit()
    wait_until(lambda: live(account_id) is None and lease_holder(account_id) is None, 30,
               "the watcher to let the mailbox go")
    push.set_mailbox_push(db.session, account_of(consultant), True)
    db.session.commit()
    wait_until(lambda: live(account_id) is not None, 30, "the watcher to watch it again")
    # A paused mailbox (refused logins, the UIDVALIDITY breaker) is let go like a switched-off one.
    account = account_of(consultant)
    account.paused, account.paused_reason = True, "test"
    db.session.commit()
    wait_until(lambda: live(account_id) is None and lease_holder(account_id) is None, 30,
               "the watcher to let the paused mailbox go")
    account = account_of(consultant)
    account.paused, account.paused_reason = False, None
    db.session.commit()
    wait_until(lambda: live(account_id) is not None, 30, "the watcher to watch it again")
    push.set_push_on(db.session, False)
    db.session.commit()
    wait_until(lambda: live(account_id) is None, 30, "push switched off for every mailbox")


def test_an_oauth_mailbox_is_watched_over_xoauth2_and_a_new_consent_is_followed(
        google, oauth_server, oauth_dovecot, push_env, tmp_path, sqlite_url, processes):
    from tests.test_oauth import Mailbox

    app = push_env(tmp_path, sqlite_url)
    with app.app_context():
        mailbox = Mailbox(app, oauth_dovecot, oauth_server, tmp_path)
        mailbox.connect()
        mailbox.import_now()
        account_id = mailbox.account().id
        processes(app)
        watcher = processes(app, "--watch")
        wait_until(lambda: live(account_id) is not None, 60, "the watcher to be in IDLE over XOAUTH2")
        mailbox.deliver("Pushed over OAuth")
        wait_until(lambda: "Pushed over OAuth" in subjects(), 30, "the pushed message")

        # Connecting again gives a new refresh token: the watcher signs in again with it, no restart.
        tokens = len(oauth_server.tokens_of(mailbox.email))
        mailbox.connect()
        wait_until(lambda: "settings changed; reconnecting" in watcher.output(), 30, "the watcher to notice")
        wait_until(lambda: live(account_id) is not None, 30, "the watcher to be back in IDLE")
        mailbox.deliver("Pushed after reconnecting")
        wait_until(lambda: "Pushed after reconnecting" in subjects(), 30, "the pushed message")
        assert len(oauth_server.tokens_of(mailbox.email)) > tokens
        assert mailbox.account().auth_failures == 0
        db.session.remove()
        db.engine.dispose()
