"""Is this deployment able to work: the readiness checks, and the import workers' heartbeats."""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from redis import Redis
from rq import Queue, Worker
from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3
"""How long a readiness check waits for Redis; a load balancer polls often and must get an answer."""


class Check(str, enum.Enum):
    DATABASE = "database"
    MIGRATIONS = "migrations"
    REDIS = "redis"
    DOCUMENTS = "documents"


def schema_heads(app: Flask) -> set[str]:
    """The newest migration revision(s) this code ships (read once per process: the files do not change)."""
    heads = app.extensions.get("rolsync_schema_heads")
    if heads is None:
        from alembic.script import ScriptDirectory

        config = app.extensions["migrate"].migrate.get_config()
        heads = set(ScriptDirectory.from_config(config).get_heads())
        app.extensions["rolsync_schema_heads"] = heads
    return heads


def _database(session: Session) -> None:
    session.execute(text("SELECT 1"))


def _migrations(app: Flask, session: Session) -> None:
    from alembic.runtime.migration import MigrationContext

    current = set(MigrationContext.configure(session.connection()).get_current_heads())
    if current != schema_heads(app):
        raise RuntimeError(f"the schema is at {sorted(current) or 'nothing'}, the code needs "
                           f"{sorted(schema_heads(app))}: run flask db upgrade")


def _redis(url: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def readiness(app: Flask, session: Session) -> dict[Check, bool]:
    """Each component's state, True when it answers; why one does not goes to the log, never to the caller."""
    from rolsync import resources

    checks = {
        Check.DATABASE: lambda: _database(session),
        Check.MIGRATIONS: lambda: _migrations(app, session),
        Check.REDIS: lambda: _redis(app.config["REDIS_URL"]),
        Check.DOCUMENTS: lambda: resources.get().documents.check(),
    }
    results: dict[Check, bool] = {}
    for check, run in checks.items():
        if check is Check.MIGRATIONS and not results[Check.DATABASE]:
            results[check] = False  # cannot tell without the database
            continue
        try:
            run()
        except Exception as exc:  # a readiness probe reports failures; it must not raise them
            log.warning("not ready: %s: %s: %s", check.value, type(exc).__name__, exc)
            if check in (Check.DATABASE, Check.MIGRATIONS):
                session.rollback()
            results[check] = False
        else:
            results[check] = True
    return results


@dataclass
class WorkerBeat:
    """One RQ worker as the admin panel shows it."""

    name: str
    host: str
    pid: int | None
    state: str
    last_heartbeat: datetime | None
    current_job: str | None


def workers(redis: Redis, queue: Queue) -> list[WorkerBeat]:
    """The workers listening on `queue` that Redis still knows (a dead one drops out when its heartbeat expires)."""
    beats = []
    for worker in Worker.all(connection=redis, queue=queue):
        beats.append(WorkerBeat(worker.name, worker.hostname or "", worker.pid, str(worker.get_state()),
                                worker.last_heartbeat, worker.get_current_job_id()))
    return sorted(beats, key=lambda beat: (beat.host, beat.name))
