"""Mail sign-in providers: the admin page that sets up Google / Microsoft, the environment winning over it,
and mailboxes connected through a provider set up only there (the local Authlib server and its Dovecot)."""
from __future__ import annotations

import json
import logging
import re

import pytest
from sqlalchemy import select

from rolsync import create_app, resources
from rolsync.extensions import db
from rolsync.models import OAuthClient
from tests.conftest import register_oauth_provider
from tests.test_oauth import Mailbox, _database_text
from tests.web.conftest import csrf_token

PAGE = "/admin/mail-providers"


def _save(client, provider: str, **fields):
    return client.post(f"{PAGE}/{provider}", data={f"{provider}-{key}": value for key, value in fields.items()})


def _card(html: str, provider: str) -> str:
    """The provider's card on the page."""
    match = re.search(rf'<section class="card provider-card" id="{provider}".*?</section>', html, re.S)
    assert match, f"no {provider} card"
    return match.group(0)


def _text(html: str) -> str:
    """What a reader sees of a page: no tags, single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _status(client, provider: str) -> str:
    card = _card(client.get(PAGE).get_data(as_text=True), provider)
    return re.search(r"data-status>([^<]+)<", card).group(1)


@pytest.fixture
def google_endpoints(monkeypatch, tmp_path, oauth_server, oauth_dovecot):
    """'Google' registered at the local server with only its endpoints in the environment: the admin enters the
    client in the panel. Request it before `app`."""
    return register_oauth_provider(monkeypatch, tmp_path, oauth_server, oauth_dovecot, in_environment=False)


GOOGLE_ID = "123456789012-abcdefghij.apps.googleusercontent.com"
GOOGLE_SECRET = "GOCSPX-not-shown-anywhere-0123456789"


def test_an_admin_saves_google_and_the_secret_is_stored_only_encrypted(app, admin, caplog):
    caplog.set_level(logging.INFO, logger="rolsync.oauth_clients")
    page = admin.client.get(PAGE).get_data(as_text=True)
    assert "Mail sign-in providers" in page
    card = _card(page, "google")
    assert "Not set up" in card
    assert "http://localhost/oauth/google/callback" in card and "https://mail.google.com/" in card
    assert "http://localhost/oauth/microsoft/callback" in _card(page, "microsoft")

    response = _save(admin.client, "google", client_id=GOOGLE_ID, client_secret=GOOGLE_SECRET)

    assert response.status_code == 302
    page = admin.client.get(PAGE).get_data(as_text=True)
    assert "Google is set up" in page and _status(admin.client, "google") == "Set up"
    assert "A secret is saved. Leave this empty to keep it." in _card(page, "google")
    assert GOOGLE_ID in page and GOOGLE_SECRET not in page
    assert GOOGLE_SECRET not in _database_text()
    row = db.session.get(OAuthClient, "google")
    assert (row.client_id, row.updated_by_id, row.tenant) == (GOOGLE_ID, admin.id, None)
    assert resources.get().oauth_providers["google"].client_secret == GOOGLE_SECRET
    audit = [r.getMessage() for r in caplog.records if r.name == "rolsync.oauth_clients"]
    assert audit == [f"{admin.email} saved the google client in the panel: client id {GOOGLE_ID}, secret replaced"]
    assert GOOGLE_SECRET not in caplog.text

    # Saving again with the secret left empty keeps it.
    assert _save(admin.client, "google", client_id=GOOGLE_ID, client_secret="").status_code == 302
    db.session.expire_all()
    assert resources.get().oauth_providers["google"].client_secret == GOOGLE_SECRET
    assert "secret kept" in caplog.records[-1].getMessage()
    # ...but not for another client id: its secret is another one.
    response = _save(admin.client, "google", client_id="999-other.apps.googleusercontent.com", client_secret="")
    assert response.status_code == 422
    assert "A new client ID comes with its own secret" in response.get_data(as_text=True)
    assert db.session.scalar(select(OAuthClient.client_id)) == GOOGLE_ID


def test_bad_values_are_refused_with_a_message_per_field(app, admin):
    response = _save(admin.client, "microsoft", client_id="my app", client_secret="2b1f7e58-2f4b-4c38-9d0c-"
                     "5f2b9a1d7e31", tenant="not a tenant!")

    assert response.status_code == 422
    card = _card(response.get_data(as_text=True), "microsoft")
    assert "A client ID is one word with no spaces" in card
    assert "That is the secret&#39;s ID. Enter its Value" in card
    assert "Enter the Directory (tenant) ID" in card
    assert 'value="my app"' in card and "2b1f7e58" not in card  # the id comes back, the secret does not
    assert db.session.scalar(select(OAuthClient)) is None

    response = _save(admin.client, "google", client_id="1234-abc", client_secret="")
    html = _card(response.get_data(as_text=True), "google")
    assert "A Google client ID ends in .apps.googleusercontent.com" in html
    assert "Enter the client secret." not in html  # the client id's problem comes first
    response = _save(admin.client, "google", client_id=GOOGLE_ID, client_secret="")
    assert "Enter the client secret." in _card(response.get_data(as_text=True), "google")


@pytest.mark.parametrize("tenant, saved", [
    ("", "common"), ("Organizations", "organizations"), ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
    ("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "72f988bf-86f1-41af-91ab-2d7cd011db47")])
def test_a_microsoft_tenant_is_a_guid_a_domain_or_a_keyword(app, admin, tenant, saved):
    response = _save(admin.client, "microsoft", client_id="1B2C3D4E-0000-4A5B-9C8D-0123456789AB",
                     client_secret="abc8Q~secret.value_0123456789", tenant=tenant)

    assert response.status_code == 302, response.get_data(as_text=True)
    microsoft = resources.get().oauth_providers["microsoft"]
    assert microsoft.client_id == "1b2c3d4e-0000-4a5b-9c8d-0123456789ab"
    assert microsoft.authorize_url == f"https://login.microsoftonline.com/{saved}/oauth2/v2.0/authorize"
    assert microsoft.token_url == f"https://login.microsoftonline.com/{saved}/oauth2/v2.0/token"


def test_only_admins_see_or_change_the_providers(app, user):
    assert user.client.get(PAGE).status_code == 403
    assert _save(user.client, "google", client_id=GOOGLE_ID, client_secret=GOOGLE_SECRET).status_code == 403
    assert user.client.post(f"{PAGE}/google/remove").status_code == 403
    assert db.session.scalar(select(OAuthClient)) is None
    assert "/admin/mail-providers" not in user.client.get("/").get_data(as_text=True)


def test_saving_needs_the_pages_csrf_token(admin, csrf_app):
    response = _save(admin.client, "google", client_id=GOOGLE_ID, client_secret=GOOGLE_SECRET)
    assert response.status_code == 400
    assert db.session.scalar(select(OAuthClient)) is None

    token = csrf_token(admin.client, PAGE)
    response = admin.client.post(f"{PAGE}/google", data={
        "google-csrf_token": token, "google-client_id": GOOGLE_ID, "google-client_secret": GOOGLE_SECRET})
    assert response.status_code == 302
    assert db.session.get(OAuthClient, "google") is not None


def test_a_provider_set_in_the_environment_is_read_only_and_wins(google, app, admin):
    from rolsync import oauth_clients

    oauth_clients.save_client(db.session, resources.get().secrets, "google", oauth_clients.ClientSettings(
        GOOGLE_ID, GOOGLE_SECRET), by=admin.user)
    db.session.commit()

    card = _card(admin.client.get(PAGE).get_data(as_text=True), "google")

    assert "Set in the environment by whoever runs rolsync" in card
    assert google.client_id in card and "google-client_id" not in card and "Remove" not in card
    assert f"Settings saved here earlier (client ID <code>{GOOGLE_ID}</code>) are not used" in card
    assert resources.get().oauth_providers["google"].client_id == google.client_id
    response = _save(admin.client, "google", client_id="1-x.apps.googleusercontent.com", client_secret="x" * 30)
    assert "is set in the environment by whoever runs rolsync" in admin.client.get(
        response.headers["Location"]).get_data(as_text=True)
    assert admin.client.post(f"{PAGE}/google/remove").status_code == 302
    db.session.expire_all()
    assert db.session.get(OAuthClient, "google").client_id == GOOGLE_ID


def test_a_provider_set_up_only_in_the_panel_connects_and_imports_then_removing_it_stops_the_import(
        google_endpoints, app, admin, oauth_dovecot, oauth_server, tmp_path):
    # Another process, started before the change and never restarted: it must see the change too.
    other_process = create_app({"TESTING": True})
    with other_process.app_context():
        assert resources.get().oauth_providers == {}
    mailbox = Mailbox(app, oauth_dovecot, oauth_server, tmp_path)
    assert "Connect with Google" not in mailbox.client.get("/preferences").get_data(as_text=True)

    assert _save(admin.client, "google", client_id=google_endpoints.client_id,
                 client_secret=google_endpoints.client_secret).status_code == 302

    with other_process.app_context():
        assert resources.get().oauth_providers["google"].client_id == google_endpoints.client_id
        db.session.remove()
        db.engine.dispose()
    mailbox.deliver("Interview on Tuesday")
    page = mailbox.connect().get_data(as_text=True)
    assert "Connected with Google" in page and "Mailbox connection successful" in page
    assert mailbox.import_now()["imported"] == 1
    assert google_endpoints.client_secret not in _database_text()

    card = _card(admin.client.get(PAGE).get_data(as_text=True), "google")
    assert "1 mailbox is connected with Google." in card and "not set up on this rolsync any more" in card
    response = admin.client.post(f"{PAGE}/google/remove")
    assert "The 1 mailbox connected with it stop importing" in admin.client.get(
        response.headers["Location"]).get_data(as_text=True)
    assert _status(admin.client, "google") == "Not set up"

    mailbox.deliver("After the removal")
    result = mailbox.cli("mail", "import", mailbox.email)
    assert result.exit_code != 0
    assert "Connecting mailboxes with Google is not set up on this rolsync any more" in result.output
    account = mailbox.account()
    assert account.oauth_refresh_token_encrypted is not None  # its data stays for when Google is back
    assert "Connecting mailboxes with Google is not set up on this rolsync any more" in (account.last_error or "")
    assert json.loads(mailbox.cli("notes", "export").output)[0]["subject"] == "Interview on Tuesday"
    page = _text(mailbox.client.get("/preferences").get_data(as_text=True))
    assert "Last error: Connecting mailboxes with Google is not set up on this rolsync any more." in page
    assert "Google sign-in is no longer set up on this rolsync" in page
    assert "Reconnect with Google" not in page

