"""Settings from the environment, with embedded defaults for a single machine."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from exc


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _ints(name: str, default: list[int]) -> list[int]:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError as exc:
        raise ConfigError(f"{name} must be comma-separated whole numbers, got {value!r}") from exc
    if not numbers or min(numbers) < 0:
        raise ConfigError(f"{name} must list at least one number of 0 or more")
    return numbers


OAUTH_PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {
    "google": {
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "revoke_url": "https://oauth2.googleapis.com/revoke",
        "scope": "openid email https://mail.google.com/",
        "imap_host": "imap.gmail.com",
        "imap_port": 993,
    },
    "microsoft": {
        "tenant": "common",
        "authorize_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        "token_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        # Microsoft has no revocation endpoint for these tokens.
        "revoke_url": "",
        "scope": "openid email offline_access https://outlook.office.com/IMAP.AccessAsUser.All",
        "imap_host": "outlook.office365.com",
        "imap_port": 993,
    },
}
"""Production endpoints of the providers whose mailboxes connect with OAuth 2.0 (XOAUTH2).

Each value can be overridden with ``ROLSYNC_<PROVIDER>_<KEY>`` (for example
``ROLSYNC_GOOGLE_TOKEN_URL``), which is how the tests point "google" at a local
server. ``{tenant}`` in Microsoft's URLs is the tenant of the app registration:
``ROLSYNC_MICROSOFT_TENANT`` with a client id in the environment, else the one
saved in the admin panel.
"""

OAUTH_CLIENT_KEYS = ("client_id", "client_secret", "tenant")
"""What registers rolsync with a provider (environment or admin panel); the other keys are endpoints."""


def _oauth_endpoints() -> dict[str, dict]:
    """Every provider's endpoints and IMAP server, with ``{tenant}`` still to fill in; only ever from the environment."""
    endpoints = {}
    for name, defaults in OAUTH_PROVIDER_DEFAULTS.items():
        prefix = f"ROLSYNC_{name.upper()}_"
        settings = {key: os.environ.get(prefix + key.upper()) or value
                    for key, value in defaults.items() if key not in OAUTH_CLIENT_KEYS}
        settings["imap_port"] = _int(prefix + "IMAP_PORT", defaults["imap_port"])
        # A CA for the IMAP server beside the system's, for test servers and TLS-inspecting proxies.
        settings["imap_ca_file"] = os.environ.get(prefix + "IMAP_CA_FILE") or None
        endpoints[name] = settings
    return endpoints


def with_tenant(endpoints: dict, tenant: str) -> dict:
    """`endpoints` with the tenant in Microsoft's URLs (Google's have no ``{tenant}``)."""
    return {**endpoints, **{key: endpoints[key].format(tenant=tenant) for key in ("authorize_url", "token_url")}}


def _oauth_providers(endpoints: dict[str, dict]) -> dict[str, dict]:
    """The providers registered in the environment: those with a client id there (they win over the panel)."""
    providers = {}
    for name, settings in endpoints.items():
        prefix = f"ROLSYNC_{name.upper()}_"
        client_id = os.environ.get(prefix + "CLIENT_ID", "").strip()
        if not client_id:
            continue
        client_secret = os.environ.get(prefix + "CLIENT_SECRET", "").strip()
        if not client_secret:
            raise ConfigError(f"{prefix}CLIENT_ID is set but {prefix}CLIENT_SECRET is not; copy the client "
                              f"secret from the app registration at {name.capitalize()}, or unset both")
        tenant = os.environ.get(prefix + "TENANT") or OAUTH_PROVIDER_DEFAULTS[name].get("tenant", "")
        providers[name] = {**with_tenant(settings, tenant), "client_id": client_id, "client_secret": client_secret}
        if tenant:
            providers[name]["tenant"] = tenant
    return providers


