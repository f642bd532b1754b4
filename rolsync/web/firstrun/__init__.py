"""The first run: the one-time setup page that creates the first admin, and the getting-started steps."""
from flask import Blueprint

bp = Blueprint("firstrun", __name__)

from rolsync.web.firstrun import routes  # noqa: E402,F401  (registers the views)
