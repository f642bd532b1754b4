"""Import history: every message the import decided on, and how."""
from flask import Blueprint

bp = Blueprint("history", __name__)

from rolsync.web.history import routes  # noqa: E402,F401  (registers the views)
