"""Per-app helpers built from the config: secrets, documents, Redis and the queue."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import Flask, current_app
from redis import Redis
from rq import Queue

from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.oauth import OAuthProvider, providers_from_config


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
    def oauth_providers(self) -> dict[str, OAuthProvider]:
        """Google / Microsoft as registered for this deployment; empty when neither is configured."""
        return providers_from_config(self.config)

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
    services.secrets
    services.oauth_providers


def get() -> Services:
    return current_app.extensions["rolsync"]
