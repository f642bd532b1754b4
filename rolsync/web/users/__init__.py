"""Managing the people who sign in (admins only)."""
from flask import Blueprint

bp = Blueprint("users", __name__)

from rolsync.web.users import routes  # noqa: E402,F401  (registers the views)
