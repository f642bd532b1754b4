"""New people: the list; Create candidate, Attach to an existing record, Not a candidate (one or many)."""
from __future__ import annotations

import io
import logging

from flask import (
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from wtforms import StringField
from wtforms.validators import InputRequired, Regexp

from rolsync import backfill, intake, resources
from rolsync.extensions import db
from rolsync.web.access import actor
from rolsync.web.intake import bp

log = logging.getLogger(__name__)


class ActionForm(FlaskForm):
    """A button that changes something: it carries only the CSRF token."""


class AttachForm(FlaskForm):
    # The button's own value names the record: "candidate:12".
    record = StringField(validators=[InputRequired(), Regexp(r"^(contact|candidate):\d{1,18}$")])


@bp.before_app_request
def _forget_count() -> None:
    # A test or CLI command reuses one app context for many requests, and with it `g`.
    g.pop("new_people", None)


@bp.app_context_processor
def navigation() -> dict:
    """The count next to New people in the navigation."""
    if not current_user.is_authenticated:
        return {}
    if "new_people" not in g:
        g.new_people = intake.open_count(db.session, current_user)
    return {"nav_new_people": g.new_people}


def _item(item_id: int, *, for_update: bool = False):
    """The item, if this person may see it; else 404."""
    try:
        return intake.get_item(db.session, current_user, item_id, for_update=for_update)
    except intake.IntakeNotFound:
        abort(404)


def _plural(count: int, one: str, many: str) -> str:
    """'1 message', '3 messages'."""
    return f"{count} {one if count == 1 else many}"


@bp.route("/new-people")
def index():
    """One row per application from a new person, newest first; Attach shows its search under the row."""
    page = intake.open_items(db.session, current_user, request.args.get("page", 1, type=int) or 1)
    attach_id = request.args.get("attach", type=int)
    query = (request.args.get("q") or "")[:200]
    choices = intake.find_existing(db.session, query) if attach_id and query else []
    return render_template("intake/index.html", page=page, action_form=ActionForm(), attach_id=attach_id,
                           query=query, choices=choices, item_name=intake.item_name,
                           sent=intake.messages_from(db.session, current_user, page.items),
                           item_attachments=intake.item_attachments)


def _look_back(item, record) -> None:
    """Queue Import past e-mails of the new record from the mailbox the application came to.

    Mail from the person that was not held (a follow-up without a CV, under
    `no_match: skip`) is still on the server; the ledger keeps what is already
    on the record from being added twice.
    """
    account = item.user.mail_account if item.user else None
    if account is None:
        return
    try:
        backfill.enqueue_backfill(resources.get().queue, account.id, record.kind.value, record.id, None)
    except RedisError:
        log.warning("could not queue the past e-mails of %s %s", record.kind.value, record.id, exc_info=True)


@bp.route("/new-people/<int:item_id>/create", methods=["POST"])
def create(item_id: int):
    """Create candidate: the name and address as edited; the held mail of the address lands on it now."""
    item = _item(item_id, for_update=True)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        outcome = intake.create_candidate(db.session, resources.get().documents, item,
                                          name=request.form.get("name", "")[:400],
                                          email=request.form.get("email", "")[:400], actor=actor(),
                                          viewer=current_user)
    except intake.IntakeError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("intake.index"))
    db.session.commit()
    record = outcome.record
    _look_back(item, record)
    flash(f"{record.name} is now a candidate, with {_plural(outcome.notes_created, 'message', 'messages')}. "
          "Older mail with the address is being looked for in the mailbox.", "success")
    return redirect(url_for("records.show", kind=record.kind.value, record_id=record.id))


@bp.route("/new-people/<int:item_id>/attach", methods=["POST"])
def attach(item_id: int):
    """Attach to an existing record: the address joins the record, and its held mail with it."""
    item = _item(item_id, for_update=True)
    form = AttachForm()
    if not form.validate_on_submit():
        abort(400)
    kind, record_id = form.record.data.split(":")
    try:
        outcome = intake.attach_to_record(db.session, resources.get().documents, item, kind=kind,
                                          record_id=int(record_id), actor=actor(), viewer=current_user)
    except intake.IntakeError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("intake.index"))
    db.session.commit()
    record = outcome.record
    _look_back(item, record)
    flash(f"{item.address} was added to {record.name}, with "
          f"{_plural(outcome.notes_created, 'message', 'messages')}.", "success")
    return redirect(url_for("intake.index"))


@bp.route("/new-people/<int:item_id>/ignore", methods=["POST"])
def ignore(item_id: int):
    """Not a candidate: mail from this address is never imported, until an admin unblocks it."""
    _item(item_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return _ignore([item_id])


def _ignore(ids: list[int]):
    """Not a candidate for these items: block their senders, close their items, say so."""
    closed, blocked = intake.not_a_candidate(db.session, current_user, ids, actor=actor())
    db.session.commit()
    if blocked:
        flash(f"Mail from {', '.join(blocked[:5])}{' and others' if len(blocked) > 5 else ''} will not be "
              "imported. An admin can undo this under Import rules, Never import mail from or to.", "success")
    elif closed:
        flash(f"{_plural(closed, 'person was', 'people were')} set aside.", "success")
    return redirect(url_for("intake.index"))


@bp.route("/new-people/selected", methods=["POST"])
def selected():
    """The bulk actions: Create candidates or Not candidates, for the ticked rows."""
    if not ActionForm().validate_on_submit():
        abort(400)
    ids = [int(i) for i in request.form.getlist("item_ids") if i.isdigit()][:intake.MAX_BULK]
    if not ids:
        flash("Tick at least one person first.", "error")
        return redirect(url_for("intake.index"))
    if request.form.get("action") == "ignore":
        return _ignore(ids)
    try:
        made, notes = intake.create_candidates(db.session, resources.get().documents, current_user, ids,
                                               actor=actor())
    except intake.IntakeError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("intake.index"))
    db.session.commit()
    flash(f"{_plural(made, 'candidate', 'candidates')} created, with "
          f"{_plural(notes, 'message', 'messages')}.", "success")
    return redirect(url_for("intake.index"))


@bp.route("/new-people/<int:item_id>/attachments/<int:index>")
def attachment(item_id: int, index: int):
    """One of the application's attachments (a CV), from the kept message."""
    item = _item(item_id)
    try:
        found = intake.attachment_of(resources.get().documents, item, index)
    except intake.IntakeNotFound:
        abort(404)
    return send_file(io.BytesIO(found.data), mimetype="application/octet-stream", as_attachment=True,
                     download_name=found.filename or "attachment", max_age=0)
