"""The first run: a one-time setup token that lets the first admin be created in the browser.

While no admin exists, ``flask users setup-url`` (which ``make run`` calls)
makes a random token, keeps only its SHA-256 in the instance folder (so every
web process of this machine can check it, and a leaked file opens nothing) and
prints the setup address with the token in it, as Jupyter and Grafana do.
The token is claimed by an atomic rename, so two submissions of one token
cannot both create an admin; it is deleted once the admin exists, and setup
is closed for good from then on whatever the token.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync import accounts
from rolsync.models import Role, User

TOKEN_FILE = "setup-token.sha256"
"""The file in the instance folder that holds the hash of the current setup token."""


class SetupError(Exception):
    """Setup refused; `code` is stable, `message` the sentence shown, `hint` what to do."""

    code = "setup_error"
    message = "Setup cannot continue."
    hint: str | None = None

    def __str__(self) -> str:
        return self.message


class SetupClosed(SetupError):
    code = "setup_closed"
    message = "rolsync is already set up: an admin exists."
    hint = "Sign in instead; an admin adds further users under Users."


class SetupTokenInvalid(SetupError):
    code = "setup_token_invalid"
    message = "This setup address is not valid: its token is wrong, or it was already used."
    hint = ("Open the setup address printed on the console where rolsync was started, "
            "or print a new one with `flask users setup-url`.")


@dataclass(frozen=True)
class FirstAdmin:
    """What the setup page asks for."""

    email: str
    password: str
    name: str = ""


def needs_setup(session: Session) -> bool:
    """True while no admin exists: the only time the setup page opens."""
    return session.scalar(select(User.id).where(User.role == Role.ADMIN.value).limit(1)) is None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _path(instance_path: str) -> str:
    return os.path.join(instance_path, TOKEN_FILE)


def issue_token(instance_path: str) -> str:
    """A new token (the previous one dies); only its hash is written, readable by this user alone."""
    token = secrets.token_urlsafe(24)
    os.makedirs(instance_path, exist_ok=True)
    temporary = _path(instance_path) + f".{uuid.uuid4().hex}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as fh:
        fh.write(_hash(token) + "\n")
    os.replace(temporary, _path(instance_path))
    return token


def forget_token(instance_path: str) -> None:
    """Remove the token, if any: setup is over."""
    try:
        os.unlink(_path(instance_path))
    except FileNotFoundError:
        pass


def _read_hash(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read(200).strip() or None
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def token_matches(instance_path: str, token: str | None) -> bool:
    """Whether `token` is the current setup token (compared in constant time)."""
    stored = _read_hash(_path(instance_path))
    if not token or stored is None or len(token) > 200:
        return False
    return hmac.compare_digest(stored, _hash(token))


def create_first_admin(session: Session, instance_path: str, token: str | None, wanted: FirstAdmin) -> User:
    """Create the first admin if `token` is the setup token; the caller commits, then calls `setup_done`.

    Raises SetupClosed once an admin exists, SetupTokenInvalid for a wrong
    or already-claimed token, and accounts.AccountErrors for refused values
    (the token then stays valid, so the person can correct them).
    """
    if not needs_setup(session):
        raise SetupClosed()
    if not token_matches(instance_path, token):
        raise SetupTokenInvalid()
    problems = accounts.new_user_problems(session, wanted.email, wanted.password)
    if problems:
        raise accounts.AccountErrors(problems)
    claimed = _path(instance_path) + f".{uuid.uuid4().hex}.claimed"
    try:
        os.rename(_path(instance_path), claimed)  # atomic: of two submissions only one gets the file
    except FileNotFoundError as exc:
        raise SetupTokenInvalid() from exc
    try:
        return accounts.create_user(session, wanted.email, wanted.password, name=wanted.name, role=Role.ADMIN)
    except accounts.AccountError:
        os.replace(claimed, _path(instance_path))  # the values were refused: the token still stands
        raise
    finally:
        if os.path.exists(claimed):
            os.unlink(claimed)


def setup_done(instance_path: str) -> None:
    """After the admin is committed: no token is left behind."""
    forget_token(instance_path)
