"""Mailboxes connected with OAuth 2.0: consent (PKCE, state), XOAUTH2 imports, refresh, revocation, Disconnect.

"Google" and "Microsoft" are the local Authlib server (devkit/oauth_server.py);
the mailbox is a real Dovecot that checks each token by introspection there.
"""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import inspect, select, text

from devkit.builders import build_message
from rolsync import jobs, logs, oauth, resources
from rolsync.extensions import db
from rolsync.models import ImportWarning, MailAccount, User
from tests.conftest import load_crm, register_oauth_provider
from tests.web.conftest import add_user, sign_in

CRM = [("contact", "Carol Client", "carol@client.example", "Client Ltd")]


@pytest.fixture
def oauth_app(google, app):
    """The app (SQLite and PostgreSQL) with "Google" registered; `google` comes first so the app sees it."""
    return app


@pytest.fixture
def oauth_sqlite_app(google, sqlite_app):
    return sqlite_app


class Mailbox:
    """A consultant whose mailbox lives on the OAuth Dovecot, signed in to the panel with a test client."""

    def __init__(self, app, dovecot, oauth_server, tmp_path):
        self.app, self.dovecot, self.oauth_server = app, dovecot, oauth_server
        self.email = f"oauth-{uuid.uuid4().hex[:8]}@agency.example"
        self.imap_password = f"imap-{uuid.uuid4().hex}"  # only for delivering test mail
        dovecot.add_user(self.email, self.imap_password)
        dovecot.create_folder(self.email, self.imap_password, "Sent")
        add_user(app, email=self.email)
        self.client = app.test_client()
        sign_in(self.client, self.email)
        load_crm(app, CRM, tmp_path)

    def deliver(self, subject: str) -> None:
        raw = build_message(from_="Carol Client <carol@client.example>", to=[self.email], subject=subject)
        self.dovecot.append(self.email, self.imap_password, "INBOX", raw)

    def start(self, provider: str = "google") -> str:
        """Press Connect: the consent page's URL."""
        response = self.client.get(f"/oauth/{provider}/connect")
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return response.headers["Location"]

    def consent(self, consent_url: str, decision: str = "allow") -> str:
        """What the person does on the provider's page; returns where the provider sends the browser back."""
        page = requests.get(consent_url, timeout=10)
        assert page.status_code == 200, page.text[:500]
        answer = requests.post(consent_url, data={"account": self.email, "decision": decision},
                               allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text[:500]
        return answer.headers["Location"]

    def come_back(self, callback_url: str):
        parts = urlsplit(callback_url)
        return self.client.get(f"{parts.path}?{parts.query}")

    def connect(self, provider: str = "google"):
        response = self.come_back(self.consent(self.start(provider)))
        assert response.status_code == 302
        return self.client.get("/preferences")

    def account(self) -> MailAccount:
        db.session.expire_all()
        user = db.session.scalar(select(User).where(User.email == self.email))
        return user.mail_account

    def cli(self, *args: str):
        return self.app.test_cli_runner().invoke(args=list(args))

    def import_now(self) -> dict:
        result = self.cli("mail", "import", self.email)
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])


@pytest.fixture
def mailbox(oauth_app, oauth_dovecot, oauth_server, tmp_path) -> Mailbox:
    return Mailbox(oauth_app, oauth_dovecot, oauth_server, tmp_path)


@pytest.fixture
def sqlite_mailbox(oauth_sqlite_app, oauth_dovecot, oauth_server, tmp_path) -> Mailbox:
    return Mailbox(oauth_sqlite_app, oauth_dovecot, oauth_server, tmp_path)


def _database_text() -> str:
    """Every row of every table, as text."""
    rows = []
    for table in inspect(db.engine).get_table_names():
        for row in db.session.execute(text(f'SELECT * FROM "{table}"')):
            rows.append(repr(tuple(row)))
    return "\n".join(rows)


