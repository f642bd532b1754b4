"""Users and their mailbox settings: validation shared by the CLI and the panel."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.crypto import SecretBox
from rolsync.mail.parse import normalise_address
from rolsync.models import MailAccount, Role, User

MIN_PASSWORD_LENGTH = 8
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class AccountError(ValueError):
    """A value was refused; the message says which and why."""


def create_user(session: Session, email: str, password: str, *, name: str = "", role: Role = Role.USER) -> User:
    address = normalise_address(email)
    if not address:
        raise AccountError(f"{email!r} is not an e-mail address")
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise AccountError(f"a user with the e-mail {address} already exists")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = User(email=address, name=name.strip(), role=role.value)
    user.set_password(password)
    session.add(user)
    session.flush()
    return user


@dataclass
class MailboxForm:
    """Mailbox settings as a person typed them."""

    host: str
    port: int
    security: str
    username: str
    password: str | None = field(default=None, repr=False)  # None keeps the stored one
    ca_pem: str | None = None
    enabled: bool = True


def validate_ca_pem(pem: str) -> str:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("ascii", "replace"))
    except ValueError as exc:
        raise AccountError("the CA certificate must be a PEM file (-----BEGIN CERTIFICATE-----)") from exc
    if not certificates:
        raise AccountError("the CA certificate file holds no certificate")
    return pem.strip() + "\n"


def configure_mailbox(session: Session, secrets: SecretBox, user: User, form: MailboxForm) -> MailAccount:
    """Validate and save a user's mailbox settings; the password only encrypted."""
    host = form.host.strip().lower()
    if not _HOSTNAME.match(host):
        raise AccountError(f"{form.host!r} is not a server name such as imap.example.com")
    if not 1 <= int(form.port) <= 65535:
        raise AccountError("the port must be a number from 1 to 65535 (993 for SSL, 143 for STARTTLS)")
    if form.security not in ("ssl", "starttls"):
        raise AccountError("security must be ssl or starttls")
    username = form.username.strip()
    if not username:
        raise AccountError("the username is missing (usually your full e-mail address)")
    ca_pem = validate_ca_pem(form.ca_pem) if form.ca_pem and form.ca_pem.strip() else None

    account = user.mail_account
    if account is None:
        if not form.password:
            raise AccountError("the password is missing")
        account = MailAccount(user=user)
        session.add(account)
    credentials_changed = (account.host, account.username) != (host, username) or bool(form.password)
    account.host = host
    account.port = int(form.port)
    account.security = form.security
    account.username = username
    account.ca_pem = ca_pem
    account.enabled = form.enabled
    if form.password:
        account.password_encrypted = secrets.encrypt(form.password)
    if credentials_changed:
        account.last_error = None
    session.flush()
    return account
