"""Shared fixtures: a real Dovecot, real Redis, SQLite and PostgreSQL, a seeded CRM, headless Chromium."""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from devkit.dovecot import DovecotServer

POSTGRES_ADMIN_URL = os.environ.get("ROLSYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("ROLSYNC_TEST_REDIS", "redis://127.0.0.1:6379/13")
ENCRYPTION_KEY = Fernet.generate_key().decode()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_users = itertools.count(1)

# The tiers of `make test-fast` (none of these) and `make test` (all): a test is
# marked by the fixtures it uses, so a new test needs no marker of its own.
MARKER_FIXTURES = {
    "imap": {"dovecot", "oauth_dovecot"},
    "browser": {"browser"},
    "db": {"database_url", "sqlite_url", "postgres_url"},
}
SLOW_MODULES = {"test_worker_faults.py", "test_demo.py"}  # worker processes, the whole demo


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)
        if item.path.name in SLOW_MODULES:
            item.add_marker("slow")


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory):
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"rolsync_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_migrated: set[str] = set()


def _database_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'rolsync.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return _database_url(request, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'rolsync.db'}"


def _environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The settings the app and any worker process of a test share."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": TEST_REDIS_URL,
        "ROLSYNC_QUEUE": f"rolsync-test-{uuid.uuid4().hex[:8]}",
        "ROLSYNC_INSTANCE_PATH": str(tmp_path / "instance"),
        "ROLSYNC_DOCUMENT_ROOT": str(tmp_path / "documents"),
        "ROLSYNC_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "ROLSYNC_IMAP_TIMEOUT": "10",
    }


def _make_app(monkeypatch, tmp_path, database_url):
    from flask_migrate import upgrade

    from rolsync import create_app
    from rolsync.extensions import db

    env = _environment(tmp_path, database_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    app.config["TEST_ENV"] = env
    with app.app_context():
        if database_url not in _migrated or database_url.startswith("sqlite"):
            upgrade()
            _migrated.add(database_url)
        else:
            # Same PostgreSQL database as the previous test: empty it.
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
    return app


@pytest.fixture
def app(monkeypatch, tmp_path, database_url):
    """The app on each database in turn (tests using it run twice)."""
    app = _make_app(monkeypatch, tmp_path, database_url)
    with app.app_context():
        yield app
        from rolsync.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def sqlite_app(monkeypatch, tmp_path, sqlite_url):
    """The app on SQLite only, for tests whose subject is not the database."""
    app = _make_app(monkeypatch, tmp_path, sqlite_url)
    with app.app_context():
        yield app
        from rolsync.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# -- S3: moto's S3 API server on loopback, for the shared document store ------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "rolsync-test-key", "AWS_SECRET_ACCESS_KEY": "rolsync-test-secret",
                  "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 API server, a process of its own on a loopback port (so it shares no memory with the tests)."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("s3") / "moto.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **S3_CREDENTIALS})
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@dataclass
class S3Bucket:
    endpoint_url: str
    name: str
    prefix: str

    def client(self):
        import boto3

        return boto3.session.Session(aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                     region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"]
                                     ).client("s3", endpoint_url=self.endpoint_url)

    def keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=self.prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> S3Bucket:
    """A new bucket, and the app's settings pointing the document store at it; request it before `app`."""
    bucket = S3Bucket(s3_server, f"rolsync-{uuid.uuid4().hex[:12]}", "documents/")
    for key, value in {**S3_CREDENTIALS, "ROLSYNC_DOCUMENT_STORE": "s3", "ROLSYNC_S3_BUCKET": bucket.name,
                       "ROLSYNC_S3_ENDPOINT_URL": s3_server, "ROLSYNC_S3_PREFIX": bucket.prefix}.items():
        monkeypatch.setenv(key, value)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket


@dataclass
class Consultant:
    """A user of the CRM with a real mailbox on the test Dovecot."""

    app: object
    dovecot: DovecotServer
    email: str
    username: str
    password: str
    domain: str
    records: list = field(default_factory=list)

    def deliver(self, folder: str, raw: bytes, flags=()) -> int:
        return self.dovecot.append(self.username, self.password, folder, raw, flags=flags)

    def deliver_many(self, folder: str, messages: list[bytes]) -> None:
        self.dovecot.append_many(self.username, self.password, folder, messages)

    def cli(self, *args: str, input: str | None = None):
        result = self.app.test_cli_runner().invoke(args=list(args), input=input)
        return result

    def import_now(self) -> dict:
        result = self.cli("mail", "import", self.email)
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])

    def notes(self) -> list[dict]:
        result = self.cli("notes", "export")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def warnings(self) -> list[dict]:
        result = self.cli("warnings", "export")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)


