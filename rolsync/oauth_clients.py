"""rolsync's app registrations at Google and Microsoft: the ones saved in the admin panel, and which are in use.

Where a provider's client id, secret and tenant come from (first match wins):

1. the environment (``ROLSYNC_<PROVIDER>_CLIENT_ID``, ``_CLIENT_SECRET``,
   ``_TENANT``), fixed for the life of a process like the rest of it;
2. the row an admin saved in the panel (``oauth_clients``), read at every use,
   so every web process and worker sees a change without a restart.

The endpoints (authorisation, token and revocation URLs, the IMAP server) come
only from the environment or the providers' defaults, whichever way the client
is set up.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolsync.crypto import SecretBox, SecretUnreadable
from rolsync.models import AuthMethod, MailAccount, OAuthClient, User, utcnow
from rolsync.oauth import OAuthProvider

log = logging.getLogger(__name__)

DEFAULT_TENANT = "common"
TENANT_KEYWORDS = ("common", "organizations", "consumers")
"""Microsoft's multi-tenant endpoints: any account, work or school accounts only, personal accounts only."""

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DOMAIN = re.compile(r"(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_GOOGLE_CLIENT_ID_SUFFIX = ".apps.googleusercontent.com"
_MAX_CLIENT_ID = 255
_MAX_SECRET = 1000


class ClientSettingsRefused(ValueError):
    """A value entered for a provider cannot work; `field` names it and the message says what to enter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ClientSettings:
    """What an admin entered for one provider; an empty secret keeps the saved one."""

    client_id: str
    client_secret: str = field(default="", repr=False)
    tenant: str = ""


def providers_in_use(session: Session, environment: Mapping[str, OAuthProvider],
                     endpoints: Mapping[str, OAuthProvider], secrets: SecretBox) -> dict[str, OAuthProvider]:
    """The providers mailboxes can connect with now, in display order: the environment's, else the panel's.

    One small query, so callers ask at each use rather than keep the answer.
    A saved secret the current keys cannot decrypt leaves its provider out (and
    says so in the log) instead of breaking every page.
    """
    rows = {}
    if any(name not in environment for name in endpoints):
        # Columns, not entities: a row the session already holds would not be read again.
        with session.no_autoflush:
            rows = {row.provider: row for row in session.execute(
                select(OAuthClient.provider, OAuthClient.client_id, OAuthClient.client_secret_encrypted,
                       OAuthClient.tenant))}
    providers = {}
    for name, blank in endpoints.items():
        if name in environment:
            providers[name] = environment[name]
        elif name in rows:
            row = rows[name]
            try:
                secret = secrets.decrypt(row.client_secret_encrypted)
            except SecretUnreadable:
                log.warning("the %s client secret saved in the panel cannot be decrypted with the current keys; "
                            "save it again under Mail sign-in providers", name)
                continue
            tenant = row.tenant or DEFAULT_TENANT
            providers[name] = replace(blank, client_id=row.client_id, client_secret=secret,
                                      authorize_url=blank.authorize_url.format(tenant=tenant),
                                      token_url=blank.token_url.format(tenant=tenant))
    return providers


def saved_client(session: Session, provider: str) -> OAuthClient | None:
    return session.get(OAuthClient, provider)


def secret_is_readable(client: OAuthClient, secrets: SecretBox) -> bool:
    try:
        secrets.decrypt(client.client_secret_encrypted)
    except SecretUnreadable:
        return False
    return True


def connected_mailboxes(session: Session) -> dict[str, int]:
    """How many mailboxes are connected with each provider (with or without their access still valid)."""
    return {str(provider): count for provider, count in session.execute(
        select(MailAccount.oauth_provider, func.count(MailAccount.id))
        .where(MailAccount.auth_method == AuthMethod.OAUTH2.value, MailAccount.oauth_provider.is_not(None))
        .group_by(MailAccount.oauth_provider))}


def save_client(session: Session, secrets: SecretBox, provider: str, entered: ClientSettings,
                by: User) -> OAuthClient:
    """Check and save a provider's client for the whole deployment; raises ClientSettingsRefused.

    The secret is stored encrypted; an empty one keeps the saved secret, as
    long as the client id stays the same (another app has another secret).
    """
    client_id = check_client_id(provider, entered.client_id)
    secret = entered.client_secret.strip()
    saved = session.get(OAuthClient, provider)
    if not secret:
        if saved is None:
            raise ClientSettingsRefused("client_secret", "Enter the client secret.")
        if saved.client_id != client_id:
            raise ClientSettingsRefused("client_secret", "A new client ID comes with its own secret: enter it too.")
    else:
        check_secret(provider, secret)
    tenant = check_tenant(entered.tenant) if provider == "microsoft" else None
    if saved is None:
        saved = OAuthClient(provider=provider)
        session.add(saved)
    saved.client_id = client_id
    if secret:
        saved.client_secret_encrypted = secrets.encrypt(secret)
    saved.tenant = tenant
    saved.updated_by_id = by.id
    saved.updated_at = utcnow()
    session.flush()
    log.info("%s saved the %s client in the panel: client id %s%s, secret %s", by.email, provider, client_id,
             f", tenant {tenant}" if tenant else "", "replaced" if secret else "kept")
    return saved


def remove_client(session: Session, provider: str, by: User) -> int:
    """Forget the provider's client saved in the panel; returns how many mailboxes were connected with it.

    The mailboxes keep their settings, tokens and progress: their imports stop
    with "not set up on this rolsync any more" until the provider is set up
    again (with the same client, they carry on; with another, they reconnect).
    """
    saved = session.get(OAuthClient, provider)
    mailboxes = connected_mailboxes(session).get(provider, 0)
    if saved is not None:
        session.delete(saved)
        session.flush()
        log.info("%s removed the %s client from the panel (client id %s; %d mailboxes connected with it)",
                 by.email, provider, saved.client_id, mailboxes)
    return mailboxes


def check_tenant(value: str) -> str:
    """A Microsoft tenant: its id (a GUID), one of its domains, or common / organizations / consumers."""
    tenant = value.strip().lower() or DEFAULT_TENANT
    if tenant in TENANT_KEYWORDS or _GUID.fullmatch(tenant) or _DOMAIN.fullmatch(tenant):
        return tenant
    raise ClientSettingsRefused(
        "tenant", "Enter the Directory (tenant) ID from the app's Overview page (a GUID such as "
                  "72f988bf-86f1-41af-91ab-2d7cd011db47), a domain of the tenant (contoso.onmicrosoft.com), "
                  "or common, organizations or consumers.")


def check_client_id(provider: str, value: str) -> str:
    """The client id as entered, trimmed, if it has the shape the provider gives its client ids."""
    client_id = value.strip()
    if not client_id:
        raise ClientSettingsRefused("client_id", "Enter the client ID.")
    if len(client_id) > _MAX_CLIENT_ID or any(char.isspace() or not char.isprintable() for char in client_id):
        raise ClientSettingsRefused("client_id", "A client ID is one word with no spaces: copy it again.")
    if provider == "google" and not client_id.endswith(_GOOGLE_CLIENT_ID_SUFFIX):
        raise ClientSettingsRefused(
            "client_id", f"A Google client ID ends in {_GOOGLE_CLIENT_ID_SUFFIX}: copy it from Google Cloud "
                         "console > APIs & Services > Credentials > OAuth 2.0 Client IDs.")
    if provider == "microsoft":
        client_id = client_id.lower()
        if not _GUID.fullmatch(client_id):
            raise ClientSettingsRefused(
                "client_id", "The Application (client) ID is a GUID such as 1b2c3d4e-0000-4a5b-9c8d-"
                             "0123456789ab: copy it from the app's Overview page in Microsoft Entra.")
    return client_id


def check_secret(provider: str, secret: str) -> None:
    """Refuse what cannot be a client secret, and Microsoft's secret ID pasted instead of its value."""
    if len(secret) > _MAX_SECRET or any(char.isspace() or not char.isprintable() for char in secret):
        raise ClientSettingsRefused("client_secret", "A client secret is one word with no spaces: copy it again.")
    if provider == "microsoft" and _GUID.fullmatch(secret.lower()):
        raise ClientSettingsRefused(
            "client_secret", "That is the secret's ID. Enter its Value, which Microsoft Entra shows only right "
                             "after the secret is created (make a new one if it is hidden).")
