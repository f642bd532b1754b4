"""Mailboxes connected with OAuth 2.0 (Google, Microsoft 365): consent, tokens and XOAUTH2 sign-in.

The flow is the authorisation-code grant with PKCE, through Authlib's requests
client. Nothing here holds state between requests: the view keeps the state
and the PKCE verifier in the signed session cookie, so any web process can
finish a flow another one began.

Tokens are stored only encrypted (the deployment's Fernet keys, like mailbox
passwords). The access token is stored too, so every worker reuses it until
shortly before it expires; then whichever process needs it first refreshes it.
Google keeps the refresh token; Microsoft may send a new one with each refresh,
and the old one stays usable for a while, so two processes refreshing at once
both succeed.

Which address XOAUTH2 signs in as: the ``email`` claim of the id_token that
comes with the tokens (scopes ``openid email``), else the rolsync user's own
e-mail. The id_token arrives straight from the token endpoint over a
connection rolsync opened itself, so its claims are read without checking its
signature (OpenID Connect Core 1.0, section 3.1.3.7).
"""
from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy.orm import Session, object_session

from rolsync.accounts import audit_log, resume_account
from rolsync.config import ConfigError
from rolsync.crypto import SecretBox
from rolsync.mail.errors import OAuthProviderError, oauth_access_revoked
from rolsync.mail.imap import ImapSettings, Security
from rolsync.models import AuthMethod, MailAccount, User, utcnow

log = logging.getLogger(__name__)

LABELS = {"google": "Google", "microsoft": "Microsoft"}

EXPIRY_MARGIN = timedelta(seconds=60)
"""An access token this close to its expiry is refreshed before use: an import outlasts a few seconds."""

HTTP_TIMEOUT = 15
"""Seconds for one request to a provider's token or revocation endpoint."""

# RFC 6749 §5.2: the refresh token (or code) is no good, whatever the reason.
_GRANT_GONE = {"invalid_grant", "unauthorized_client"}


class ConnectError(Exception):
    """Connecting a mailbox did not work; the message says why and what to do."""


@dataclass(frozen=True)
class OAuthProvider:
    """One provider as this deployment registered with it (rolsync.config.OAUTH_PROVIDER_DEFAULTS)."""

    name: str
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    revoke_url: str
    scope: str
    imap_host: str
    imap_port: int
    imap_ca_pem: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name.capitalize())

    @property
    def authorize_params(self) -> dict[str, str]:
        """Google issues a refresh token only when asked for offline access (and again only with consent)."""
        if self.name == "google":
            return {"access_type": "offline", "prompt": "consent"}
        return {}

    def client(self, redirect_uri: str | None = None) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope=self.scope, redirect_uri=redirect_uri,
                             code_challenge_method="S256", default_timeout=HTTP_TIMEOUT)


def providers_from_config(config: Mapping) -> dict[str, OAuthProvider]:
    """The providers registered in the environment (a client id there), in display order."""
    return {name: _provider(name, settings) for name, settings in (config.get("OAUTH_PROVIDERS") or {}).items()}


def endpoints_from_config(config: Mapping) -> dict[str, OAuthProvider]:
    """Every provider's endpoints with no client yet, and ``{tenant}`` still in Microsoft's URLs.

    rolsync.oauth_clients completes them with what an admin saved in the panel.
    """
    return {name: _provider(name, {**settings, "client_id": "", "client_secret": ""})
            for name, settings in (config.get("OAUTH_ENDPOINTS") or {}).items()}


def _provider(name: str, settings: Mapping) -> OAuthProvider:
    ca_pem = None
    if settings.get("imap_ca_file"):
        try:
            ca_pem = Path(settings["imap_ca_file"]).read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ConfigError(f"ROLSYNC_{name.upper()}_IMAP_CA_FILE: cannot read {settings['imap_ca_file']} "
                              f"({exc.strerror}); give the path of a PEM file, or unset it") from exc
    return OAuthProvider(
        name=name, client_id=settings["client_id"], client_secret=settings["client_secret"],
        authorize_url=settings["authorize_url"], token_url=settings["token_url"],
        revoke_url=settings.get("revoke_url") or "", scope=settings["scope"],
        imap_host=settings["imap_host"], imap_port=int(settings["imap_port"]), imap_ca_pem=ca_pem)


# -- consent: the authorisation-code flow with PKCE -------------------------------------------


@dataclass(frozen=True)
class PendingConsent:
    """What the browser is sent to, and what must be kept (in the signed session) until it returns."""

    url: str
    state: str
    code_verifier: str = field(repr=False)


@dataclass(frozen=True)
class Grant:
    """Tokens from a finished consent."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    email: str | None
    """The account's address from the id_token, when the provider sent one."""


