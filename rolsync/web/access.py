"""Who may see what: admin-only views, and the user whose data a page shows."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user

from rolsync.extensions import db
from rolsync.models import User


def admin_required(view):
    """Only admins; everyone else gets 403 (signed-out visitors never get this far)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def subject_user(user_id: int | None) -> User:
    """The user a page is about: oneself, or (admins only) anyone; 403 for another user's data, 404 if none."""
    if user_id is None or user_id == current_user.id:
        return current_user._get_current_object()
    if not current_user.is_admin:
        abort(403)
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def actor() -> str:
    """How the audit trail names the person acting."""
    return current_user.email
