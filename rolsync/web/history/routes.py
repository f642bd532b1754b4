"""The import history page."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from rolsync import services
from rolsync.extensions import db
from rolsync.history import OUTCOME_LABELS, REASON_LABELS, HistoryFilter, search_history
from rolsync.mail.errors import MailError
from rolsync.models import User
from rolsync.web.history import bp
from rolsync.web.history.forms import HistorySearchForm, ImportOneForm
from rolsync.why import NOT_ON_SERVER, Case, WhyError, explain, import_one


@bp.route("/history")
def index():
    """Every message the import saw (one's own; admins everyone's), searchable by address and subject."""
    form = HistorySearchForm(formdata=request.args)
    user_id = None
    if current_user.is_admin:
        form.user.choices = {"": "Everyone", **{
            str(u.id): u.email for u in db.session.scalars(select(User).order_by(User.email))}}
        user_id = int(form.user.data) if (form.user.data or "").isdigit() else None
    outcome = form.outcome.data if form.outcome.data in OUTCOME_LABELS else None
    page = request.args.get("page", 1, type=int) or 1
    found = search_history(db.session, current_user, HistoryFilter(text=form.q.data or "", outcome=outcome,
                                                                    user_id=user_id), page)
    return render_template("history/index.html", form=form, page=found,
                           args={k: v for k, v in request.args.items() if k != "page"})


@bp.route("/history/why")
def why():
    """Why wasn't this e-mail imported? The ledger first; the mail server when the ledger has nothing."""
    query = (request.args.get("q") or "").strip()
    answer = error = None
    if query:
        timeout = min(current_app.config.get("IMAP_TIMEOUT", 30), 10)
        try:
            answer = explain(db.session, current_user, query, secrets=services.get().secrets,
                             search_server=request.args.get("server") == "1", timeout=timeout)
        except WhyError as exc:
            error = str(exc)
    return render_template("history/why.html", query=query, answer=answer, error=error, cases=Case,
                           not_on_server=NOT_ON_SERVER, import_form=ImportOneForm()), 422 if error else 200


@bp.route("/history/why/import", methods=["POST"])
def import_message():
    """Import this message now, through the same rules and ledger (pressing twice makes one note)."""
    form = ImportOneForm()
    query = request.form.get("q", "")
    account = current_user.mail_account
    if not form.validate_on_submit() or account is None:
        flash("That message could not be imported: the form was incomplete.", "error")
        return redirect(url_for("history.why", q=query))
    svc = services.get()
    try:
        done = import_one(db.session, account, form.folder.data, form.uidvalidity.data, form.uid.data,
                          secrets=svc.secrets, store=svc.documents,
                          timeout=min(current_app.config.get("IMAP_TIMEOUT", 30), 20))
    except WhyError as exc:
        flash(str(exc), "error")
    except MailError as exc:
        flash(f"The mail server could not be reached: {exc.message}", "error")
    else:
        if done.outcome is None:
            flash(f"“{done.subject}” had been imported already; nothing was added twice.", "info")
        else:
            label = OUTCOME_LABELS.get(done.outcome.outcome.value, done.outcome.outcome.value)
            reason = REASON_LABELS.get(done.outcome.reason or "", done.outcome.reason or "")
            flash(f"“{done.subject}”: {label.lower()}" + (f" ({reason})." if reason else "."), "success")
    return redirect(url_for("history.why", q=query))
