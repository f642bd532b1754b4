"""The Mailboxes page: one row per mailbox, filtered by state, and resuming paused ones in bulk."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from rolsync.extensions import db
from rolsync.mailboxes import MailboxState, mailbox_rows, resume_paused, state_counts
from rolsync.web.access import admin_required
from rolsync.web.mailboxes import bp

STATE_PILLS = {
    MailboxState.HEALTHY: "imported",
    MailboxState.PAUSED: "skipped",
    MailboxState.FAILING: "failed",
    MailboxState.STALLED: "warned",
    MailboxState.NEVER_TESTED: "no",
}


@bp.route("/mailboxes")
@admin_required
def index():
    """Every mailbox, or those in one state (?state=failing)."""
    wanted = request.args.get("state") or None
    if wanted not in {s.value for s in MailboxState}:
        wanted = None
    config = current_app.config
    return render_template("mailboxes/index.html", rows=mailbox_rows(db.session, config, wanted),
                           counts=state_counts(db.session, config), wanted=wanted, states=list(MailboxState),
                           pills=STATE_PILLS)


@bp.route("/mailboxes/resume", methods=["POST"])
@admin_required
def resume():
    """Resume the ticked paused mailboxes; each is polled again from the next tick of the schedule."""
    ids = [int(value) for value in request.form.getlist("account") if value.isdigit()][:10_000]
    resumed = resume_paused(db.session, ids)
    if resumed:
        flash(f"Resumed {resumed} mailbox{'es' if resumed != 1 else ''}; they are imported again from the next "
              "scheduled run.", "success")
    else:
        flash("None of the ticked mailboxes was paused.", "info")
    return redirect(url_for("mailboxes.index", state=request.args.get("state") or None))
