"""Import past e-mails on a record page: a background search of the consultant's own mailbox, with progress."""
from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from rolsync import backfill, resources
from rolsync.extensions import db
from rolsync.models import Candidate, Contact
from rolsync.records import RecordNotFound, get_record
from rolsync.web.intake import bp


def _record(kind: str, record_id: int) -> Contact | Candidate:
    try:
        return get_record(db.session, kind, record_id)
    except RecordNotFound:
        abort(404)


def _state(record: Contact | Candidate) -> backfill.BackfillState | None:
    account = current_user.mail_account
    if account is None:
        return None
    svc = resources.get()
    return backfill.backfill_state(svc.redis, svc.queue.name, account.id, record.kind.value, record.id)


@bp.app_template_global("past_mail")
def past_mail(record: Contact | Candidate) -> dict:
    """What the record page's Import past e-mails card shows: the person's mailbox and the job's state."""
    return {"account": current_user.mail_account, "job": _state(record)}


@bp.app_template_global("first_run_plan")
def first_run_plan(account) -> list[str]:
    """For Preferences: what the first import of this mailbox will take, before it starts."""
    return backfill.first_run_plan(db.session, account)


@bp.route("/records/<kind>/<int:record_id>/past-mail", methods=["POST"])
def start(kind: str, record_id: int):
    """Import past e-mails: queue the search of the person's mailbox for the record's addresses."""
    from rolsync.web.intake.routes import ActionForm

    record = _record(kind, record_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    back = url_for("records.show", kind=kind, record_id=record_id) + "#import"
    account = current_user.mail_account
    if account is None:
        flash("Save your mailbox settings in Preferences first: the past e-mails are searched in your mailbox.",
              "error")
        return redirect(back)
    if not record.emails:
        flash(f"{record.name} has no e-mail address to search for. Add one first.", "error")
        return redirect(back)
    since = None
    text = (request.form.get("since") or "").strip()
    if text:
        try:
            since = date.fromisoformat(text)
        except ValueError:
            flash("Enter the day as a date, such as 2024-03-01, or leave it empty for all past mail.", "error")
            return redirect(back)
    _job, created = backfill.enqueue_backfill(resources.get().queue, account.id, kind, record_id, since)
    flash("Searching your mailbox for the past e-mails; progress shows below." if created
          else "The search for past e-mails is already under way.", "success")
    return redirect(back)


@bp.route("/records/<kind>/<int:record_id>/past-mail.json")
def status(kind: str, record_id: int):
    """The backfill's state for the progress bar (polled while it is queued or running)."""
    record = _record(kind, record_id)
    state = _state(record)
    return state.as_json() if state else backfill.BackfillState("idle").as_json()
