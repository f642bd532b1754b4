"""Preferences > Configure Email Importing, Import now with its live state, and the password.

Every view takes an optional user id: admins reach another user's page at
/users/<id>/preferences; everyone else only ever sees their own.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta, timezone

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.datastructures import CombinedMultiDict

from rolsync import jobs, push, reconcile, services
from rolsync.accounts import AccountError, change_own_password, configure_mailbox
from rolsync.crypto import SecretUnreadable
from rolsync.extensions import db
from rolsync.history import REASON_LABELS, last_finished_run, recent_runs
from rolsync.importer import settings_for
from rolsync.mail.errors import Timeout
from rolsync.mail.imap import ConnectionReport, ImapSettings, test_connection
from rolsync.models import ImportRun, MailAccount, User
from rolsync.ratelimit import Limit, RateLimiter
from rolsync.status import JobState, describe_interval, job_state, next_scheduled_run, schedule_interval
from rolsync.web import sessions
from rolsync.web.access import actor, subject_user
from rolsync.web.auth.routes import too_many_attempts
from rolsync.web.preferences import bp
from rolsync.web.preferences.forms import ChangePasswordForm, ImportNowForm, MailboxSettingsForm, sentence
from rolsync.web.preferences.presets import PRESETS, provider_for, with_preset
from rolsync.web.privacy.routes import mailbox_privacy_form
from rolsync.web.setup import password_fingerprint

REPORT_KEY = "connection_report"


def page_url(user: User) -> str:
    """The preferences page of `user`: one's own, or an admin's view of someone else's.

    Never with an anchor: the page would open scrolled past the flash message that says what happened.
    """
    if user.id == current_user.id:
        return url_for("preferences.index")
    return url_for("preferences.index", user_id=user.id)


def _settings_form(account: MailAccount | None) -> MailboxSettingsForm:
    """The form filled from the saved settings; never with the password."""
    if account is None:
        return MailboxSettingsForm(formdata=None)
    return MailboxSettingsForm(formdata=None, data={
        "provider": provider_for(account.host), "host": account.host, "port": account.port,
        "security": account.security, "username": account.username, "ca_pem": account.ca_pem or "",
        "enabled": account.enabled,
    })


def _render(user: User, form: MailboxSettingsForm, status: int = 200):
    """The page, with the last connection test (shown once) and the import's state."""
    account = user.mail_account
    report = session.pop(REPORT_KEY, None)
    if report and report.get("user_id") != user.id:
        report = None
    now = datetime.now(timezone.utc)
    state = job_state(services.get().redis, account.id) if account else JobState("idle")
    live = push.live_state(services.get().redis, services.get().queue.name, account.id) if account else None
    interval = schedule_interval(account, current_app.config) if account else None
    if interval is not None and live == push.LIVE_ALL:
        # Watched in IDLE, Inbox and Sent: the schedule only checks now and then.
        interval = max(interval, timedelta(seconds=current_app.config["PUSH_SAFETY_POLL_SECONDS"]))
    return render_template(
        "preferences/index.html",
        subject=user, account=account, form=form, import_form=ImportNowForm(), report=report,
        presets=PRESETS, job=state, runs=recent_runs(db.session, account.id) if account else [],
        interval=describe_interval(interval) if interval else None, live=live,
        push_on=push.push_on(db.session), last_mail=push.last_mail_at(db.session, account) if account else None,
        next_run=next_scheduled_run(account, current_app.config, now) if account else None,
        own=user.id == current_user.id, test_timeout=_test_timeout(),
        reconciliation=reconcile.report(db.session, account) if account else None, reason_labels=REASON_LABELS,
        privacy_form=mailbox_privacy_form(account) if account else None,
    ), status


def _test_timeout() -> int:
    """How long Test Connection waits for a silent server, in seconds (the page says so while it waits)."""
    config = current_app.config
    return int(min(config.get("IMAP_TIMEOUT", 30), config.get("TEST_CONNECTION_TIMEOUT", 15)))


