"""rolsync: e-mail synchronisation for a recruitment CRM."""
from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import event

from rolsync.config import load_config


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings from the environment, overridden by `test_config`."""
    app = Flask(__name__, instance_path=os.environ.get("ROLSYNC_INSTANCE_PATH") or None,
                instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)

    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:
        # Only behind a proxy the operator named: otherwise X-Forwarded-For is whatever a client typed,
        # and the sign-in limit per client address would be a limit per made-up header.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,  # type: ignore[method-assign]
                                x_host=proxies)

    from rolsync import redact
    from rolsync.extensions import csrf, db, login_manager, migrate

    redact.install()  # werkzeug's access log would otherwise show OAuth callback codes

    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _private_sqlite_files(db.engine.url.database)
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)

    from rolsync import resources

    resources.init_app(app)

    from rolsync.cli import register_commands

    register_commands(app)

    from rolsync.web import register_blueprints

    register_blueprints(app)
    return app


def _private_sqlite_files(path: str | None) -> None:
    """The SQLite file holds mail and password hashes: readable by its owner only (0600).

    Made before SQLite opens it, because SQLite creates the file with the
    process's umask (0644 as a rule) and gives its -wal and -shm files the
    database file's mode; an existing file (and its -wal/-shm) is narrowed too.
    """
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """SQLite as a shared database: the panel reads while workers write.

    WAL lets readers and one writer work at once; the busy timeout makes a
    second writer wait its turn instead of failing. synchronous=NORMAL is
    SQLite's advice for WAL: a crashed process loses nothing committed (only a
    power cut can lose the last commits), and each commit skips an fsync.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A 64 MB page cache (the default is 2 MB) keeps the address index of a
    # CRM of a million records in memory, so a lookup costs what it does with
    # ten thousand; memory-mapped reads skip a copy per page.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()