def load_crm(app, rows: list[tuple[str, str, str, str]], tmp_path: Path) -> None:
    path = tmp_path / f"crm-{uuid.uuid4().hex[:6]}.csv"
    lines = ["kind,name,email,company"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    result = app.test_cli_runner().invoke(args=["crm", "load", str(path)])
    assert result.exit_code == 0, result.output


def make_consultant(app, dovecot, tmp_path, *, domain: str = "acme-recruit.com", security: str = "ssl",
                    host: str | None = None, ca: bool = True, sent_folder: str | None = "Sent") -> Consultant:
    n = next(_users)
    username = f"consultant{n}@{domain}"
    password = f"pw-{uuid.uuid4().hex[:10]}"
    dovecot.add_user(username, password)
    if sent_folder:
        dovecot.create_folder(username, password, sent_folder)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", username, "--password-stdin", "--name", f"Consultant {n}"],
                           input="user-password-123\n")
    assert result.exit_code == 0, result.output
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(dovecot.ca_pem)
    port = dovecot.ssl_port if security == "ssl" else dovecot.starttls_port
    args = ["mail", "configure", username, "--host", host or dovecot.host, "--port", str(port),
            "--security", security, "--username", username, "--password-stdin"]
    if ca:
        args += ["--ca-file", str(ca_file)]
    result = runner.invoke(args=args, input=password + "\n")
    assert result.exit_code == 0, result.output
    return Consultant(app, dovecot, username, username, password, domain)


@pytest.fixture
def consultant(app, dovecot, tmp_path) -> Consultant:
    return make_consultant(app, dovecot, tmp_path)


@pytest.fixture
def crm(app, tmp_path):
    """A small CRM: contacts first, candidates second, and one shared address."""
    rows = [
        ("contact", "Carol Client", "carol@client.example", "Client Ltd"),
        ("contact", "Dan Dup", "shared@client.example", "Client Ltd"),
        ("contact", "Dana Dup", "shared@client.example", "Other Co"),
        ("candidate", "Cathy Candidate", "cathy@candidates.example", ""),
        ("candidate", "Carl Both", "both@people.example", ""),
        ("contact", "Connie Both", "both@people.example", "Client Ltd"),
        ("candidate", "Pat Pair", "pair@candidates.example", ""),
        ("candidate", "Pam Pair", "pair@candidates.example", ""),
    ]
    load_crm(app, rows, tmp_path)
    return rows


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright's sync API (which must not run inside an asyncio loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # pragma: no cover - only if someone runs the suite under an event loop
        pytest.fail("Playwright's sync API cannot run inside a running asyncio loop")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


# -- OAuth: a local authorisation server standing in for Google and Microsoft ----------------


@pytest.fixture(scope="session")
def oauth_server():
    """The local Authlib authorisation server (devkit/oauth_server.py)."""
    from devkit.oauth_server import OAuthServer

    server = OAuthServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(tmp_path_factory, oauth_server):
    """A second test Dovecot that also accepts the local server's tokens (XOAUTH2), by introspection."""
    server = DovecotServer(tmp_path_factory.mktemp("dovecot-oauth"),
                           oauth2_introspection_url=oauth_server.introspection_url)
    server.start()
    yield server
    server.stop()


@dataclass
class OAuthClient:
    """rolsync as registered with the local server under one provider's name, for one test."""

    provider: str
    client_id: str
    client_secret: str
    server: object

    def allow_redirect_uri(self, uri: str) -> None:
        self.server.clients[self.client_id].redirect_uris.append(uri)


def register_oauth_provider(monkeypatch, tmp_path, oauth_server, oauth_dovecot, provider: str = "google",
                            revoke: bool = True, in_environment: bool = True) -> OAuthClient:
    """Point `provider`'s endpoints at the local server and Dovecot, as an admin's environment would.

    With `in_environment` the client id and secret go there too; without, only
    the endpoints do, and the test enters the client in the admin panel.
    Client ids have the providers' shapes, which the panel checks.
    """
    suffix = uuid.uuid4().hex
    client_id = (f"{int(suffix[:10], 16)}-rolsync{suffix[10:18]}.apps.googleusercontent.com"
                 if provider == "google" else str(uuid.uuid4()))
    client_secret = f"client-secret-{uuid.uuid4().hex}"
    oauth_server.add_client(client_id, client_secret, f"http://localhost/oauth/{provider}/callback")
    ca_file = tmp_path / f"{provider}-imap-ca.pem"
    ca_file.write_text(oauth_dovecot.ca_pem)
    prefix = f"ROLSYNC_{provider.upper()}_"
    for key, value in {
        "AUTHORIZE_URL": oauth_server.authorize_url, "TOKEN_URL": oauth_server.token_url,
        "REVOKE_URL": oauth_server.revoke_url if revoke else "",
        "IMAP_HOST": oauth_dovecot.host, "IMAP_PORT": str(oauth_dovecot.ssl_port), "IMAP_CA_FILE": str(ca_file),
    }.items():
        monkeypatch.setenv(prefix + key, value)
    if in_environment:
        monkeypatch.setenv(prefix + "CLIENT_ID", client_id)
        monkeypatch.setenv(prefix + "CLIENT_SECRET", client_secret)
    else:
        monkeypatch.delenv(prefix + "CLIENT_ID", raising=False)
        monkeypatch.delenv(prefix + "CLIENT_SECRET", raising=False)
    return OAuthClient(provider, client_id, client_secret, oauth_server)


@pytest.fixture
def google(monkeypatch, tmp_path, oauth_server, oauth_dovecot) -> OAuthClient:
    """'Google' is the local server; request it before `app` so the app reads its settings."""
    return register_oauth_provider(monkeypatch, tmp_path, oauth_server, oauth_dovecot)
