"""Server-side sessions: the cookie names a row, and the row must exist, be fresh and not too old.

Flask's signed cookie alone cannot be revoked: a copy taken before sign-out
kept working. Each sign-in now makes a `UserSession` row; the cookie holds a
random token whose SHA-256 is the row's key. Signing out deletes the row, so
every copy of the cookie is refused from then on. A session also ends after
`SESSION_IDLE_MINUTES` without a request and `SESSION_MAX_HOURS` after sign-in.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from flask import current_app, session
from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from rolsync.models import User, UserSession, utcnow

SESSION_KEY = "sid"
TOUCH_EVERY = timedelta(seconds=60)
"""How stale last_seen_at may get before a request writes it again: a write per minute, not per request."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return (timedelta(minutes=config.get("SESSION_IDLE_MINUTES", 120)),
            timedelta(hours=config.get("SESSION_MAX_HOURS", 12)))


def sign_in(db_session: Session, user: User) -> None:
    """Sign `user` in with a fresh cookie session and its server-side row (the sign-in and setup pages)."""
    from flask_login import login_user

    from rolsync.web.setup import password_fingerprint  # setup imports this module

    session.clear()  # nothing carried over from before sign-in
    login_user(user)
    start(db_session, user)
    session["password_fp"] = password_fingerprint(user)
    user.last_login_at = utcnow()
    db_session.commit()


def start(db_session: Session, user: User) -> None:
    """A new server-side session for `user`, named in the (already cleared) cookie session."""
    idle, lifetime = _limits()
    now = utcnow()
    # The user's ended sessions go now: the table holds only what may still be used.
    db_session.execute(delete(UserSession).where(
        UserSession.user_id == user.id,
        or_(UserSession.last_seen_at < now - idle, UserSession.created_at < now - lifetime)))
    token = secrets.token_urlsafe(32)
    db_session.add(UserSession(token_hash=_hash(token), user_id=user.id, created_at=now, last_seen_at=now))
    session[SESSION_KEY] = token


def is_valid(db_session: Session, user: User) -> bool:
    """Whether the cookie's session is still open for `user`; refreshes its idle clock now and then."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        return False
    row = db_session.get(UserSession, _hash(token))
    if row is None or row.user_id != user.id:
        return False
    idle, lifetime = _limits()
    now = utcnow()
    if now - _aware(row.last_seen_at) > idle or now - _aware(row.created_at) > lifetime:
        db_session.delete(row)
        db_session.commit()
        return False
    if now - _aware(row.last_seen_at) > TOUCH_EVERY:
        row.last_seen_at = now
        db_session.commit()
    return True


def end(db_session: Session) -> None:
    """End the cookie's session on the server: every copy of the cookie is refused afterwards."""
    token = session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        db_session.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))


def end_others(db_session: Session, user: User) -> None:
    """End every session of `user` but this request's own (after a password change or reset)."""
    token = session.get(SESSION_KEY)
    keep = _hash(token) if isinstance(token, str) and token else ""
    db_session.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.token_hash != keep))
