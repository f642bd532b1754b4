"""gunicorn settings for the rolsync panel: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Everything an operator tunes comes from the environment (deploy/rolsync.env):

    ROLSYNC_BIND        address to listen on (default 127.0.0.1:8000, behind the reverse proxy)
    WEB_CONCURRENCY     worker processes (default: 2 per core, at most 8)
    ROLSYNC_WEB_THREADS threads per process (default 4)
    ROLSYNC_LOG_FORMAT  text (default) or json: one line per request and per event

The access log has no query values that are secrets (OAuth callback codes are
redacted by rolsync.redact, as in the development server's log) and no
cookies or authorisation headers (gunicorn never logs those unless asked).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from gunicorn.glogging import Logger

# The checkout's root, so `rolsync` imports whatever folder gunicorn is started from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rolsync import logs  # noqa: E402

LOG_FORMAT = os.environ.get("ROLSYNC_LOG_FORMAT") or "text"
# Now, not in a hook: the app is built (preload_app) before gunicorn's first hook runs.
logs.configure(LOG_FORMAT)

bind = os.environ.get("ROLSYNC_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * (os.cpu_count() or 1), 8))
worker_class = "gthread"
threads = int(os.environ.get("ROLSYNC_WEB_THREADS") or 4)
# A request that runs this long is stuck (Test Connection is bounded by the IMAP timeout, 30 s).
timeout = 90
graceful_timeout = 30
keepalive = 5
# The app is built once in the master: a missing secret stops the start at once with its
# reason, and the workers share the loaded code. Nothing connects at build time (see post_fork).
preload_app = True
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Client, request line (path and query, OAuth values redacted), status, size, time in
# microseconds, user agent. No Referer: it can carry another site's query string.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus "%(a)s"'


class RolsyncLogger(Logger):
    """gunicorn's logs in rolsync's format (text or JSON), with OAuth query values redacted."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                logs.prepare(handler, LOG_FORMAT)


logger_class = RolsyncLogger


def on_starting(server) -> None:
    database = os.environ.get("DATABASE_URL", "")
    if os.environ.get("ROLSYNC_ENV") == "production" and (not database or database.startswith("sqlite")) \
            and server.cfg.workers > 1:
        logging.getLogger("rolsync.deploy").warning(
            "%d web processes share one SQLite file: writes wait for each other; use PostgreSQL "
            "(DATABASE_URL) for production, or WEB_CONCURRENCY=1", server.cfg.workers)


def post_fork(server, worker) -> None:
    """A worker must not share the master's database connections (there should be none; make sure)."""
    from rolsync.extensions import db

    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)
