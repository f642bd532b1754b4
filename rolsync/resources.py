"""Per-app helpers built from the config: secrets, documents, Redis and the queue."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import Flask, current_app
from redis import Redis
from rq import Queue

from rolsync import oauth_clients
from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.extensions import db
from rolsync.oauth import OAuthProvider, endpoints_from_config, providers_from_config


@dataclass
class Services:
    config: dict
    instance_path: str

    @cached_property
    def secrets(self) -> SecretBox:
        return SecretBox.from_config(self.config.get("ROLSYNC_ENCRYPTION_KEYS"), self.instance_path)

    @cached_property
    def documents(self) -> DocumentStore:
        return DocumentStore(self.config["DOCUMENT_ROOT"])

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
    def redis(self) -> Redis:
        # Connections are opened on first use, not here: nothing connects at start-up.
        return Redis.from_url(self.config["REDIS_URL"])

    @cached_property
    def queue(self) -> Queue:
        return Queue(self.config["RQ_QUEUE"], connection=self.redis,
                     default_timeout=self.config["IMPORT_JOB_TIMEOUT"])


def init_app(app: Flask) -> None:
    services = Services(app.config, app.instance_path)
    app.extensions["rolsync"] = services
    # Fail at start-up, not at the first import, when the keys (or a provider's CA file) are unusable.
    # (Nothing here reads the database: `flask db upgrade` builds the app before the tables exist.)
    _ = (services.secrets, services.oauth_environment, services.oauth_endpoints)


def get() -> Services:
    return current_app.extensions["rolsync"]
