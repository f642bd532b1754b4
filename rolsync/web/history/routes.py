"""The import history page."""
from __future__ import annotations

from flask import render_template, request
from flask_login import current_user
from sqlalchemy import select

from rolsync.extensions import db
from rolsync.history import OUTCOME_LABELS, HistoryFilter, search_history
from rolsync.models import User
from rolsync.web.history import bp
from rolsync.web.history.forms import HistorySearchForm


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
