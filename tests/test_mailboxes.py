"""Stall alarms and mailbox states, raised and cleared by the real dispatcher tick on a one-second interval."""
from __future__ import annotations

import time

import pytest
from flask import current_app
from sqlalchemy import select

from rolsync import jobs, services
from rolsync.extensions import db
from rolsync.mail.imap import MailboxSession
from rolsync.mailboxes import MailboxState, mailbox_rows, resume_paused, state_counts
from rolsync.models import MailAccount
from tests.mail.builders import build_message
from tests.support.dovecot import free_port

INTERVAL = 1  # second: three intervals pass in a test


@pytest.fixture
def tick(app):
    """One run of the scheduler's dispatcher job, in this process; the imports it queues are thrown away."""
    jobs.use_app(app)

    def run() -> None:
        jobs.dispatch_due_imports()
        services.get().queue.empty()

    yield run
    services.get().queue.empty()


def _account() -> MailAccount:
    db.session.expire_all()
    return db.session.scalar(select(MailAccount))


def _state() -> MailboxState:
    [row] = mailbox_rows(db.session, current_app.config)
    return row.state


def _stalled(consultant) -> list[str]:
    return [w["status"] for w in consultant.warnings() if w["kind"] == "stalled"]


def _short_interval() -> None:
    account = _account()
    account.poll_interval_seconds = INTERVAL
    db.session.commit()


def test_an_unreachable_server_fails_at_once_and_raises_the_alarm_within_three_intervals(consultant, crm, tick):
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="One"))
    consultant.import_now()
    assert _state() is MailboxState.HEALTHY
    _short_interval()
    account = _account()
    good_port, account.port = account.port, free_port()  # nothing listens there: connection refused
    db.session.commit()
    worked_at = time.monotonic()

    assert consultant.cli("mail", "import", consultant.email).exit_code != 0
    tick()
    assert _state() is MailboxState.FAILING, "a failed run shows at once"
    assert _stalled(consultant) == [], "one failure is not yet a stall"

    while time.monotonic() - worked_at < 3 * INTERVAL + 0.5:
        consultant.cli("mail", "import", consultant.email)
        tick()
        time.sleep(0.3)
    assert _stalled(consultant) == ["open"]
    [warning] = [w for w in consultant.warnings() if w["kind"] == "stalled"]
    assert "refused" in warning["detail"] or "connect" in warning["detail"]
    assert _state() is MailboxState.FAILING
    assert state_counts(db.session, current_app.config)["failing"] == 1

    account = _account()
    account.port = good_port
    db.session.commit()
    consultant.import_now()
    tick()
    assert _stalled(consultant) == ["resolved"], "the alarm clears itself when the server answers again"
    assert _state() is MailboxState.HEALTHY


def test_a_mailbox_no_worker_imports_is_stalled_after_three_intervals(consultant, crm, tick):
    consultant.import_now()
    _short_interval()
    tick()
    assert _stalled(consultant) == []
    time.sleep(3 * INTERVAL + 0.2)  # the workers are stopped: nothing imports
    tick()
    assert _stalled(consultant) == ["open"]
    [warning] = [w for w in consultant.warnings() if w["kind"] == "stalled"]
    assert "workers may be stopped" in warning["detail"]
    assert _state() is MailboxState.STALLED
    tick()
    assert _stalled(consultant) == ["open"], "one alarm per mailbox, however many ticks"

    consultant.import_now()  # a worker runs again
    tick()
    assert _stalled(consultant) == ["resolved"]
    assert _state() is MailboxState.HEALTHY


def test_new_mail_left_unread_is_a_stall_even_when_polls_work(consultant, crm, tick, monkeypatch):
    consultant.import_now()
    _short_interval()
    # A server whose SEARCH does not list a new message: every poll works, and the message stays unread.
    monkeypatch.setattr(MailboxSession, "uids_after", lambda self, last_uid: [])
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Missed"))
    started = time.monotonic()
    while time.monotonic() - started < 3 * INTERVAL + 0.5:
        consultant.import_now()
        tick()
        time.sleep(0.3)
    [warning] = [w for w in consultant.warnings() if w["kind"] == "stalled"]
    assert "has not been imported since" in warning["detail"]
    assert _state() is MailboxState.STALLED

    monkeypatch.undo()  # the server lists it again; the next new mail moves UIDNEXT and both are read
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Next"))
    assert consultant.import_now()["imported"] == 2
    tick()
    assert _stalled(consultant) == ["resolved"]


def test_an_oauth_token_that_cannot_be_renewed_raises_the_alarm_at_once(consultant, crm, tick):
    consultant.import_now()
    account = _account()
    account.auth_method = "oauth2"
    account.oauth_provider = "google"
    account.last_error_code = "oauth_provider_error"
    account.last_error = "Google refused to renew the mailbox's access token (temporarily_unavailable)."
    db.session.commit()
    tick()
    [warning] = [w for w in consultant.warnings() if w["kind"] == "stalled"]
    assert "renew" in warning["detail"]
    assert _state() is MailboxState.FAILING


def test_paused_mailboxes_are_resumed_in_bulk_and_never_stall(consultant, crm, tick):
    consultant.import_now()
    _short_interval()
    account = _account()
    account.paused, account.paused_reason = True, "test"
    db.session.commit()
    time.sleep(3 * INTERVAL + 0.2)
    tick()
    assert _state() is MailboxState.PAUSED and _stalled(consultant) == []
    assert resume_paused(db.session, [account.id]) == 1
    assert _account().paused is False
