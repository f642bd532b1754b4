"""The dashboard: the state of the mailboxes and what the import has done lately."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from rolsync.web.dashboard import routes  # noqa: E402,F401  (registers the views)
