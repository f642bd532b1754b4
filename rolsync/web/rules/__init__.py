"""Import rules for admins: the rule editor with its preview, and the versions."""
from flask import Blueprint

bp = Blueprint("rules", __name__)

from rolsync.web.rules import routes  # noqa: E402,F401  (registers the views)