def begin_consent(provider: OAuthProvider, redirect_uri: str, login_hint: str | None) -> PendingConsent:
    """The provider's consent page URL, with a fresh state and PKCE challenge (S256)."""
    verifier = generate_token(64)
    params = dict(provider.authorize_params)
    if login_hint:
        params["login_hint"] = login_hint
    url, state = provider.client(redirect_uri).create_authorization_url(
        provider.authorize_url, code_verifier=verifier, **params)
    return PendingConsent(url, state, verifier)


def finish_consent(provider: OAuthProvider, redirect_uri: str, callback_url: str, state: str,
                   code_verifier: str) -> Grant:
    """Exchange the code in `callback_url` for tokens, refusing a state that is not the one sent."""
    client = provider.client(redirect_uri)
    try:
        token = client.fetch_token(provider.token_url, authorization_response=callback_url, state=state,
                                   code_verifier=code_verifier)
    except OAuth2Error as exc:  # MismatchingStateException, MissingCodeException
        log.warning("%s consent refused: %s", provider.name, exc.error)
        raise ConnectError(f"The answer from {provider.label} did not belong to this sign-in, so it was "
                           "refused. Start again with the Connect button.") from None
    except OAuthError as exc:
        log.warning("%s token endpoint refused the code: %s", provider.name, exc.error)
        raise ConnectError(f"{provider.label} refused to finish the connection ({exc.error}). "
                           "Start again with the Connect button.") from None
    except requests.RequestException as exc:
        log.warning("%s token endpoint unreachable: %s", provider.name, type(exc).__name__)
        raise ConnectError(f"{provider.label} could not be reached to finish the connection. "
                           "Try again in a minute.") from None
    if not token.get("refresh_token"):
        raise ConnectError(f"{provider.label} gave no lasting access (no refresh token), so imports could "
                           "not run on their own. Start again and allow access.")
    return Grant(access_token=token["access_token"], refresh_token=token["refresh_token"],
                 expires_at=_expiry(token), email=_id_token_email(token.get("id_token")))


def connect_mailbox(session: Session, secrets: SecretBox, user: User, provider: OAuthProvider,
                    grant: Grant) -> MailAccount:
    """Save the mailbox as connected with `provider`: its IMAP server, its address, its tokens (encrypted).

    A mailbox that had a password forgets it; a paused one resumes. Folders
    already read stay read, so reconnecting does not import anything twice.
    """
    account = user.mail_account
    if account is None:
        account = MailAccount(user=user)
        session.add(account)
    address = (grant.email or user.email).strip().lower()
    account.host = provider.imap_host
    account.port = provider.imap_port
    account.security = Security.SSL.value
    account.username = address
    account.ca_pem = provider.imap_ca_pem
    account.enabled = True if account.id is None else account.enabled
    account.auth_method = AuthMethod.OAUTH2.value
    account.password_encrypted = None
    account.oauth_provider = provider.name
    account.oauth_refresh_token_encrypted = secrets.encrypt(grant.refresh_token)
    _store_access_token(account, secrets, grant.access_token, grant.expires_at)
    account.last_error = None
    if account.id is not None:
        resume_account(session, account)
    session.flush()
    audit_log.info("mailbox server of %s set by consent at %s: %s:%s (username %s)", user.email, provider.name,
                   account.host, account.port, address)
    return account


def disconnect_mailbox(session: Session, secrets: SecretBox, account: MailAccount,
                       provider: OAuthProvider | None) -> bool:
    """Revoke the access where the provider allows it, and forget the tokens.

    Returns whether the provider confirmed the revocation. Microsoft has no
    revocation endpoint for these tokens: they stop being used here, and the
    person can remove the app at myapps.microsoft.com. The account stays
    (with its folders' progress), paused until it is connected again.
    """
    revoked = False
    if provider is not None and provider.revoke_url and account.oauth_refresh_token_encrypted:
        try:
            response = provider.client().revoke_token(
                provider.revoke_url, token=secrets.decrypt(account.oauth_refresh_token_encrypted),
                token_type_hint="refresh_token")
            revoked = response.status_code == 200
            if not revoked:
                log.warning("%s revocation answered HTTP %s", provider.name, response.status_code)
        except requests.RequestException as exc:
            log.warning("%s revocation endpoint unreachable: %s", provider.name, type(exc).__name__)
    _forget_tokens(account)
    account.paused = True
    label = LABELS.get(account.oauth_provider or "", "the provider")
    account.paused_reason = f"The mailbox was disconnected from {label}. Connect it again to resume importing."
    session.flush()
    return revoked


# -- access tokens for the import -------------------------------------------------------------