def _our_logs(caplog) -> str:
    """What this process logged, less the stand-in provider's own server code (it may log what it issues)."""
    server_side = ("authlib.oauth2.rfc6749", "authlib.oauth2.rfc7009", "authlib.oauth2.rfc7636",
                   "authlib.oauth2.rfc7662", "authlib.integrations.flask_oauth2")
    # As shipped: the JSON line of each record, tracebacks included (a secret in an exception's text counts too).
    formatter = logs.JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records if not record.name.startswith(server_side))


def _assert_no_secrets(secrets: list[str], *places: str) -> None:
    assert secrets and all(len(secret) > 20 for secret in secrets)
    for place in places:
        for secret in secrets:
            assert secret not in place


def test_connect_with_google_then_import_a_note_over_xoauth2(mailbox, google, oauth_server, caplog):
    # Here, not in a fixture: the app's migrations reset the logging configuration (alembic.ini).
    caplog.set_level(logging.DEBUG)
    mailbox.deliver("Interview on Tuesday")

    page = mailbox.connect().get_data(as_text=True)

    assert "Connected with Google" in page and mailbox.email in page
    assert "Mailbox connection successful" in page
    account = mailbox.account()
    assert (account.auth_method, account.oauth_provider, account.username) == ("oauth2", "google", mailbox.email)
    assert account.password_encrypted is None
    counts = mailbox.import_now()
    assert counts["imported"] == 1
    notes = json.loads(mailbox.cli("notes", "export").output)
    assert [(n["record_email"], n["subject"]) for n in notes] == [("carol@client.example", "Interview on Tuesday")]

    # The job carries the account id only; nothing secret reaches Redis, the database or the logs.
    svc = resources.get()
    job, _created = jobs.enqueue_import(svc.queue, account.id)
    try:
        assert (job.args, job.kwargs) == ((account.id,), {})
        stored = b" ".join(value for value in svc.redis.hgetall(job.key).values())
        secrets = oauth_server.issued + [google.client_secret]
        _assert_no_secrets([s.encode() for s in secrets], stored)
        assert any(record.name.startswith("urllib3") for record in caplog.records)  # DEBUG was captured
        _assert_no_secrets(secrets, _database_text(), _our_logs(caplog), page)
    finally:
        job.delete()


def test_test_connection_works_for_an_oauth_mailbox(sqlite_mailbox):
    sqlite_mailbox.connect()

    response = sqlite_mailbox.client.post("/preferences/test")
    page = sqlite_mailbox.client.get(response.headers["Location"]).get_data(as_text=True)

    assert "Mailbox connection successful" in page
    result = sqlite_mailbox.cli("mail", "test", sqlite_mailbox.email)
    assert result.exit_code == 0 and "Mailbox connection successful" in result.output


def test_the_access_token_is_refreshed_before_it_expires(sqlite_mailbox, oauth_server, monkeypatch):
    monkeypatch.setattr(oauth_server, "token_lifetime", 3)
    monkeypatch.setattr(oauth, "EXPIRY_MARGIN", timedelta(seconds=1))
    sqlite_mailbox.connect()  # the connection test uses the first access token
    issued = len(oauth_server.tokens_of(sqlite_mailbox.email))

    sqlite_mailbox.deliver("First")
    assert sqlite_mailbox.import_now()["imported"] == 1
    assert len(oauth_server.tokens_of(sqlite_mailbox.email)) == issued  # still valid: reused

    expires_at = sqlite_mailbox.account().oauth_access_expires_at
    time.sleep(3.1)
    sqlite_mailbox.deliver("Second")
    assert sqlite_mailbox.import_now()["imported"] == 1
    assert len(oauth_server.tokens_of(sqlite_mailbox.email)) == issued + 1  # refreshed once, before login
    assert sqlite_mailbox.account().oauth_access_expires_at > expires_at
    _assert_no_secrets(oauth_server.issued, _database_text())


def test_a_refused_access_token_is_refreshed_once_and_the_import_goes_on(sqlite_mailbox, oauth_server):
    sqlite_mailbox.connect()
    issued = len(oauth_server.tokens_of(sqlite_mailbox.email))
    oauth_server.end_access_tokens(sqlite_mailbox.email)  # still unexpired by the clock

    sqlite_mailbox.deliver("After the token ended")
    assert sqlite_mailbox.import_now()["imported"] == 1
    assert len(oauth_server.tokens_of(sqlite_mailbox.email)) == issued + 1


