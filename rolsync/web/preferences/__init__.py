"""A user's preferences: mailbox settings with Test Connection, Import now and its progress, the password."""
from flask import Blueprint

bp = Blueprint("preferences", __name__)

from rolsync.web.preferences import live, routes  # noqa: E402,F401  (registers the views)
