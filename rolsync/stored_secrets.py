"""Every secret rolsync stores encrypted: counting them, and re-encrypting them under the newest key."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from rolsync.crypto import SecretBox, SecretUnreadable
from rolsync.models import MailAccount, OAuthClient

_COLUMNS = (
    (MailAccount, "password_encrypted"),
    (MailAccount, "oauth_refresh_token_encrypted"),
    (MailAccount, "oauth_access_token_encrypted"),
    (OAuthClient, "client_secret_encrypted"),
)
"""(model, column) of every encrypted value: keep in step with models.py."""


def count_stored(session: Session, tables: set[str] | None = None) -> int:
    """How many encrypted values the database holds (in `tables` only, when given: an older schema)."""
    total = 0
    for model, column in _COLUMNS:
        if tables is not None and model.__tablename__ not in tables:
            continue
        total += session.scalar(select(func.count()).select_from(model).where(
            getattr(model, column).is_not(None))) or 0
    return total


@dataclass
class RotationResult:
    rotated: int = 0
    unreadable: int = 0


def _rows(session: Session) -> Iterator[tuple[object, str]]:
    for model in (MailAccount, OAuthClient):
        columns = [column for m, column in _COLUMNS if m is model]
        condition = or_(*(getattr(model, column).is_not(None) for column in columns))
        for row in session.scalars(select(model).where(condition)):
            for column in columns:
                if getattr(row, column) is not None:
                    yield row, column


def rotate_all(session: Session, secrets: SecretBox) -> RotationResult:
    """Re-encrypt every stored secret with the newest key, so the older keys can be retired.

    A value no configured key can read is left as it is and counted: it was
    lost with its key and must be entered again (the panel says so).
    """
    result = RotationResult()
    for row, column in _rows(session):
        try:
            setattr(row, column, secrets.rotate(getattr(row, column)))
        except SecretUnreadable:
            result.unreadable += 1
        else:
            result.rotated += 1
    session.flush()
    return result
