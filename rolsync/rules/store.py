"""Rule-set versions in the database: the active one, and saving a new one."""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rolsync.labels import setting_label, setting_value
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


def versions(session: Session) -> list[RuleSetVersion]:
    """Every saved version, newest first."""
    return list(session.scalars(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())))


def roll_back(session: Session, version: int, *, author: str) -> RuleSetVersion:
    """Make an earlier version's rules active again, as a new version (history is never rewritten)."""
    old = session.scalar(select(RuleSetVersion).where(RuleSetVersion.version == version))
    if old is None:
        raise LookupError(f"there is no rule set version {version}")
    return save_version(session, old.definition, author=author, comment=f"rolled back to version {version}")


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


def describe_changes(old: dict | None, new: dict) -> list[str]:
    """A readable diff of two rule sets: one line per changed setting or custom rule."""
    old = validate(old) if old is not None else default_rules()
    new = validate(new)
    lines = []
    before = _flatten({k: v for k, v in old.items() if k != "custom_rules"})
    after = _flatten({k: v for k, v in new.items() if k != "custom_rules"})
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"{setting_label(key)}: {setting_value(key, before.get(key))} \u2192 "
                         f"{setting_value(key, after.get(key))}")
    old_rules = {r["name"]: (i, r) for i, r in enumerate(old["custom_rules"])}
    new_rules = {r["name"]: (i, r) for i, r in enumerate(new["custom_rules"])}
    for name in old_rules.keys() - new_rules.keys():
        lines.append(f"custom rule \u201c{name}\u201d removed")
    for name, (position, rule) in new_rules.items():
        if name not in old_rules:
            lines.append(f"custom rule \u201c{name}\u201d added at position {position + 1}")
        elif old_rules[name][1] != rule:
            lines.append(f"custom rule \u201c{name}\u201d changed")
        elif old_rules[name][0] != position:
            lines.append(f"custom rule \u201c{name}\u201d moved to position {position + 1}")
    return lines

