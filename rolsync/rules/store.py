"""Rule-set versions in the database: the active one, and saving a new one."""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rolsync.models import RuleSetVersion
from rolsync.rules.definition import default_rules, validate
from rolsync.rules.engine import CompiledRules


def active_version(session: Session) -> RuleSetVersion | None:
    return session.scalar(select(RuleSetVersion).where(RuleSetVersion.active.is_(True)))


def active_rules(session: Session) -> CompiledRules:
    """The rules the import uses now: the active version, else the seed's defaults."""
    version = active_version(session)
    if version is None:
        return CompiledRules(default_rules(), version=None)
    return CompiledRules(version.definition, version=version.version)


def save_version(session: Session, definition: object, *, author: str = "", comment: str = "") -> RuleSetVersion:
    """Validate and store a rule set as the new active version.

    Raises RuleSetInvalid before touching the database, so a bad rule set
    changes nothing. The caller commits.
    """
    clean = validate(definition)
    latest = session.scalar(select(func.max(RuleSetVersion.version))) or 0
    session.execute(update(RuleSetVersion).where(RuleSetVersion.active.is_(True)).values(active=False))
    version = RuleSetVersion(version=latest + 1, definition=clean, active=True, author=author, comment=comment)
    session.add(version)
    session.flush()
    return version
