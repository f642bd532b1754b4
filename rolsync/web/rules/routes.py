"""The Import rules page: a placeholder until the rule editor (issue 3) lands."""
from __future__ import annotations

from flask import render_template

from rolsync.extensions import db
from rolsync.rules.store import active_version
from rolsync.web.access import admin_required
from rolsync.web.rules import bp


@bp.route("/rules")
@admin_required
def index():
    """Import rules (admins): the active version, until the rule editor arrives."""
    return render_template("rules/index.html", version=active_version(db.session))