def read_or_create_secret(path: Path, make) -> str:
    """Return the secret kept in `path`, creating it (mode 0600) on first use.

    Several processes may start at once; O_EXCL makes exactly one of them the
    writer and the others read what it wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        value = make()
        fh.write(value + "\n")
    return value


def load_config(instance_path: str) -> dict:
    """Build the Flask config mapping from the environment.

    Production (`ROLSYNC_ENV=production`) refuses to start without the secrets
    in the environment; elsewhere they are generated once into the instance
    folder so a fresh checkout runs with no setup.
    """
    instance = Path(instance_path)
    production = os.environ.get("ROLSYNC_ENV", "development") == "production"

    secret_key = os.environ.get("SECRET_KEY")
    encryption_keys = os.environ.get("ROLSYNC_ENCRYPTION_KEYS")
    if production and not secret_key:
        raise ConfigError("SECRET_KEY is not set; production needs a long random value in the environment")
    if production and not encryption_keys:
        raise ConfigError(
            "ROLSYNC_ENCRYPTION_KEYS is not set; production needs one or more Fernet keys "
            "(comma-separated, newest first) in the environment"
        )

    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'rolsync.db'}"
    # SQLAlchemy wants an explicit driver for psycopg 3.
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]

    endpoints = _oauth_endpoints()
    return {
        "ENV_PRODUCTION": production,
        "SECRET_KEY": secret_key
        or read_or_create_secret(instance / "secret_key", lambda: secrets.token_urlsafe(48)),
        "ROLSYNC_ENCRYPTION_KEYS": encryption_keys,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "RQ_QUEUE": os.environ.get("ROLSYNC_QUEUE", "rolsync"),
        "DOCUMENT_ROOT": os.environ.get("ROLSYNC_DOCUMENT_ROOT") or str(instance / "documents"),
        # How much one import run may do before it hands over to the next run.
        "IMPORT_RUN_MESSAGES": _int("ROLSYNC_IMPORT_RUN_MESSAGES", 500),
        "IMPORT_FETCH_BATCH": _int("ROLSYNC_IMPORT_FETCH_BATCH", 200),
        "IMAP_TIMEOUT": _int("ROLSYNC_IMAP_TIMEOUT", 30),
        "IMPORT_JOB_TIMEOUT": _int("ROLSYNC_IMPORT_JOB_TIMEOUT", 1800),
        "WORKER_CLASS": _choice("ROLSYNC_WORKER_CLASS", ("simple", "fork"), "simple"),
        "POLL_INTERVAL_MINUTES": _int("ROLSYNC_POLL_INTERVAL_MINUTES", 5),
        # Seconds win over minutes when both are set (tests poll every few seconds).
        "POLL_INTERVAL_SECONDS": _int("ROLSYNC_POLL_INTERVAL_SECONDS", 60 * _int("ROLSYNC_POLL_INTERVAL_MINUTES", 5)),
        # How often each worker's scheduler looks for mailboxes that are due.
        "SCHEDULE_TICK_SECONDS": _int("ROLSYNC_SCHEDULE_TICK_SECONDS", 30),
        # The per-mailbox lock expires this long after its holder stops renewing it.
        "IMPORT_LOCK_SECONDS": _int("ROLSYNC_IMPORT_LOCK_SECONDS", 60),
        # One job runs import runs for at most this long, then hands over.
        "IMPORT_RUN_SECONDS": _int("ROLSYNC_IMPORT_RUN_SECONDS", 600),
        "IMPORT_RETRY_DELAYS": _ints("ROLSYNC_IMPORT_RETRY_DELAYS", [30, 120, 600]),
        "AUTH_FAILURES_BEFORE_PAUSE": _int("ROLSYNC_AUTH_FAILURES_BEFORE_PAUSE", 3),
        "UIDVALIDITY_CHANGES_BEFORE_PAUSE": _int("ROLSYNC_UIDVALIDITY_CHANGES_BEFORE_PAUSE", 3),
        # A message larger than this (its RFC822.SIZE) is not fetched: it becomes a warning.
        "LIMIT_MESSAGE_BYTES": _int("ROLSYNC_LIMIT_MESSAGE_BYTES", 50 * 1024 * 1024),
        # Connect with Google / Microsoft: the endpoints of each, and the providers registered in the
        # environment (the others may be registered in the admin panel: rolsync.oauth_clients).
        "OAUTH_ENDPOINTS": endpoints,
        "OAUTH_PROVIDERS": _oauth_providers(endpoints),
        # The panel's public address (https://crm.example.com) for the OAuth redirect URI, when the
        # request's own host is not what browsers use (a proxy that rewrites Host); empty: the request's.
        "PUBLIC_URL": (os.environ.get("ROLSYNC_PUBLIC_URL") or "").rstrip("/"),
    }
