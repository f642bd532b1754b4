"""Admins switch push (live import over IMAP IDLE) on or off, for one mailbox or for every mailbox."""
from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_login import current_user

from rolsync import push
from rolsync.extensions import db
from rolsync.web.access import subject_user
from rolsync.web.preferences import bp
from rolsync.web.preferences.forms import ImportNowForm
from rolsync.web.preferences.routes import page_url


def _wanted_on() -> bool:
    return request.form.get("push") == "on"


@bp.route("/users/<int:user_id>/preferences/push", methods=["POST"])
@bp.route("/preferences/push", methods=["POST"])
def mailbox_push(user_id: int | None = None):
    """Live import on or off for this user's mailbox (admins)."""
    if not current_user.is_admin:
        abort(403)
    user = subject_user(user_id)
    if not ImportNowForm().validate_on_submit():
        flash("The form has expired; try again.", "error")
    elif user.mail_account is None:
        flash("Save the mailbox settings first.", "error")
    else:
        push.set_mailbox_push(db.session, user.mail_account, _wanted_on())
        db.session.commit()
        flash("Live import is on for this mailbox." if _wanted_on() else
              "Live import is off for this mailbox: it is imported on the schedule.", "success")
    return redirect(page_url(user))


@bp.route("/users/<int:user_id>/preferences/push-all", methods=["POST"])
@bp.route("/preferences/push-all", methods=["POST"])
def all_push(user_id: int | None = None):
    """Live import on or off for every mailbox (admins)."""
    if not current_user.is_admin:
        abort(403)
    user = subject_user(user_id)
    if not ImportNowForm().validate_on_submit():
        flash("The form has expired; try again.", "error")
    else:
        push.set_push_on(db.session, _wanted_on())
        db.session.commit()
        flash("Live import is on for every mailbox that allows it." if _wanted_on() else
              "Live import is off for every mailbox: all are imported on the schedule.", "success")
    return redirect(page_url(user))