def test_revoked_consent_pauses_with_an_auth_failed_warning_and_a_reconnect_button(mailbox, oauth_server):
    mailbox.connect()
    oauth_server.revoke_user(mailbox.email)  # Google Account > Security > remove access

    result = mailbox.cli("mail", "import", mailbox.email)

    assert result.exit_code != 0
    account = mailbox.account()
    assert account.paused and account.oauth_refresh_token_encrypted is None
    warnings = [w for w in json.loads(mailbox.cli("warnings", "export").output) if w["kind"] == "auth_failed"]
    assert [w["status"] for w in warnings] == ["open"]
    page = mailbox.client.get("/warnings").get_data(as_text=True)
    assert "Reconnect with Google" in page and "/oauth/google/connect" in page
    assert "Reconnect with Google" in mailbox.client.get("/preferences").get_data(as_text=True)

    # Reconnecting resumes the mailbox and resolves the warning.
    mailbox.deliver("Back again")
    page = mailbox.connect().get_data(as_text=True)
    assert "Mailbox connection successful" in page
    account = mailbox.account()
    assert not account.paused
    assert db.session.scalar(select(ImportWarning.status).where(ImportWarning.kind == "auth_failed")) == "resolved"
    assert mailbox.import_now()["imported"] == 1


def test_a_callback_with_another_state_is_refused(sqlite_mailbox):
    callback = sqlite_mailbox.consent(sqlite_mailbox.start())
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    assert query["state"]

    forged = sqlite_mailbox.client.get(f"{parts.path}?code={query['code'][0]}&state=forged-state")
    page = sqlite_mailbox.client.get(forged.headers["Location"]).get_data(as_text=True)

    assert "did not belong" in page
    assert sqlite_mailbox.account() is None


def test_a_callback_without_a_connection_started_in_this_browser_is_refused(sqlite_mailbox, oauth_sqlite_app):
    # Another signed-in browser (no state in its session) receives the first one's answer.
    callback = sqlite_mailbox.consent(sqlite_mailbox.start())
    other = oauth_sqlite_app.test_client()
    sign_in(other, sqlite_mailbox.email)
    parts = urlsplit(callback)

    page = other.get(f"{parts.path}?{parts.query}", follow_redirects=True).get_data(as_text=True)

    assert "did not belong" in page
    assert sqlite_mailbox.account() is None


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(sqlite_mailbox):
    callback = sqlite_mailbox.consent(sqlite_mailbox.start())
    with sqlite_mailbox.client.session_transaction() as session:
        session["oauth_consent"]["verifier"] = "x" * 64  # not the one the challenge was made from
        session.modified = True

    page = sqlite_mailbox.client.get(sqlite_mailbox.come_back(callback).headers["Location"]).get_data(as_text=True)

    assert "refused to finish the connection (invalid_grant)" in page
    assert sqlite_mailbox.account() is None


def test_denying_consent_changes_nothing(sqlite_mailbox):
    callback = sqlite_mailbox.consent(sqlite_mailbox.start(), decision="deny")

    page = sqlite_mailbox.client.get(sqlite_mailbox.come_back(callback).headers["Location"]).get_data(as_text=True)

    assert "access was not allowed" in page
    assert sqlite_mailbox.account() is None


def test_disconnect_revokes_at_google_and_forgets_the_tokens(sqlite_mailbox, oauth_server):
    sqlite_mailbox.connect()
    refresh_token = oauth_server.tokens_of(sqlite_mailbox.email)[0].refresh_token

    response = sqlite_mailbox.client.post("/preferences/oauth/disconnect")
    page = sqlite_mailbox.client.get(response.headers["Location"]).get_data(as_text=True)

    assert "its access withdrawn at Google" in page
    assert refresh_token in oauth_server.revocations
    assert all(token.revoked for token in oauth_server.tokens_of(sqlite_mailbox.email))
    account = sqlite_mailbox.account()
    assert (account.oauth_refresh_token_encrypted, account.oauth_access_token_encrypted) == (None, None)
    assert account.paused
    assert sqlite_mailbox.cli("mail", "test", sqlite_mailbox.email).exit_code == 1


