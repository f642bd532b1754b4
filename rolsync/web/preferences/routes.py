"""Preferences > Configure Email Importing, Import now with its live state, and the password.

Every view takes an optional user id: admins reach another user's page at
/users/<id>/preferences; everyone else only ever sees their own.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.datastructures import CombinedMultiDict

from rolsync import jobs, resources
from rolsync.accounts import AccountError, change_own_password, configure_mailbox
from rolsync.crypto import SecretUnreadable
from rolsync.extensions import db
from rolsync.history import last_finished_run, recent_runs
from rolsync.job_state import JobState, job_state
from rolsync.mail.imap import test_connection
from rolsync.mailbox_settings import settings_for
from rolsync.models import ImportRun, MailAccount, User
from rolsync.schedule import describe_interval, next_scheduled_run, schedule_interval
from rolsync.web.access import subject_user
from rolsync.web.preferences import bp
from rolsync.web.preferences.forms import ChangePasswordForm, ImportNowForm, MailboxSettingsForm, sentence
from rolsync.web.preferences.presets import PRESETS, provider_for, with_preset
from rolsync.web.security import password_fingerprint

REPORT_KEY = "connection_report"


def page_url(user: User, anchor: str = "") -> str:
    """The preferences page of `user`: one's own, or an admin's view of someone else's."""
    if user.id == current_user.id:
        url = url_for("preferences.index")
    else:
        url = url_for("preferences.index", user_id=user.id)
    return url + (f"#{anchor}" if anchor else "")


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
    default_seconds = current_app.config["POLL_INTERVAL_SECONDS"]
    state = job_state(resources.get().redis, account.id) if account else JobState("idle")
    return render_template(
        "preferences/index.html",
        subject=user, account=account, form=form, import_form=ImportNowForm(), report=report,
        presets=PRESETS, job=state, runs=recent_runs(db.session, account.id) if account else [],
        interval=describe_interval(schedule_interval(account, default_seconds)) if account else None,
        next_run=next_scheduled_run(account, default_seconds, now) if account else None,
        own=user.id == current_user.id,
    ), status


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
    svc = resources.get()
    try:
        account = configure_mailbox(db.session, svc.secrets, user, form.to_input())
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
    return redirect(page_url(user, "email"))


def run_connection_test(user: User, account: MailAccount) -> None:
    """Test the saved settings (password or OAuth alike) and keep the report for the next page view."""
    timeout = min(current_app.config.get("IMAP_TIMEOUT", 30), current_app.config.get("TEST_CONNECTION_TIMEOUT", 15))
    try:
        svc = resources.get()
        report = test_connection(settings_for(account, svc.secrets, svc.oauth_providers, timeout=timeout))
        result = {"ok": report.ok, "code": report.code, "message": report.message, "hint": report.hint,
                  "warnings": [{"code": w.code, "message": w.message, "hint": w.hint} for w in report.warnings],
                  "folders": report.folders}
    except SecretUnreadable:
        result = {"ok": False, "code": "secret_unreadable", "message": SecretUnreadable.message + ".",
                  "hint": None, "warnings": [], "folders": {}}
    session[REPORT_KEY] = {**result, "user_id": user.id}


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
    return redirect(page_url(user, "email"))


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
    elif not account.enabled:
        flash("Automatic sync is switched off for this mailbox. Switch it on and save, then import.", "error")
    else:
        try:
            job, created = jobs.enqueue_import(resources.get().queue, account.id)
        except RedisError:
            current_app.logger.exception("cannot queue an import of account %s", account.id)
            flash("The import queue cannot be reached right now. Try again in a minute.", "error")
        else:
            if created:
                flash("The import is queued. Progress shows below.", "success")
            else:
                flash("An import of this mailbox is already queued or running.", "info")
    return redirect(page_url(user, "import"))


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
    state = job_state(resources.get().redis, account.id)
    return {**state.as_json(), "last_run": _run_json(last_finished_run(db.session, account.id)),
            "last_error": account.last_error}


@bp.route("/preferences/password", methods=["GET", "POST"])
def password():
    """Change one's own password; other sessions of this user end."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
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
        db.session.commit()
        session["password_fp"] = password_fingerprint(current_user)  # this session stays signed in
        flash("Your password was changed.", "success")
        return redirect(url_for("preferences.index"))
    status = 422 if form.is_submitted() else 200
    return render_template("preferences/password.html", form=form), status
