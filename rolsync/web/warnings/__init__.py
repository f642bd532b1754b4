"""The warning queue: mail that could not be imported, and one-click ways to sort it out."""
from flask import Blueprint

bp = Blueprint("warnings", __name__)

from rolsync.web.warnings import routes  # noqa: E402,F401  (registers the views)
