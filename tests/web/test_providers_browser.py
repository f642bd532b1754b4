"""Setting up Google in headless Chromium: the admin finds the page, fills the form, sees it set up; the
secret never comes back to the browser. "Google" is the local Authlib server, its endpoints in the environment."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import register_oauth_provider
from tests.web.conftest import add_user
from tests.web.test_browser import sign_in


def test_an_admin_sets_up_google_in_the_browser(monkeypatch, tmp_path, oauth_server, oauth_dovecot,
                                                 live_server, page):
    # live_server made its app already; the endpoints only matter for connecting, which this test does not do.
    google = register_oauth_provider(monkeypatch, tmp_path, oauth_server, oauth_dovecot, in_environment=False)
    admin = add_user(live_server.app, admin=True, password="panel-password-1", name="Ada Admin")

    sign_in(page, admin.email, "panel-password-1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Providers", exact=True).click()
    card = page.locator("section#google")
    expect(card.get_by_text("Not set up")).to_be_visible()
    expect(card.get_by_text(f"{live_server.url}/oauth/google/callback")).to_be_visible()

    card.get_by_label("Client ID").fill("1234-wrong")
    card.get_by_label("Client secret").fill(google.client_secret)
    card.get_by_role("button", name="Save").click()
    card = page.locator("section#google")
    expect(card.get_by_text("A Google client ID ends in .apps.googleusercontent.com")).to_be_visible()
    expect(card.get_by_label("Client secret")).to_have_value("")

    card.get_by_label("Client ID").fill(google.client_id)
    card.get_by_label("Client secret").fill(google.client_secret)
    card.get_by_role("button", name="Save").click()

    expect(page.get_by_text("Google is set up: users can connect their mailboxes with it.")).to_be_visible()
    card = page.locator("section#google")
    expect(card.get_by_text("Set up", exact=True)).to_be_visible()
    expect(card.get_by_text("A secret is saved. Leave this empty to keep it.")).to_be_visible()
    expect(card.get_by_label("Client ID")).to_have_value(google.client_id)
    assert google.client_secret not in page.content()
    expect(page.locator("section#microsoft").get_by_text("Not set up")).to_be_visible()
