"""What every benchmark needs: mailboxes on a Dovecot, a fresh database, the app with a CRM and an account.

The orchestrator (`run.py`) starts one Dovecot and fills its mailboxes once;
each measurement then runs in a process of its own (so peak memory and module
state are its own) and gets the server's coordinates from a JSON file.
"""
from __future__ import annotations

import json
import os
import ssl
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = os.environ.get("ROLSYNC_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ROLSYNC_BENCH_REDIS", "redis://127.0.0.1:6379/12")
APPEND_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass
class Mailbox:
    """One IMAP login on the benchmark's Dovecot."""

    host: str
    port: int
    ca_pem: str
    username: str
    password: str

    def client(self):
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl_context=ssl.create_default_context(cadata=self.ca_pem))
        client.login(self.username, self.password)
        return client


def add_mailbox(server, username: str, folders: dict[str, list[bytes]]) -> Mailbox:
    """A new login with these folders filled (MULTIAPPEND in chunks: one round trip per chunk)."""
    password = f"pw-{uuid.uuid4().hex[:12]}"
    server.add_user(username, password)
    mailbox = Mailbox(server.host, server.ssl_port, server.ca_pem, username, password)
    with mailbox.client() as client:
        for folder, messages in folders.items():
            if folder != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            chunk, size = [], 0
            for raw in messages:
                chunk.append(raw)
                size += len(raw)
                if size >= APPEND_CHUNK_BYTES or len(chunk) >= 1000:
                    _multiappend(client, folder, chunk)
                    chunk, size = [], 0
            if chunk:
                _multiappend(client, folder, chunk)
            # Opened once read-write, as the owner's mail client would: Dovecot
            # then moves the delivered mail from new/ to cur/. A folder nobody
            # ever opened keeps 20,000 files in new/, and every STATUS, however
            # cheap the client's poll, makes the server look through them.
            client.select_folder(folder)
            client.unselect_folder()
    return mailbox


def _multiappend(client, folder: str, messages: list[bytes]) -> None:
    # imapclient returns a refusal instead of raising it; a refused MULTIAPPEND appends nothing.
    response = client.multiappend(folder, messages)
    if isinstance(response, tuple) and response[0] != "OK":
        raise RuntimeError(f"APPEND to {folder} refused: {response[1]!r}")


def save_setup(path: Path, **values) -> None:
    path.write_text(json.dumps({k: asdict(v) if isinstance(v, Mailbox) else v for k, v in values.items()}))


def load_setup(path: Path) -> dict:
    setup = json.loads(Path(path).read_text())
    return {k: Mailbox(**v) if isinstance(v, dict) and "password" in v else v for k, v in setup.items()}


# -- databases ------------------------------------------------------------------------------


def create_database(kind: str, work: Path) -> str:
    """The SQLAlchemy URL of a new, empty database of this kind."""
    if kind == "sqlite":
        return f"sqlite:///{work / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    import psycopg

    name = f"rolsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(database_url: str, work: Path, **settings: str):
    """The app on a migrated database, configured like a worker (settings as environment variables)."""
    import logging

    os.environ.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ROLSYNC_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "ROLSYNC_INSTANCE_PATH": str(work / "instance"),
        "ROLSYNC_DOCUMENT_ROOT": str(work / f"documents-{uuid.uuid4().hex[:8]}"),
        **settings,
    })
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from flask_migrate import upgrade

    from rolsync import create_app

    app = create_app()
    with app.app_context():
        upgrade()
    return app


def load_people(session, people, start: int = 0) -> None:
    """Bulk-load CRM records (one address each), far faster than `flask crm load` for a million rows.

    Ids are given explicitly (record i gets id start+i+1) and PostgreSQL's
    sequences are moved past them afterwards; ANALYZE then gives the planner
    the statistics a production database would have.
    """
    from sqlalchemy import text

    from rolsync.models import utcnow

    now = utcnow()
    contacts, candidates, addresses = [], [], []
    for i, person in enumerate(people, start=start + 1):
        (contacts if person.kind == "contact" else candidates).append((i, person.name, now, now))
        addresses.append((i, person.email, i if person.kind == "contact" else None,
                          i if person.kind == "candidate" else None))
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:
            for table, columns, rows in (("contacts", "id, name, created_at, updated_at", contacts),
                                         ("candidates", "id, name, created_at, updated_at", candidates),
                                         ("email_addresses", "id, address, contact_id, candidate_id", addresses)):
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            for table in ("contacts", "candidates", "email_addresses"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
    else:
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores a DateTime in SQLite
        for sql, rows in (
                ("INSERT INTO contacts (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                 [(i, name, stamp, stamp) for i, name, _c, _u in contacts]),
                ("INSERT INTO candidates (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                 [(i, name, stamp, stamp) for i, name, _c, _u in candidates]),
                ("INSERT INTO email_addresses (id, address, contact_id, candidate_id) VALUES (?, ?, ?, ?)", addresses)):
            if rows:
                connection.exec_driver_sql(sql, rows)
    session.commit()
    session.execute(text("ANALYZE"))
    session.commit()


def add_account(app, mailbox: Mailbox, rules: dict | None = None) -> int:
    """A user with this mailbox configured; `rules` (changes to the default rule set) become the active version."""
    from rolsync import resources
    from rolsync.accounts import MailboxForm, configure_mailbox, create_user
    from rolsync.extensions import db
    from rolsync.rules import default_rules
    from rolsync.rules.store import active_version, save_version

    with app.app_context():
        if rules:
            current = active_version(db.session)
            definition = current.definition if current else default_rules()
            for section, values in rules.items():
                definition = {**definition, section: {**definition[section], **values}}
            save_version(db.session, definition, author="bench")
        user = create_user(db.session, mailbox.username, "bench-password-1")
        account = configure_mailbox(db.session, resources.get().secrets, user, MailboxForm(
            host=mailbox.host, port=mailbox.port, security="ssl", username=mailbox.username,
            password=mailbox.password, ca_pem=mailbox.ca_pem))
        db.session.commit()
        return account.id


def run_import_job(app, account_id: int) -> dict:
    """The real scheduled job (`rolsync.jobs.import_account_job`), run in this process."""
    from rolsync import jobs

    jobs.use_app(app)
    return jobs.import_account_job(account_id)