def test_microsoft_has_no_revocation_so_disconnect_only_forgets(monkeypatch, tmp_path, oauth_server, oauth_dovecot):
    register_oauth_provider(monkeypatch, tmp_path, oauth_server, oauth_dovecot, "microsoft", revoke=False)
    from tests.conftest import _make_app

    app = _make_app(monkeypatch, tmp_path / "ms", f"sqlite:///{tmp_path / 'ms.db'}")
    with app.app_context():
        mailbox = Mailbox(app, oauth_dovecot, oauth_server, tmp_path)
        page = mailbox.connect("microsoft").get_data(as_text=True)
        assert "Connected with Microsoft" in page and "Mailbox connection successful" in page
        revocations = len(oauth_server.revocations)

        response = mailbox.client.post("/preferences/oauth/disconnect")
        page = mailbox.client.get(response.headers["Location"]).get_data(as_text=True)

        assert "Microsoft keeps listing the app" in page
        assert len(oauth_server.revocations) == revocations
        assert mailbox.account().oauth_refresh_token_encrypted is None
        db.session.remove()
        db.engine.dispose()


def test_a_password_replaces_the_oauth_connection(sqlite_mailbox):
    sqlite_mailbox.connect()
    account = sqlite_mailbox.account()

    response = sqlite_mailbox.client.post("/preferences/mailbox", data={
        "provider": "custom", "host": account.host, "port": account.port, "security": "ssl",
        "username": sqlite_mailbox.email, "password": sqlite_mailbox.imap_password, "ca_pem": account.ca_pem,
        "enabled": "y"})
    page = sqlite_mailbox.client.get(response.headers["Location"]).get_data(as_text=True)

    assert "Mailbox connection successful" in page
    account = sqlite_mailbox.account()
    assert (account.auth_method, account.oauth_provider, account.oauth_refresh_token_encrypted) == (
        "password", None, None)
    assert "Connect with Google" in page


def test_a_client_id_without_its_secret_stops_the_app_with_a_clear_message(monkeypatch, tmp_path):
    from rolsync.config import ConfigError, load_config

    monkeypatch.setenv("ROLSYNC_MICROSOFT_CLIENT_ID", "some-app-id")
    monkeypatch.delenv("ROLSYNC_MICROSOFT_CLIENT_SECRET", raising=False)

    with pytest.raises(ConfigError, match="ROLSYNC_MICROSOFT_CLIENT_SECRET is not"):
        load_config(str(tmp_path))


def test_production_endpoints_are_the_defaults(monkeypatch, tmp_path):
    from rolsync.config import load_config

    monkeypatch.setenv("ROLSYNC_MICROSOFT_CLIENT_ID", "some-app-id")
    monkeypatch.setenv("ROLSYNC_MICROSOFT_CLIENT_SECRET", "some-secret")
    monkeypatch.setenv("ROLSYNC_MICROSOFT_TENANT", "contoso.example")

    microsoft = oauth.providers_from_config(load_config(str(tmp_path)))["microsoft"]

    assert microsoft.authorize_url == "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/authorize"
    assert microsoft.token_url == "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
    assert (microsoft.imap_host, microsoft.imap_port, microsoft.revoke_url) == ("outlook.office365.com", 993, "")
    assert "https://outlook.office.com/IMAP.AccessAsUser.All" in microsoft.scope.split()
    assert "offline_access" in microsoft.scope.split()
    assert "some-secret" not in repr(microsoft)


def test_the_mailbox_address_comes_from_the_id_token():
    def part(claims: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    assert oauth._id_token_email(f"{part({'alg': 'none'})}.{part({'email': 'jo@agency.example'})}.") == \
        "jo@agency.example"
    assert oauth._id_token_email(f"x.{part({'preferred_username': 'jo@contoso.example'})}.sig") == \
        "jo@contoso.example"
    assert oauth._id_token_email(f"x.{part({'sub': '123'})}.sig") is None
    assert oauth._id_token_email("not-a-jwt") is None
    assert oauth._id_token_email(None) is None
