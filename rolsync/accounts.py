"""Users and their mailbox settings: validation shared by the CLI and the panel."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolsync.crypto import SecretBox
from rolsync.mail.parse.addresses import normalise_address
from rolsync.models import AuthMethod, ImportWarning, MailAccount, Role, User, WarningKind, WarningStatus

log = logging.getLogger(__name__)
audit_log = logging.getLogger("rolsync.audit")
"""Who changed what, for operators: names and server addresses, never a secret."""

MIN_PASSWORD_LENGTH = 12

_COMMON_PASSWORDS = frozenset("""
password passw0rd p@ssword p@ssw0rd pass passwort motdepasse contrasena wachtwoord admin administrator root
letmein welcome iloveyou monkey dragon master sunshine princess football baseball superman batman trustno1
qwerty qwertz azerty asdf asdfgh asdfghjkl zxcvbn zxcvbnm abc abcd abcdef abcdefgh changeme secret login
default guest test testing user rolsync recruit recruiter recruitment crm summer winter spring autumn hello
shadow michael jennifer charlie starwars whatever freedom mustang access computer internet company
""".split())
"""Passwords (with any digits or symbols after them: password-123, Welcome2024!) that lists of guesses try first."""

_SEQUENCES = ("0123456789012345678901234567890", "9876543210987654321098765432109", "abcdefghijklmnopqrstuvwxyz",
              "qwertyuiopasdfghjklzxcvbnm", "1q2w3e4r5t6y7u8i9o0p", "qwertzuiopasdfghjklyxcvbnm",
              "azertyuiopqsdfghjklmwxcvbn")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class AccountError(ValueError):
    """A value was refused; the message says which and why, `field` which input it was about."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class AccountErrors(AccountError):
    """Several values were refused at once (a form shows each next to its field)."""

    def __init__(self, errors: list[AccountError]):
        super().__init__("; ".join(str(e) for e in errors), errors[0].field if errors else None)
        self.errors = errors


def new_user_problems(session: Session, email: str, password: str) -> list[AccountError]:
    """Every reason a new user with these values would be refused (empty when none), so a form shows all at once."""
    problems = []
    address = normalise_address(email)
    if not address:
        problems.append(AccountError(f"{email!r} is not an e-mail address", "email"))
    elif session.scalar(select(User.id).where(User.email == address)) is not None:
        problems.append(AccountError(f"a user with the e-mail {address} already exists", "email"))
    try:
        _check_new_password(password, address or email)
    except AccountError as problem:
        problems.append(problem)
    return problems


def create_user(session: Session, email: str, password: str, *, name: str = "", role: Role = Role.USER) -> User:
    problems = new_user_problems(session, email, password)
    if problems:
        raise problems[0]
    address = normalise_address(email)
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
        raise AccountError("the CA certificate must be a PEM file (-----BEGIN CERTIFICATE-----)", "ca_pem") from exc
    if not certificates:
        raise AccountError("the CA certificate file holds no certificate", "ca_pem")
    return _normal_pem(pem)


def _normal_pem(pem: str | None) -> str | None:
    """One spelling of a PEM text: a browser's textarea sends CRLF, a file may end without a newline."""
    if not pem or not pem.strip():
        return None
    return "\n".join(line.rstrip() for line in pem.strip().splitlines()) + "\n"


def configure_mailbox(session: Session, secrets: SecretBox, user: User, form: MailboxForm,
                      actor: str | None = None) -> MailAccount:
    """Validate and save a user's mailbox settings; the password only encrypted.

    Changing where the password goes (server, port, security, username, CA)
    needs the password again; `actor` (who saves) goes to the audit log when
    the server changes.
    """
    host = form.host.strip().lower()
    if not _HOSTNAME.match(host):
        raise AccountError(f"{form.host!r} is not a server name such as imap.example.com", "host")
    if not 1 <= int(form.port) <= 65535:
        raise AccountError("the port must be a number from 1 to 65535 (993 for SSL, 143 for STARTTLS)", "port")
    if form.security not in ("ssl", "starttls"):
        raise AccountError("security must be ssl or starttls", "security")
    username = form.username.strip()
    if not username:
        raise AccountError("the username is missing (usually your full e-mail address)", "username")
    ca_pem = validate_ca_pem(form.ca_pem) if form.ca_pem and form.ca_pem.strip() else None

    account = user.mail_account
    if account is None:
        if not form.password:
            raise AccountError("the password is missing", "password")
        account = MailAccount(user=user)
        session.add(account)
    elif account.uses_oauth and not form.password:
        raise AccountError("the mailbox is connected with " + (account.oauth_provider or "OAuth").capitalize()
                           + "; enter its password to sign in with a password instead", "password")
    before = _destination(account)
    after = (host, int(form.port), form.security, username, ca_pem)
    if account.id is not None and before != after and not form.password:
        # The stored password may only ever go to the server it was typed for: whoever re-points a
        # mailbox (an admin, or someone holding its owner's session) must know the password too.
        raise AccountError("enter the mailbox password again to change the server, port, security, username or "
                           "CA certificate: the saved password is only ever sent to the server it was saved for",
                           "password")
    credentials_changed = (account.host, account.username) != (host, username) or bool(form.password)
    account.host = host
    account.port = int(form.port)
    account.security = form.security
    account.username = username
    account.ca_pem = ca_pem
    account.enabled = form.enabled
    if form.password:
        account.password_encrypted = secrets.encrypt(form.password)
        _sign_in_with_password(account)
    if credentials_changed:
        account.last_error = None
        if account.id is not None:
            resume_account(session, account)
    session.flush()
    if before != after:
        audit_log.info("mailbox server of %s set by %s: %s -> %s:%s (%s, username %s%s)", user.email,
                       actor or "unknown", _server_text(before), host, form.port, form.security, username,
                       ", company CA" if ca_pem else "")
    return account


