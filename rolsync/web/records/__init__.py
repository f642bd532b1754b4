"""Contacts and candidates: search, a record's notes and documents, and its e-mail addresses."""
from flask import Blueprint

bp = Blueprint("records", __name__)

from rolsync.web.records import routes  # noqa: E402,F401  (registers the views)
