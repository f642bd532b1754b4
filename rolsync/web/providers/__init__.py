"""Mail sign-in providers for admins: rolsync's app registration at Google and Microsoft."""
from flask import Blueprint

bp = Blueprint("providers", __name__)

from rolsync.web.providers import routes  # noqa: E402,F401  (registers the views)