@bp.route("/preferences", methods=["GET"])
@bp.route("/users/<int:user_id>/preferences", methods=["GET"])
def index(user_id: int | None = None):
    """Preferences, with Configure Email Importing and the import's state."""
    user = subject_user(user_id)
    return _render(user, _settings_form(user.mail_account))


@bp.route("/preferences/mailbox", methods=["POST"])
@bp.route("/users/<int:user_id>/preferences/mailbox", methods=["POST"])
def save_mailbox(user_id: int | None = None):
    """Save Changes and Test Connection: save through accounts.configure_mailbox, then test the saved settings."""
    user = subject_user(user_id)
    form = MailboxSettingsForm(formdata=CombinedMultiDict([request.files, with_preset(request.form)]),
                               data={"provider": "custom"})
    if not form.validate_on_submit():
        return _render(user, form, 422)
    svc = services.get()
    try:
        account = configure_mailbox(db.session, svc.secrets, user, form.to_input(), actor=actor())
    except AccountError as exc:
        db.session.rollback()
        field = getattr(form, exc.field, None) if exc.field else None
        if field is not None:
            field.errors = [*field.errors, sentence(str(exc))]
        else:
            form.form_errors.append(sentence(str(exc)))
        return _render(user, form, 422)
    db.session.commit()
    flash("The mailbox settings were saved.", "success")
    run_connection_test(user, account)
    return redirect(page_url(user))


