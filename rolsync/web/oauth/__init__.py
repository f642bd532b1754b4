"""Connect with Google / Microsoft: the consent round trip, Disconnect, and what templates need to show them."""
from flask import Blueprint

bp = Blueprint("oauth", __name__)

from rolsync.web.oauth import routes  # noqa: E402,F401  (registers the views)
