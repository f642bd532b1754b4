"""Connect with Google in headless Chromium: the button, the provider's consent page, an imported note, and
reconnecting after the consent was withdrawn. "Google" is the local Authlib server; the mailbox a real Dovecot."""
from __future__ import annotations

import json
import re
import uuid

from playwright.sync_api import expect

from devkit.builders import build_message
from tests.conftest import load_crm
from tests.web.conftest import add_user, clear_import_job
from tests.web.test_browser import CRM, _account_id, _run_worker, sign_in


def _import_with_a_worker(page, app, email: str, secrets: list[str]) -> None:
    page.goto("/preferences")
    page.get_by_role("button", name="Import now").click()
    expect(page.get_by_text("The import is queued")).to_be_visible()
    worker = _run_worker(app)
    assert worker.returncode == 0, worker.stderr[-3000:]
    for secret in secrets:
        assert secret not in worker.stdout + worker.stderr  # the worker's log
    clear_import_job(app, _account_id(app, email))
    # The page updates its Import card in place once it sees the import finish; wait for that,
    # so the card's fresh state is what the next step reads.
    expect(page.locator("#import[data-refreshed]")).to_have_count(1, timeout=30_000)


def test_connect_with_google_consent_import_then_reconnect_after_revocation(
        google, live_server, page, oauth_server, oauth_dovecot, tmp_path):
    app = live_server.app
    google.allow_redirect_uri(f"{live_server.url}/oauth/google/callback")
    email = f"browser-oauth-{uuid.uuid4().hex[:8]}@agency.example"
    imap_password = f"imap-{uuid.uuid4().hex}"
    oauth_dovecot.add_user(email, imap_password)
    oauth_dovecot.create_folder(email, imap_password, "Sent")
    oauth_dovecot.append(email, imap_password, "INBOX", build_message(
        from_="Carol <carol@client.example>", to=email, subject="Shortlist for the Java role", text="Three names."))
    add_user(app, email=email, password="panel-password-1")
    load_crm(app, CRM, tmp_path)

    sign_in(page, email, "panel-password-1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Preferences").click()
    page.get_by_role("link", name="Connect with Google").click()

    # The provider's consent page, with the account filled in from login_hint.
    expect(page).to_have_url(re.compile(rf"^{re.escape(oauth_server.authorize_url)}\?"))
    expect(page.get_by_label("Account")).to_have_value(email)
    page.get_by_role("button", name="Allow").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/preferences"))
    expect(page.get_by_text("Mailbox connection successful")).to_be_visible()
    expect(page.get_by_text("Connected with Google", exact=True)).to_be_visible()
    for token in oauth_server.issued:
        assert token not in page.content()

    _import_with_a_worker(page, app, email, oauth_server.issued + [google.client_secret])
    notes = json.loads(app.test_cli_runner().invoke(args=["notes", "export"]).output)
    assert [(n["record_email"], n["subject"]) for n in notes] == [
        ("carol@client.example", "Shortlist for the Java role")]

    # The person withdraws the access at "Google": the next import is refused and asks to reconnect.
    oauth_server.revoke_user(email)
    _import_with_a_worker(page, app, email, oauth_server.issued + [google.client_secret])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Warnings").click()
    expect(page.get_by_text("Google no longer lets rolsync read this mailbox")).to_be_visible()
    page.get_by_role("link", name="Reconnect with Google").click()
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_text("Mailbox connection successful")).to_be_visible()
    expect(page.get_by_text("Importing is paused")).to_have_count(0)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Warnings").click()
    expect(page.get_by_role("link", name="Reconnect with Google")).to_have_count(0)
