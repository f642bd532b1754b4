"""Production: gunicorn in production mode on PostgreSQL, the health probes, refusals of unsafe settings, logs."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask_migrate import stamp

from devkit.builders import build_message, minimal_pdf
from rolsync import logs
from rolsync.config import ConfigError, load_config
from rolsync.extensions import db
from rolsync.models import ImportRun, MailAccount
from tests.conftest import _make_app, free_port, make_consultant, wait_for_port
from tests.web.conftest import PASSWORD, add_user, sign_in

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]


class Gunicorn:
    """`gunicorn -c deploy/gunicorn.conf.py wsgi:app` on a free loopback port, its output in a file."""

    def __init__(self, env: dict[str, str], tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / f"gunicorn-{self.port}.log", "w+")
        self.process = subprocess.Popen(GUNICORN, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**env, "ROLSYNC_BIND": f"127.0.0.1:{self.port}"})

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def production_env(monkeypatch, tmp_path, postgres_url):
    """A migrated PostgreSQL database with an admin, and the environment of a production panel on it."""
    app = _make_app(monkeypatch, tmp_path, postgres_url)
    admin = add_user(app, admin=True)
    with app.app_context():
        db.engine.dispose()
    env = {**os.environ, **app.config["TEST_ENV"], "ROLSYNC_ENV": "production", "WEB_CONCURRENCY": "2",
           "ROLSYNC_TRUSTED_PROXIES": "1", "ROLSYNC_LOG_FORMAT": "json"}
    env.pop("FLASK_DEBUG", None)
    return env, admin


class ProxiedClient:
    """What the reverse proxy sends on: HTTPS stated in X-Forwarded-Proto, and the session cookie.

    The session cookie is Secure in production, so an HTTP client would not send it back over
    the loopback's plain HTTP; this one does, as a browser does over the proxy's HTTPS.
    """

    def __init__(self, url: str):
        self.url = url
        self.cookie = ""

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-Forwarded-Proto": "https", "Referer": f"https://{self.url.split('://')[1]}{path}"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        response = requests.request(method, self.url + path, headers=headers, allow_redirects=False, timeout=30,
                                    **kwargs)
        for cookie in response.raw.headers.getlist("Set-Cookie"):
            assert "Secure" in cookie and "HttpOnly" in cookie, cookie
            self.cookie = cookie.split(";", 1)[0]
        return response


def test_gunicorn_serves_the_panel_in_production_on_postgresql(production_env, tmp_path):
    env, admin = production_env
    server = Gunicorn(env, tmp_path)
    try:
        wait_for_port(server.port, server.process)
        assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
        ready = requests.get(server.url + "/readyz", timeout=30)
        assert ready.status_code == 200, server.output()
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "redis": "ok",
                                                            "documents": "ok"}}

        client = ProxiedClient(server.url)
        login = client.request("GET", "/login")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login.text).group(1)
        signed_in = client.request("POST", "/login", data={"email": admin.email, "password": PASSWORD,
                                                           "csrf_token": token})
        assert signed_in.status_code == 302, signed_in.text[:500]
        dashboard = client.request("GET", "/")
        assert dashboard.status_code == 200
        assert "Dashboard" in dashboard.text and "Import workers" in dashboard.text
        assert requests.get(server.url + "/", timeout=30, allow_redirects=False).status_code == 302
        requests.get(server.url + "/oauth/google/callback?code=one-time-code-4711&state=state-0815", timeout=30)
    finally:
        server.stop()
    lines = [line for line in server.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any('"GET /readyz' in entry["message"] for entry in entries)
    assert any("/oauth/google/callback?code=[redacted]" in entry["message"] for entry in entries)
    for secret in (PASSWORD, env["SECRET_KEY"], env["ROLSYNC_ENCRYPTION_KEYS"], "one-time-code-4711", "state-0815"):
        assert secret not in server.output()


def test_production_refuses_to_start_without_its_secrets(production_env, tmp_path):
    env, _admin = production_env
    for missing, reason in (("SECRET_KEY", "SECRET_KEY is not set"),
                            ("ROLSYNC_ENCRYPTION_KEYS", "ROLSYNC_ENCRYPTION_KEYS is not set")):
        server = Gunicorn({key: value for key, value in env.items() if key != missing}, tmp_path)
        try:
            assert server.process.wait(timeout=90) != 0
        finally:
            server.stop()
        assert reason in server.output()


@pytest.mark.parametrize("setting, value, reason", [
    ("FLASK_DEBUG", "1", "FLASK_DEBUG is on"),
    ("ROLSYNC_PUBLIC_URL", "http://crm.example.com", "plain HTTP"),
])
def test_production_refuses_unsafe_settings(monkeypatch, tmp_path, setting, value, reason):
    monkeypatch.setenv("ROLSYNC_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-long-random-secret-for-this-test")
    monkeypatch.setenv("ROLSYNC_ENCRYPTION_KEYS", "not-checked-here")
    monkeypatch.setenv(setting, value)
    with pytest.raises(ConfigError, match=reason):
        load_config(str(tmp_path))
    monkeypatch.delenv(setting)
    monkeypatch.setenv("ROLSYNC_PUBLIC_URL", "https://crm.example.com")
    assert load_config(str(tmp_path))["PUBLIC_URL"] == "https://crm.example.com"


# -- the probes -------------------------------------------------------------------------------


def test_healthz_answers_without_signing_in(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_is_503_when_redis_does_not_answer(app, caplog):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # a closed loopback port
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "failing", "checks": {
        "database": "ok", "migrations": "ok", "redis": "failing", "documents": "ok"}}
    assert "redis" in caplog.text  # the reason is in the log, for the operator


def test_readyz_is_503_when_the_schema_is_behind_the_code(app):
    stamp(revision="0006")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["migrations"] == "failing"
    stamp(revision="head")
    assert app.test_client().get("/readyz").status_code == 200


def test_readyz_is_503_when_the_bucket_is_gone(s3_bucket, sqlite_app):
    client = sqlite_app.test_client()
    assert client.get("/readyz").status_code == 200
    s3_bucket.client().delete_bucket(Bucket=s3_bucket.name)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["documents"] == "failing"


def test_admins_see_each_workers_machine_state_and_heartbeat(sqlite_app, tmp_path):
    import socket

    env = {**os.environ, **sqlite_app.config["TEST_ENV"]}
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "worker.py", "--no-scheduler"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        admin = add_user(sqlite_app, admin=True)
        client = sqlite_app.test_client()
        sign_in(client, admin.email)
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline and "Waiting for work" not in page:
            time.sleep(0.5)
            page = client.get("/").get_data(as_text=True)
        assert "Waiting for work" in page, page[-3000:]
        assert socket.gethostname() in page and f"process {worker.pid}" in page
        assert "seconds ago" in page
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()


# -- logs ----------------------------------------------------------------------------------------


def test_an_imports_log_lines_are_json_with_its_mailbox_and_run_and_no_secret(app, dovecot, tmp_path, crm):
    consultant = make_consultant(app, dovecot, tmp_path)
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="Hi",
                                              text="x", attachments=[("cv.pdf", "application/pdf",
                                                                      minimal_pdf())]))
    stream = io.StringIO()
    handler = logs.prepare(logging.StreamHandler(stream), "json")
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.DEBUG
    try:
        consultant.import_now()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    ours = [entry for entry in entries if entry["logger"].startswith("rolsync.importer")]
    assert ours, "the import logged nothing of its own"
    account = db.session.query(MailAccount).one()
    run = db.session.query(ImportRun).order_by(ImportRun.id.desc()).first()
    assert all((entry["mailbox_id"], entry["run_id"]) == (account.id, run.id) for entry in ours)
    text = stream.getvalue()
    for secret in (consultant.password, app.config["SECRET_KEY"], app.config["ROLSYNC_ENCRYPTION_KEYS"]):
        assert secret not in text


def test_a_text_log_line_names_the_import_and_keeps_a_traceback_on_its_line():
    stream = io.StringIO()
    logger = logging.getLogger("rolsync.test_production")
    handler = logs.prepare(logging.StreamHandler(stream), "text")
    logger.addHandler(handler)
    try:
        with logs.import_context(mailbox=12, run=3456):
            try:
                raise ValueError("broken")
            except ValueError:
                logger.exception("saving failed")
        logger.warning("outside an import")
    finally:
        logger.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert "[mailbox=12 run=3456]: saving failed" in first and "ValueError: broken" in first
    assert "mailbox" not in second and second.endswith("outside an import")