def run_connection_test(user: User, account: MailAccount) -> None:
    """Test the saved settings (password or OAuth alike) and keep the report for the next page view.

    Limited per user (it connects to a server the user typed) and bounded in
    time as a whole, not only per network step: a request never waits longer
    than TEST_CONNECTION_DEADLINE seconds.
    """
    config = current_app.config
    wait = test_connection_limiter().attempt(str(user.id))
    if wait:
        minutes = max(1, -(-int(wait) // 60))
        session[REPORT_KEY] = {"ok": False, "code": "rate_limited", "user_id": user.id, "warnings": [],
                               "folders": {},
                               "message": f"Too many connection tests. Try again in {minutes} minute"
                                          f"{'s' if minutes != 1 else ''}.", "hint": None}
        return
    timeout = _test_timeout()
    try:
        settings = settings_for(account, services.get().secrets, timeout=timeout)
        report = _within_deadline(settings, config.get("TEST_CONNECTION_DEADLINE", 25))
        result = {"ok": report.ok, "code": report.code, "message": report.message, "hint": report.hint,
                  "warnings": [{"code": w.code, "message": w.message, "hint": w.hint} for w in report.warnings],
                  "folders": report.folders}
    except SecretUnreadable:
        result = {"ok": False, "code": "secret_unreadable", "message": SecretUnreadable.message + ".",
                  "hint": None, "warnings": [], "folders": {}}
    session[REPORT_KEY] = {**result, "user_id": user.id}


def _within_deadline(settings: ImapSettings, deadline: float) -> ConnectionReport:
    """test_connection, given up after `deadline` seconds in all (the thread ends at its own socket timeouts).

    An OAuth mailbox is tested inline: its token is renewed through the
    database session of this request, and its server is the provider's, never
    one a user typed.
    """
    if settings.oauth2_token is not None:
        return test_connection(settings)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-connection")
    try:
        return pool.submit(test_connection, settings).result(timeout=deadline)
    except FutureTimeout:
        error = Timeout(message="The mail server did not finish answering in time.")
        return ConnectionReport(ok=False, code=error.code, message=error.message, hint=error.hint)
    finally:
        pool.shutdown(wait=False)


def test_connection_limiter() -> RateLimiter:
    """Test Connection per user, shared through Redis: it must not become a port scanner."""
    config = current_app.config
    namespace = config.get("RATELIMIT_NAMESPACE") or config["RQ_QUEUE"]
    return RateLimiter(services.get().redis, f"{namespace}:test-connection",
                       Limit(config.get("TEST_CONNECTION_MAX_PER_WINDOW", 10),
                             config.get("TEST_CONNECTION_WINDOW_SECONDS", 600)))


@bp.route("/preferences/test", methods=["POST"])
@bp.route("/users/<int:user_id>/preferences/test", methods=["POST"])
def test_mailbox(user_id: int | None = None):
    """Test Connection of the saved mailbox without changing it (how an OAuth mailbox is tested)."""
    user = subject_user(user_id)
    if not ImportNowForm().validate_on_submit():
        flash("The form has expired; try again.", "error")
    elif user.mail_account is None:
        flash("Save the mailbox settings first.", "error")
    else:
        run_connection_test(user, user.mail_account)
    return redirect(page_url(user))


@bp.route("/preferences/import", methods=["POST"])
@bp.route("/users/<int:user_id>/preferences/import", methods=["POST"])
def import_now(user_id: int | None = None):
    """Import now: queue an import job for the mailbox (never two at once)."""
    user = subject_user(user_id)
    form = ImportNowForm()
    account = user.mail_account
    if not form.validate_on_submit():
        flash("The form has expired; try again.", "error")
    elif account is None:
        flash("Save the mailbox settings first.", "error")
    else:
        try:
            job, created = jobs.enqueue_import(services.get().queue, account.id, manual=True)
        except RedisError:
            current_app.logger.exception("cannot queue an import of account %s", account.id)
            flash("The import queue cannot be reached right now. Try again in a minute.", "error")
        else:
            if created and not account.enabled:
                flash("The import is queued; progress shows below. Automatic sync is off for this mailbox, "
                      "so mail is imported only when you press Import now.", "success")
            elif created:
                flash("The import is queued. Progress shows below.", "success")
            else:
                flash("An import of this mailbox is already queued or running.", "info")
    return redirect(page_url(user))


def current_password_limiter() -> RateLimiter:
    """Tries of the current password on the password page, per user, shared through Redis."""
    config = current_app.config
    namespace = config.get("RATELIMIT_NAMESPACE") or config["RQ_QUEUE"]
    return RateLimiter(services.get().redis, f"{namespace}:current-password",
                       Limit(config.get("LOGIN_MAX_FAILURES", 5), config.get("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)))


def _run_json(run: ImportRun | None) -> dict | None:
    """An ImportRun for the status endpoint."""
    if run is None:
        return None
    return {"started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "counts": run.counts or {}, "error": run.error}


@bp.route("/preferences/import-status.json")
@bp.route("/users/<int:user_id>/import-status.json")
def import_status(user_id: int | None = None):
    """The import's state for the page's progress bar (polled while an import is queued or running)."""
    user = subject_user(user_id)
    account = user.mail_account
    if account is None:
        return {"state": "idle", "active": False, "label": JobState("idle").label, "done": None, "total": None,
                "last_run": None, "last_error": None}
    state = job_state(services.get().redis, account.id)
    return {**state.as_json(), "last_run": _run_json(last_finished_run(db.session, account.id)),
            "last_error": account.last_error}


@bp.route("/preferences/password", methods=["GET", "POST"])
def password():
    """Change one's own password; other sessions of this user end."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        # The current-password check is a password oracle for whoever holds the session: limited like sign-in.
        limiter = current_password_limiter()
        wait = limiter.attempt(str(current_user.id))
        if wait:
            form.form_errors.append(too_many_attempts(wait))
            return render_template("preferences/password.html", form=form), 429
        try:
            change_own_password(db.session, current_user, form.current_password.data, form.new_password.data)
        except AccountError as exc:
            db.session.rollback()
            field = {"current_password": form.current_password, "password": form.new_password}.get(exc.field or "")
            if field is not None:
                field.errors = [*field.errors, sentence(str(exc))]
            else:
                form.form_errors.append(sentence(str(exc)))
            return render_template("preferences/password.html", form=form), 422
        sessions.end_others(db.session, current_user)
        db.session.commit()
        limiter.reset(str(current_user.id))
        session["password_fp"] = password_fingerprint(current_user)  # this session stays signed in
        flash("Your password was changed.", "success")
        return redirect(url_for("preferences.index"))
    status = 422 if form.is_submitted() else 200
    return render_template("preferences/password.html", form=form), status
