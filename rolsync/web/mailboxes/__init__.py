"""Every user's mailbox at a glance: its state, its last poll and import, and its counts (admins only)."""
from flask import Blueprint

bp = Blueprint("mailboxes", __name__)

from rolsync.web.mailboxes import routes  # noqa: E402,F401  (registers the views)
