"""Warnings: list and filter; Attach to this record, Attach to all, Retry, Dismiss (one or many), Reopen."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from rolsync import services
from rolsync import warnings as queue
from rolsync.extensions import db
from rolsync.models import User, WarningStatus
from rolsync.web.access import actor
from rolsync.web.downloads import send_stored
from rolsync.web.warnings import bp
from rolsync.web.warnings.forms import ActionForm, AttachForm, WarningFilterForm


def _filters() -> tuple[WarningFilterForm, queue.WarningFilter, int]:
    """The filter form from the query string, as a plain WarningFilter and a page number."""
    form = WarningFilterForm(formdata=request.args)
    form.kind.choices = {"": "Any kind", **{k: queue.kind_label(k)
                                            for k in queue.kinds_present(db.session, current_user)}}
    user_id = None
    if current_user.is_admin:
        form.user.choices = {"": "Everyone", **{
            str(u.id): u.email for u in db.session.scalars(select(User).order_by(User.email))}}
        chosen = form.user.data or ""
        user_id = int(chosen) if chosen.isdigit() and len(chosen) < 10 else None
    status = form.status.data or WarningStatus.OPEN.value
    wanted = queue.WarningFilter(kind=form.kind.data or None, status=None if status == "all" else status,
                                 user_id=user_id, text=form.q.data or "")
    page = request.args.get("page", 1, type=int) or 1
    return form, wanted, page


def _back() -> str:
    """Back to the list as it was filtered (the forms post the query string along)."""
    query = request.form.get("next_query", "")
    # Only what a query string may hold: a CR or LF in a Location header would be a 500 after the action.
    safe = query and len(query) <= 2000 and query.isascii() and query.isprintable() and " " not in query
    return url_for("warnings.index") + (f"?{query}" if safe else "")


@bp.route("/warnings")
def index():
    """One row per warning: subject, address, sender, date, snippet; the actions."""
    form, wanted, page = _filters()
    found = queue.search_warnings(db.session, current_user, wanted, page)
    return render_template(
        "warnings/index.html", form=form, page=found, filtered=wanted, action_form=ActionForm(),
        owners=queue.current_owners(db.session, found.items), kind_label=queue.kind_label,
        reached=queue.records_reached(db.session, found.items),
        can_retry=queue.can_retry, can_attach=queue.can_attach, query_string=request.query_string.decode("ascii", "replace"),
        args={k: v for k, v in request.args.items() if k != "page"},
    )


def _warning(warning_id: int, *, for_update: bool = False):
    """The warning, if this person may see it; else 404 (another user's warnings do not exist for them)."""
    try:
        return queue.get_warning(db.session, current_user, warning_id, for_update=for_update)
    except queue.WarningNotFound:
        abort(404)


def _action_failed(exc: Exception):
    """Undo, say why, and go back to the list."""
    db.session.rollback()
    flash(str(exc), "error")
    return redirect(_back())


@bp.route("/warnings/<int:warning_id>/attach", methods=["POST"])
def attach(warning_id: int):
    """Attach to this record: import the note and documents onto the chosen record now."""
    warning = _warning(warning_id, for_update=True)
    form = AttachForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        created = queue.attach(db.session, services.get().documents, warning, actor=actor(),
                               record=form.record_key())
    except queue.WarningActionError as exc:
        return _action_failed(exc)
    db.session.commit()
    name = next((r["name"] for r in warning.records if (r["kind"], r["id"]) == form.record_key()), "the record")
    flash(f"The message is now a note on {name}." if created else f"{name} already had this message.", "success")
    return redirect(_back())


@bp.route("/warnings/<int:warning_id>/attach-all", methods=["POST"])
def attach_all(warning_id: int):
    """Attach to all: every record that shares the address gets the note."""
    warning = _warning(warning_id, for_update=True)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        created = queue.attach(db.session, services.get().documents, warning, actor=actor())
    except queue.WarningActionError as exc:
        return _action_failed(exc)
    db.session.commit()
    flash(f"The message was added to {created} record{'s' if created != 1 else ''}.", "success")
    return redirect(_back())


@bp.route("/warnings/<int:warning_id>/retry", methods=["POST"])
def retry(warning_id: int):
    """Decide the kept message again with today's rules and records (after the records were fixed)."""
    warning = _warning(warning_id, for_update=True)
    if not ActionForm().validate_on_submit():
        abort(400)
    svc = services.get()
    try:
        result = queue.retry(db.session, svc.documents, warning, actor=actor())
    except queue.WarningActionError as exc:
        return _action_failed(exc)
    db.session.commit()
    if result.resolved:
        names = ", ".join(r.name for r in result.records)
        flash(f"Imported: the message is now a note on {names}.", "success")
    else:
        flash(result.explanation, "error" if not result.notes_created else "info")
    return redirect(_back())


@bp.route("/warnings/<int:warning_id>/dismiss", methods=["POST"])
def dismiss(warning_id: int):
    """Dismiss: the message stays out of the CRM and the warning leaves the queue."""
    warning = _warning(warning_id, for_update=True)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        queue.dismiss(warning, actor=actor())
    except queue.WarningActionError as exc:
        return _action_failed(exc)
    db.session.commit()
    flash("The warning was dismissed.", "success")
    return redirect(_back())


@bp.route("/warnings/<int:warning_id>/reopen", methods=["POST"])
def reopen(warning_id: int):
    """Put a dismissed warning back in the queue."""
    warning = _warning(warning_id, for_update=True)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        queue.reopen(warning)
    except queue.WarningActionError as exc:
        return _action_failed(exc)
    db.session.commit()
    flash("The warning is open again.", "success")
    return redirect(_back())


@bp.route("/warnings/dismiss", methods=["POST"])
def dismiss_selected():
    """Bulk dismiss: the ticked warnings the person may see."""
    if not ActionForm().validate_on_submit():
        abort(400)
    ids = [int(i) for i in request.form.getlist("warning_ids") if i.isdigit()]
    if not ids:
        flash("Tick the warnings to dismiss first.", "error")
        return redirect(_back())
    count = queue.dismiss_many(db.session, current_user, ids, actor=actor())
    db.session.commit()
    flash(f"{count} warning{'s' if count != 1 else ''} dismissed.", "success")
    return redirect(_back())


@bp.route("/warnings/retry", methods=["POST"])
def retry_selected():
    """Bulk retry: decide the ticked warnings' messages again (after fixing a shared address, say)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    ids = [int(i) for i in request.form.getlist("warning_ids") if i.isdigit()]
    if not ids:
        flash("Tick the warnings to retry first.", "error")
        return redirect(_back())
    outcome = queue.retry_many(db.session, services.get().documents, current_user, ids, actor=actor())
    db.session.commit()
    if not outcome.tried:
        flash("None of the ticked warnings can be retried: they keep no message to decide again.", "error")
        return redirect(_back())
    names = ", ".join(r.name for r in outcome.records[:5]) + (" and others" if len(outcome.records) > 5 else "")
    imported = (f"{outcome.resolved} of {outcome.tried} imported" + (f" (now notes on {names})" if names else "")
                if outcome.resolved else f"None of the {outcome.tried} could be imported yet")
    still = f". Still open: {outcome.explanations[0]}" if outcome.explanations else "."
    more = f" ({len(outcome.explanations) - 1} more like it)" if len(outcome.explanations) > 1 else ""
    flash(imported + still + more, "success" if outcome.resolved == outcome.tried else "info")
    return redirect(_back())


@bp.route("/warnings/<int:warning_id>/message.eml")
def original(warning_id: int):
    """The original message as a file, to open in a mail program (never shown in the page)."""
    warning = _warning(warning_id)
    store = services.get().documents
    if not warning.raw_sha256 or not store.exists(warning.raw_sha256):
        abort(404)
    response = send_stored(store, warning.raw_sha256, mimetype="message/rfc822",
                           download_name=f"warning-{warning.id}.eml")
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Mail content: never kept by a browser's or a proxy's cache.
    response.headers["Cache-Control"] = "no-store, private"
    return response