def _destination(account: MailAccount) -> tuple:
    """Where the account's secret goes: (host, port, security, username, CA)."""
    return (account.host, account.port, account.security, account.username, _normal_pem(account.ca_pem))


def _server_text(destination: tuple) -> str:
    host, port = destination[0], destination[1]
    return f"{host}:{port}" if host else "(none)"


def _sign_in_with_password(account: MailAccount) -> None:
    """A password replaces an OAuth connection: its tokens are forgotten (Disconnect also revokes them)."""
    account.auth_method = AuthMethod.PASSWORD.value
    account.oauth_provider = None
    account.oauth_refresh_token_encrypted = None
    account.oauth_access_token_encrypted = None
    account.oauth_access_expires_at = None


def pause_account(session: Session, account: MailAccount, kind: WarningKind, detail: str) -> None:
    """Stop polling an account and tell its user why, once."""
    account.paused = True
    account.paused_reason = detail
    already = session.scalar(select(ImportWarning.id).where(
        ImportWarning.user_id == account.user_id, ImportWarning.kind == kind.value,
        ImportWarning.status == WarningStatus.OPEN.value))
    if already is None:
        session.add(ImportWarning(user_id=account.user_id, kind=kind.value, detail=detail))


def resume_account(session: Session, account: MailAccount) -> None:
    """Poll the account again, e.g. after the user saved new credentials."""
    account.paused = False
    account.paused_reason = None
    account.auth_failures = 0
    for warning in session.scalars(select(ImportWarning).where(
            ImportWarning.user_id == account.user_id,
            ImportWarning.kind.in_([WarningKind.AUTH_FAILED.value, WarningKind.UIDVALIDITY_UNSTABLE.value]),
            ImportWarning.status == WarningStatus.OPEN.value)):
        warning.status = WarningStatus.RESOLVED.value


def record_auth_failure(session: Session, account: MailAccount, limit: int) -> None:
    """Count a refused login; at `limit` in a row, pause before the provider locks the mailbox."""
    account.auth_failures = (account.auth_failures or 0) + 1
    if account.uses_oauth:
        provider = (account.oauth_provider or "the provider").capitalize()
        reconnect = f"Reconnect with {provider} in Preferences (Configure Email Importing) to resume."
        if not account.oauth_refresh_token_encrypted:
            # The provider refused the refresh token: the consent is gone, and no retry can bring it back.
            pause_account(session, account, WarningKind.AUTH_FAILED,
                          f"{provider} no longer lets rolsync read this mailbox: the access was withdrawn or has "
                          f"expired, so importing is paused. {reconnect}")
        elif account.auth_failures >= limit:
            pause_account(session, account, WarningKind.AUTH_FAILED,
                          f"The mail server refused the access from {provider} {account.auth_failures} times in a "
                          f"row, so importing is paused. {reconnect} If it keeps failing, check that IMAP is on "
                          "for the mailbox.")
        return
    if account.auth_failures >= limit:
        pause_account(
            session, account, WarningKind.AUTH_FAILED,
            f"The mail server refused the mailbox password {account.auth_failures} times in a row, so importing "
            "is paused before the provider locks the account. Save the correct password in Preferences "
            "(Configure Email Importing) to resume.",
        )


# -- managing users (the panel's Users page and Preferences) -------------------------------------


def _check_new_password(password: str, email: str = "") -> None:
    """Refuse what a guesser tries first: short, common, a keyboard run or one repeated character, the e-mail."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters", "password")
    lowered = password.lower()
    base = lowered.rstrip("0123456789!@#$%^&*()-_=+.,;:?~ ").lstrip("0123456789!@#$%^&*()-_=+.,;:?~ ")
    address = email.strip().lower()
    local_part = address.split("@", 1)[0]
    if (base in _COMMON_PASSWORDS or len(set(lowered)) <= 2 or any(lowered in run for run in _SEQUENCES)
            or (address and (lowered == address or base in (address, local_part)))):
        raise AccountError("this password is among the first ones guessers try; choose a longer, less "
                           "predictable one (a few unrelated words work well)", "password")


def _other_active_admins(session: Session, user: User) -> int:
    return session.scalar(select(func.count(User.id)).where(
        User.role == Role.ADMIN.value, User.active.is_(True), User.id != user.id)) or 0


def update_user(session: Session, user: User, *, name: str, role: Role, active: bool) -> User:
    """Change a user's name, role and whether they may sign in.

    The last active admin can neither lose the role nor be switched off:
    nobody could manage users afterwards.
    """
    losing_admin = user.is_admin and user.active and (role is not Role.ADMIN or not active)
    if losing_admin and _other_active_admins(session, user) == 0:
        raise AccountError("this is the last active admin; make someone else an admin first", "role")
    user.name = name.strip()
    user.role = role.value
    user.active = active
    session.flush()
    return user


def reset_password(session: Session, user: User, password: str) -> None:
    """Set a new password for a user (an admin's reset); their other sessions end."""
    _check_new_password(password, user.email)
    user.set_password(password)
    session.flush()


def change_own_password(session: Session, user: User, current: str, new: str) -> None:
    """A user changes their own password, proving they know the current one."""
    if not user.check_password(current):
        raise AccountError("the current password is not right", "current_password")
    _check_new_password(new, user.email)
    user.set_password(new)
    session.flush()
