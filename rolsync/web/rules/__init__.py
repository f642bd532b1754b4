"""Import rules for admins (the editor arrives with issue 3; this is its place in the panel)."""
from flask import Blueprint

bp = Blueprint("rules", __name__)

from rolsync.web.rules import routes  # noqa: E402,F401  (registers the views)
