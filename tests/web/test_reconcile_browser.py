"""Chromium: finding why a message was skipped, and the admin's Mailboxes page, against the live server."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from rolsync.extensions import db
from rolsync.models import MailAccount
from tests.conftest import load_crm, make_consultant
from tests.mail.builders import build_message
from tests.web.conftest import add_user
from tests.web.test_browser import CONSULTANT_PASSWORD, CRM, sign_in


def test_a_consultant_finds_why_a_message_was_skipped_in_two_clicks(page, live_server, dovecot, tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, CRM, tmp_path)
    consultant.deliver("INBOX", build_message(from_="Sam Stranger <sam@stranger.example>", to=consultant.email,
                                              subject="Quick question about the role"))
    consultant.import_now()

    sign_in(page, consultant.email, CONSULTANT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import history").click()  # 1
    page.get_by_label("Why wasn’t this e-mail imported?").fill("sam@stranger.example")
    page.get_by_role("button", name="Find out why").click()  # 2
    expect(page.get_by_text("Skipped: no contact or candidate has the address")).to_be_visible()
    expect(page.get_by_text("Quick question about the role")).to_be_visible()


def test_the_admin_sees_a_failing_mailbox_on_mailboxes(page, live_server, dovecot, tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    consultant.import_now()
    account = db.session.scalar(select(MailAccount))
    account.port = 1  # nothing listens: connection refused
    db.session.commit()
    assert consultant.cli("mail", "import", consultant.email).exit_code != 0
    admin = add_user(app, admin=True, password="admin-password-1")

    sign_in(page, admin.email, "admin-password-1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mailboxes").click()
    row = page.locator(f'tr[data-mailbox="{consultant.email}"]')
    expect(row.locator("[data-state]")).to_have_text("failing")
    expect(row).to_contain_text("refused")
    page.get_by_role("link", name="Failing (1)").click()
    expect(page.locator("tr[data-mailbox]")).to_have_count(1)
    page.get_by_role("link", name="Healthy (0)").click()
    expect(page.get_by_text("No mailbox is healthy.")).to_be_visible()
