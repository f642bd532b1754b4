"""Settings from the environment, with embedded defaults for a single machine."""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path


MIN_SECRET_KEY_LENGTH = 32
"""SECRET_KEY signs the session cookies: a short one can be guessed offline from any cookie."""


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


def _bool(name: str, default: bool) -> bool:
    value = (os.environ.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma- or space-separated addresses or CIDRs; a bad one stops the app at start, naming it."""
    networks = []
    for item in os.environ.get(name, "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise RuntimeError(f"{name}: {item!r} is not an address or a CIDR such as 10.0.0.0/8") from exc
    return networks


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


OAUTH_PROVIDER_DEFAULTS = {
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


def refuse_unsafe_production(database_url: str, public_url: str) -> None:
    """Stop a production start whose settings would be unsafe, saying which setting and what to do."""
    if os.environ.get("FLASK_DEBUG", "").lower() in ("1", "true", "yes", "on"):
        raise ConfigError("FLASK_DEBUG is on; the debugger runs any code a visitor sends, so production "
                          "refuses it: unset FLASK_DEBUG")
    if public_url.startswith("http://"):
        raise ConfigError(f"ROLSYNC_PUBLIC_URL is {public_url}, plain HTTP; production sends passwords and "
                          "session cookies only over HTTPS: use the https:// address of the reverse proxy")
    if database_url.startswith("sqlite"):
        # One machine with one web process and one worker works on SQLite; more is PostgreSQL's job.
        logging.getLogger(__name__).warning(
            "production on SQLite: fine for one web process and one worker on one machine; "
            "set DATABASE_URL to PostgreSQL for more")


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
    if production and len(secret_key or "") < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"SECRET_KEY is {len(secret_key or '')} characters long; production needs at least "
                          f"{MIN_SECRET_KEY_LENGTH} random ones (python -c \"import secrets; "
                          "print(secrets.token_urlsafe(48))\")")
    if production and not encryption_keys:
        raise ConfigError(
            "ROLSYNC_ENCRYPTION_KEYS is not set; production needs one or more Fernet keys "
            "(comma-separated, newest first) in the environment"
        )

    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'rolsync.db'}"
    # SQLAlchemy wants an explicit driver for psycopg 3.
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]

    document_store = _choice("ROLSYNC_DOCUMENT_STORE", ("filesystem", "s3"), "filesystem")
    s3_bucket = os.environ.get("ROLSYNC_S3_BUCKET", "").strip()
    if document_store == "s3" and not s3_bucket:
        raise ConfigError("ROLSYNC_DOCUMENT_STORE is s3 but ROLSYNC_S3_BUCKET is not set; name the bucket")
    public_url = (os.environ.get("ROLSYNC_PUBLIC_URL") or "").rstrip("/")
    if production:
        refuse_unsafe_production(database_url, public_url)

    endpoints = _oauth_endpoints()
    return {
        "ENV_PRODUCTION": production,
        "SECRET_KEY": secret_key
        or read_or_create_secret(instance / "secret_key", lambda: secrets.token_urlsafe(48)),
        "ROLSYNC_ENCRYPTION_KEYS": encryption_keys,
        # Keys the hashes of erased people's addresses; SECRET_KEY when unset (see README, Privacy).
        "ROLSYNC_SUPPRESSION_KEY": os.environ.get("ROLSYNC_SUPPRESSION_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "RQ_QUEUE": os.environ.get("ROLSYNC_QUEUE", "rolsync"),
        "DOCUMENT_ROOT": os.environ.get("ROLSYNC_DOCUMENT_ROOT") or str(instance / "documents"),
        # Documents in an S3-compatible bucket instead, when several machines share the work.
        "DOCUMENT_STORE": document_store,
        "S3_BUCKET": s3_bucket,
        "S3_ENDPOINT_URL": os.environ.get("ROLSYNC_S3_ENDPOINT_URL") or None,
        "S3_PREFIX": os.environ.get("ROLSYNC_S3_PREFIX", ""),
        # Where big attachments are spooled on their way to the bucket (this machine's disk).
        "SPOOL_DIR": os.environ.get("ROLSYNC_SPOOL_DIR") or str(instance / "spool"),
        # Log lines as plain text, or one JSON object each for a log shipper.
        "LOG_FORMAT": _choice("ROLSYNC_LOG_FORMAT", ("text", "json"), "text"),
        # How many reverse proxies in front of the panel set X-Forwarded-For/-Proto/-Host; 0: none, ignore them.
        "TRUSTED_PROXIES": _int("ROLSYNC_TRUSTED_PROXIES", 0),
        # How much one import run may do before it hands over to the next run.
        "IMPORT_RUN_MESSAGES": _int("ROLSYNC_IMPORT_RUN_MESSAGES", 500),
        "IMPORT_FETCH_BATCH": _int("ROLSYNC_IMPORT_FETCH_BATCH", 200),
        # What one message may cost to parse (rolsync.mail.parse.limits.ParseLimits).
        "LIMIT_MIME_PARTS": _int("ROLSYNC_LIMIT_MIME_PARTS", 500),
        "LIMIT_ATTACHMENTS": _int("ROLSYNC_LIMIT_ATTACHMENTS", 100),
        "LIMIT_SUBJECT_CHARS": _int("ROLSYNC_LIMIT_SUBJECT_CHARS", 2000),
        "LIMIT_HEADER_BYTES": _int("ROLSYNC_LIMIT_HEADER_BYTES", 512 * 1024),
        "LIMIT_PARSE_SECONDS": _int("ROLSYNC_LIMIT_PARSE_SECONDS", 20),
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
        # Push (python worker.py --watch, rolsync/watcher.py). IDLE is re-issued this often: servers may end
        # an IDLE after 30 minutes (RFC 2177), so never more than 29.
        "PUSH_IDLE_RENEW_SECONDS": min(_int("ROLSYNC_PUSH_IDLE_RENEW_SECONDS", 25 * 60), 29 * 60),
        # A watcher's hold on a mailbox (a Redis lease) lapses this long after the watcher stops renewing it.
        "PUSH_LEASE_SECONDS": _int("ROLSYNC_PUSH_LEASE_SECONDS", 30),
        # How often a watcher re-reads the mailboxes (new ones, switched off, changed credentials).
        "PUSH_REFRESH_SECONDS": _int("ROLSYNC_PUSH_REFRESH_SECONDS", 15),
        # Mailboxes with a live IDLE are still polled this often, in case a notification went missing.
        "PUSH_SAFETY_POLL_SECONDS": _int("ROLSYNC_PUSH_SAFETY_POLL_SECONDS", 30 * 60),
        "PUSH_MAX_MAILBOXES": _int("ROLSYNC_PUSH_MAX_MAILBOXES", 1000),
        "PUSH_CONNECT_THREADS": _int("ROLSYNC_PUSH_CONNECT_THREADS", 8),
        # Reconnecting after a dropped connection waits 1, 2, 4... seconds (jittered), at most this long.
        "PUSH_BACKOFF_MAX_SECONDS": _int("ROLSYNC_PUSH_BACKOFF_MAX_SECONDS", 300),
        # A message larger than this (its RFC822.SIZE) is not fetched: it becomes a warning.
        "LIMIT_MESSAGE_BYTES": _int("ROLSYNC_LIMIT_MESSAGE_BYTES", 50 * 1024 * 1024),
        # Connect with Google / Microsoft: the endpoints of each, and the providers registered in the
        # environment (the others may be registered in the admin panel: rolsync.oauth_clients).
        "OAUTH_ENDPOINTS": endpoints,
        "OAUTH_PROVIDERS": _oauth_providers(endpoints),
        # The panel's public address (https://crm.example.com) for the OAuth redirect URI, when the
        # request's own host is not what browsers use (a proxy that rewrites Host); empty: the request's.
        "PUBLIC_URL": public_url,
        # Mail servers on loopback or private addresses: refused in production unless allowed by name or network.
        "IMAP_ALLOW_PRIVATE": _bool("ROLSYNC_IMAP_ALLOW_PRIVATE", not production),
        "IMAP_ALLOWED_HOSTS": os.environ.get("ROLSYNC_IMAP_ALLOWED_HOSTS", ""),
        # Test Connection: how many per user in a window, and how long one may take in all.
        "TEST_CONNECTION_MAX_PER_WINDOW": _int("ROLSYNC_TEST_CONNECTION_MAX", 10),
        "TEST_CONNECTION_WINDOW_SECONDS": _int("ROLSYNC_TEST_CONNECTION_WINDOW_SECONDS", 10 * 60),
        "TEST_CONNECTION_DEADLINE": _int("ROLSYNC_TEST_CONNECTION_DEADLINE", 25),
        # A panel session ends after this long without a request, and this long after sign-in whatever happens.
        "SESSION_IDLE_MINUTES": _int("ROLSYNC_SESSION_IDLE_MINUTES", 120),
        "SESSION_MAX_HOURS": _int("ROLSYNC_SESSION_MAX_HOURS", 12),
        # Sign-in limits (see rolsync.web.auth.routes.SignInLimits).
        "LOGIN_MAX_FAILURES": _int("ROLSYNC_LOGIN_MAX_FAILURES", 5),
        "LOGIN_MAX_FAILURES_PER_IP": _int("ROLSYNC_LOGIN_MAX_FAILURES_PER_IP", 30),
        "LOGIN_FAILURE_WINDOW_SECONDS": _int("ROLSYNC_LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60),
        "LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY": _int("ROLSYNC_LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY", 10),
        "LOGIN_MAX_DELAY_SECONDS": _int("ROLSYNC_LOGIN_MAX_DELAY_SECONDS", 60),
        # GET /metrics (Prometheus): from these addresses/CIDRs, or with `Authorization: Bearer <token>`;
        # neither set: nobody.
        "METRICS_NETWORKS": _networks("ROLSYNC_METRICS_ALLOW"),
        "METRICS_TOKEN": os.environ.get("ROLSYNC_METRICS_TOKEN") or None,
    }
