"""Privacy: a mailbox's privacy settings (Preferences), the admins' capture policy, and erased people."""
from flask import Blueprint

bp = Blueprint("privacy", __name__)

from rolsync.web.privacy import routes  # noqa: E402,F401  (registers the views)
