"""New people: applications from addresses no record has, made into candidates or set aside."""
from flask import Blueprint

bp = Blueprint("intake", __name__)

from rolsync.web.intake import past_mail, routes  # noqa: E402, F401  (registers the views)