class AccountTokens:
    """The XOAUTH2 access token of one mailbox, refreshed shortly before it expires or on demand.

    A refreshed token is committed at once, so other processes reuse it and a
    later rollback of the caller's work does not lose it. A refused refresh
    token is forgotten: the consent is gone and only reconnecting helps.
    """

    def __init__(self, session: Session, account: MailAccount, secrets: SecretBox,
                 provider: OAuthProvider | None):
        self.session = session
        self.account = account
        self.secrets = secrets
        self.provider = provider

    def __call__(self, *, refresh: bool = False) -> str:
        account = self.account
        if self.provider is None:
            # Checked before the stored token is reused: an admin who removed the provider means it to stop now.
            raise self._provider_gone()
        expires_at = _aware(account.oauth_access_expires_at)
        if (not refresh and account.oauth_access_token_encrypted and expires_at is not None
                and expires_at - EXPIRY_MARGIN > utcnow()):
            return self.secrets.decrypt(account.oauth_access_token_encrypted)
        return self._refresh()

    def _provider_gone(self) -> OAuthProviderError:
        label = LABELS.get(self.account.oauth_provider or "", "the provider")
        error = OAuthProviderError(
            message=f"Connecting mailboxes with {label} is not set up on this rolsync any more.",
            hint="Ask your administrator to set it up again, or enter a password for the mailbox.")
        error.transient = False  # waiting will not bring the settings back
        return error

    def _refresh(self) -> str:
        account, provider = self.account, self.provider
        label = LABELS.get(account.oauth_provider or "", "the provider")
        if not account.oauth_refresh_token_encrypted:
            raise oauth_access_revoked(
                message=f"The mailbox is not connected to {label} any more.",
                hint=f"Click Reconnect with {label} in Preferences (Configure Email Importing).")
        refresh_token = self.secrets.decrypt(account.oauth_refresh_token_encrypted)
        try:
            token = provider.client().refresh_token(provider.token_url, refresh_token=refresh_token)
        except OAuthError as exc:
            if exc.error in _GRANT_GONE:
                log.warning("account %s: %s refused the refresh token (%s)", account.id, provider.name, exc.error)
                _forget_tokens(account)
                self.session.commit()
                raise oauth_access_revoked(
                    message=f"{label} no longer lets rolsync read this mailbox: the access was withdrawn "
                            "or has expired.",
                    hint=f"Click Reconnect with {label} in Preferences (Configure Email Importing) and allow "
                         "access again.") from None
            log.warning("account %s: %s token endpoint error %s", account.id, provider.name, exc.error)
            error = OAuthProviderError(
                message=f"{label} refused to renew the mailbox's access token ({exc.error}).",
                hint="If this is invalid_client, the administrator should check the client id and secret.")
            error.transient = exc.error not in ("invalid_client", "invalid_request", "invalid_scope")
            raise error from None
        except requests.RequestException as exc:
            log.warning("account %s: %s token endpoint unreachable: %s", account.id, provider.name,
                        type(exc).__name__)
            raise OAuthProviderError(
                message=f"{label} could not be reached to renew the mailbox's access token.") from None
        if token.get("refresh_token") and token["refresh_token"] != refresh_token:
            account.oauth_refresh_token_encrypted = self.secrets.encrypt(token["refresh_token"])
        _store_access_token(account, self.secrets, token["access_token"], _expiry(token))
        self.session.commit()
        return token["access_token"]


def imap_settings(account: MailAccount, secrets: SecretBox, providers: Mapping[str, OAuthProvider],
                  timeout: float = 30.0) -> ImapSettings:
    """XOAUTH2 settings of an OAuth mailbox; the token is fetched when the session opens."""
    tokens = AccountTokens(object_session(account), account, secrets, providers.get(account.oauth_provider or ""))
    return ImapSettings(host=account.host, port=account.port, security=Security(account.security),
                        username=account.username, ca_pem=account.ca_pem, timeout=timeout, oauth2_token=tokens)


# -- helpers ------------------------------------------------------------------------------------


def _store_access_token(account: MailAccount, secrets: SecretBox, access_token: str, expires_at: datetime) -> None:
    account.oauth_access_token_encrypted = secrets.encrypt(access_token)
    account.oauth_access_expires_at = expires_at


def _forget_tokens(account: MailAccount) -> None:
    account.oauth_refresh_token_encrypted = None
    account.oauth_access_token_encrypted = None
    account.oauth_access_expires_at = None


def _expiry(token: Mapping) -> datetime:
    """When the access token expires; a provider that does not say gets the usual hour."""
    if token.get("expires_at"):
        return datetime.fromtimestamp(int(token["expires_at"]), timezone.utc)
    return utcnow() + timedelta(seconds=int(token.get("expires_in") or 3600))


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; they were stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _id_token_email(id_token: str | None) -> str | None:
    """The e-mail claim of an id_token from the token endpoint (Microsoft: preferred_username as fallback)."""
    if not id_token or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    for claim in ("email", "preferred_username"):
        value = claims.get(claim) if isinstance(claims, dict) else None
        if isinstance(value, str) and "@" in value:
            return value
    return None
