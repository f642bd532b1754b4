"""Per-app helpers built from the config: secrets, documents, Redis and the queue."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import Flask, current_app
from redis import Redis
from rq import Queue

from rolsync import oauth_clients
from rolsync.config import ConfigError
from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore, store_from_config
from rolsync.extensions import db
from rolsync.mail.hosts import HostPolicy, PolicyError
from rolsync.oauth import OAuthProvider, endpoints_from_config, providers_from_config


@dataclass
class Services:
    config: dict
    instance_path: str

    @cached_property
    def secrets(self) -> SecretBox:
        return SecretBox.from_config(self.config.get("ROLSYNC_ENCRYPTION_KEYS"), self.instance_path,
                                     stored_secrets=_stored_secrets)

    @cached_property
    def suppression_key(self) -> bytes:
        """The key of erased people's address hashes (rolsync.erasure)."""
        from rolsync.erasure import suppression_key

        return suppression_key(self.config.get("ROLSYNC_SUPPRESSION_KEY") or self.config["SECRET_KEY"])

    @cached_property
    def documents(self) -> DocumentStore:
        return store_from_config(self.config)

    @cached_property
    def oauth_environment(self) -> dict[str, OAuthProvider]:
        """The providers registered in the environment: they change only with it, at a restart."""
        return providers_from_config(self.config)

    @cached_property
    def oauth_endpoints(self) -> dict[str, OAuthProvider]:
        """Every provider's endpoints (defaults or the environment's), for clients saved in the panel."""
        return endpoints_from_config(self.config)

    @property
    def oauth_providers(self) -> dict[str, OAuthProvider]:
        """Google / Microsoft as registered for this deployment (environment, else the admin panel).

        Read from the database at each use, so a change in the panel reaches
        every web process and worker at once; empty when neither is set up.
        """
        return oauth_clients.providers_in_use(db.session, self.oauth_environment, self.oauth_endpoints,
                                              self.secrets)

    @cached_property
    def host_policy(self) -> HostPolicy:
        """Where mail servers may be (ROLSYNC_IMAP_ALLOW_PRIVATE, ROLSYNC_IMAP_ALLOWED_HOSTS)."""
        try:
            return HostPolicy.from_settings(self.config.get("IMAP_ALLOW_PRIVATE", True),
                                            self.config.get("IMAP_ALLOWED_HOSTS", ""))
        except PolicyError as exc:
            raise ConfigError(f"ROLSYNC_IMAP_ALLOWED_HOSTS: {exc}") from exc

    @cached_property
    def redis(self) -> Redis:
        # Connections are opened on first use, not here: nothing connects at start-up.
        return Redis.from_url(self.config["REDIS_URL"])

    @cached_property
    def queue(self) -> Queue:
        return Queue(self.config["RQ_QUEUE"], connection=self.redis,
                     default_timeout=self.config["IMPORT_JOB_TIMEOUT"])


def _stored_secrets() -> int:
    """Secrets in the database, 0 when it has no tables yet (asked only when the key file is missing).

    A database that cannot be reached is not taken for an empty one: a new key
    made then could not read what it holds.
    """
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from rolsync.stored_secrets import count_stored

    try:
        return count_stored(db.session, set(inspect(db.engine).get_table_names()))
    except SQLAlchemyError as exc:
        raise ConfigError("the encryption key file is missing and the database cannot be read to check whether "
                          f"secrets are stored under the old key ({type(exc).__name__}); start the database, or "
                          "set ROLSYNC_ENCRYPTION_KEYS") from exc


def init_app(app: Flask) -> None:
    services = Services(app.config, app.instance_path)
    app.extensions["rolsync"] = services
    # Fail at start-up, not at the first import, when the keys (or a provider's CA file) are unusable.
    # (The database is read only when the key file is missing; `flask db upgrade` builds the app before
    # the tables exist, which counts as nothing stored.)
    with app.app_context():
        services.secrets
    services.oauth_environment
    services.oauth_endpoints
    services.host_policy


def get() -> Services:
    return current_app.extensions["rolsync"]
