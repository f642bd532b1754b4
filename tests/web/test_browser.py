"""The panel in real headless Chromium, against a live server (CSRF on), the test Dovecot and real Redis."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from devkit.builders import build_message, minimal_pdf
from tests.conftest import load_crm, make_consultant
from tests.web.conftest import add_user, clear_import_job

ROOT = Path(__file__).resolve().parents[2]
CONSULTANT_PASSWORD = "user-password-123"  # what make_consultant gives the web user
CRM = [
    ("contact", "Carol Client", "carol@client.example", "Client Ltd"),
    ("contact", "Dan Dup", "shared@client.example", "Client Ltd"),
    ("contact", "Dana Dup", "shared@client.example", "Other Co"),
    ("candidate", "Pat Pair", "pair@candidates.example", ""),
    ("candidate", "Pam Pair", "pair@candidates.example", ""),
]


def sign_in(page, email: str, password: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def open_warnings_badge(page):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name="Warnings")


def test_sign_in_configure_the_mailbox_and_test_the_connection(page, live_server, dovecot):
    username = f"browser-{uuid.uuid4().hex[:8]}@acme-recruit.com"
    mailbox_password = f"imap-{uuid.uuid4().hex[:12]}"
    dovecot.add_user(username, mailbox_password)
    dovecot.create_folder(username, mailbox_password, "Sent")
    add_user(live_server.app, email=username, password="panel-password-1")

    sign_in(page, username, "panel-password-1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Preferences").click()
    page.get_by_text("Configure Email Importing").click()
    page.get_by_label("IMAP server").fill(dovecot.host)
    page.get_by_label("Port").fill(str(dovecot.ssl_port))
    page.get_by_label("Security").select_option("ssl")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(mailbox_password)
    page.get_by_label("CA certificate").fill(dovecot.ca_pem)
    page.get_by_role("button", name="Save Changes and Test Connection").click()

    expect(page.get_by_text("Mailbox connection successful")).to_be_visible()
    assert mailbox_password not in page.content()
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("IMAP server")).to_have_value(dovecot.host)

    # A wrong password: the classified auth_failed sentence, with its hint.
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Save Changes and Test Connection").click()
    expect(page.get_by_text("The mail server did not accept the username or password.")).to_be_visible()
    expect(page.get_by_text("Mailbox connection successful")).to_have_count(0)

    # The CA uploaded as a file instead of pasted, and the right password again.
    page.get_by_label("CA certificate").fill("")
    page.get_by_label("Upload a PEM file").set_input_files(str(dovecot.ca_path))
    page.get_by_label("Password").fill(mailbox_password)
    page.get_by_role("button", name="Save Changes and Test Connection").click()
    expect(page.get_by_text("Mailbox connection successful")).to_be_visible()


def test_a_provider_preset_fills_server_and_port(page, live_server):
    user = add_user(live_server.app, password="panel-password-1")
    sign_in(page, user.email, "panel-password-1")
    page.goto("/preferences")
    page.get_by_label("Provider").select_option(label="Microsoft 365")
    expect(page.get_by_label("IMAP server")).to_have_value("outlook.office365.com")
    expect(page.get_by_label("Port")).to_have_value("993")
    expect(page.get_by_text("an admin must set up Connect with Microsoft first")).to_be_visible()
    expect(page.locator("[data-preset-hint]")).not_to_contain_text("you may need an app password")


def test_a_bad_port_is_refused_next_to_the_field(page, live_server):
    user = add_user(live_server.app, password="panel-password-1")
    sign_in(page, user.email, "panel-password-1")
    page.goto("/preferences")
    page.get_by_label("IMAP server").fill("imap.example.com")
    page.get_by_label("Port").fill("70000")
    page.get_by_label("Username").fill("me@example.com")
    page.get_by_label("Password").fill("secret-password")
    page.get_by_role("button", name="Save Changes and Test Connection").click()
    expect(page.get_by_text("The port must be a number from 1 to 65535")).to_be_visible()
    expect(page.get_by_text("Mailbox connection successful")).to_have_count(0)


def _run_worker(app) -> subprocess.CompletedProcess:
    env = {**os.environ, **app.config["TEST_ENV"]}
    return subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_import_now_shows_progress_then_the_counts(page, live_server, dovecot, tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, CRM, tmp_path)
    consultant.deliver("INBOX", build_message(from_="Carol <carol@client.example>", to=consultant.email,
                                              subject="Shortlist for the Java role", text="Three names."))
    account_id = _account_id(app, consultant.email)
    clear_import_job(app, account_id)
    sign_in(page, consultant.email, CONSULTANT_PASSWORD)
    page.goto("/preferences")
    page.get_by_role("button", name="Import now").click()

    expect(page.get_by_text("The import is queued")).to_be_visible()
    expect(page.get_by_text("Waiting for a worker")).to_be_visible()
    expect(page.locator("progress[data-progress]")).to_be_visible()

    worker = _run_worker(app)
    assert worker.returncode == 0, worker.stderr[-3000:]

    # The page polls the job's state and reloads when it is done: the run's counts per folder.
    inbox = page.locator("ul.run-counts").filter(has=page.get_by_text("INBOX", exact=True))
    expect(inbox).to_be_visible(timeout=30_000)
    expect(inbox).to_contain_text("1 imported")
    expect(page.get_by_text("Waiting for a worker")).to_have_count(0)
    clear_import_job(app, account_id)


def _account_id(app, email: str) -> int:
    from sqlalchemy import select

    from rolsync.extensions import db
    from rolsync.models import MailAccount, User

    with app.app_context():
        return db.session.scalar(select(MailAccount.id).join(User).where(User.email == email))


def test_attach_a_duplicate_to_one_record_then_dismiss_another(page, live_server, dovecot, tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, CRM, tmp_path)
    consultant.deliver("INBOX", build_message(
        from_="Dan <shared@client.example>", to=consultant.email, subject="Budget for the new hire",
        text="We can go to 80k.", attachments=[("budget.pdf", "application/pdf", minimal_pdf())]))
    consultant.deliver("INBOX", build_message(
        from_="pair@candidates.example", to=consultant.email, subject="My application", text="Hello"))
    summary = consultant.import_now()
    assert summary["warnings"] == 2

    sign_in(page, consultant.email, CONSULTANT_PASSWORD)
    expect(open_warnings_badge(page)).to_contain_text("2")
    open_warnings_badge(page).click()

    row = page.get_by_role("row").filter(has_text="Budget for the new hire")
    expect(row).to_contain_text("shared@client.example")
    expect(row).to_contain_text("Dana Dup")
    row.get_by_role("listitem").filter(has_text="Dan Dup").get_by_role(
        "button", name="Attach to this record").click()
    expect(page.get_by_text("The message is now a note on Dan Dup.")).to_be_visible()
    expect(open_warnings_badge(page)).to_contain_text("1")
    expect(page.get_by_text("Budget for the new hire")).to_have_count(0)

    # The note (and its document) is on Dan Dup's record, not on Dana's.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Records").click()
    page.get_by_label("Search").fill("Dup")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Dan Dup").click()
    expect(page.get_by_role("heading", name="Budget for the new hire")).to_be_visible()
    expect(page.get_by_text("We can go to 80k.")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="budget.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "budget.pdf"
    assert Path(download.path()).read_bytes() == minimal_pdf()
    page.go_back()
    page.get_by_role("link", name="Records").click()
    page.get_by_role("link", name="Dana Dup").click()
    expect(page.get_by_text("No mail on this record yet.")).to_be_visible()

    # Dismiss the other warning: the count in the navigation drops to 0.
    open_warnings_badge(page).click()
    row = page.get_by_role("row").filter(has_text="My application")
    expect(row).to_contain_text("pair@candidates.example")
    row.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_text("The warning was dismissed.")).to_be_visible()
    expect(open_warnings_badge(page)).to_contain_text("0")
    assert [w["status"] for w in consultant.warnings()] == ["resolved", "dismissed"]


def test_mail_with_markup_is_shown_as_text_and_runs_nothing(page, live_server, dovecot, tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, CRM, tmp_path)
    subject = '<script>alert("subject")</script> CV <img src=x onerror=alert(1)>'
    body = 'Hi <img src=x onerror="alert(2)"> and <script>alert(3)</script> bye'
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject=subject,
                                              text=body, attachments=[('<b onmouseover=alert(4)>.pdf',
                                                                       "application/pdf", minimal_pdf())]))
    consultant.deliver("INBOX", build_message(from_="shared@client.example", to=consultant.email, subject=subject,
                                              text=body))
    consultant.import_now()

    sign_in(page, consultant.email, CONSULTANT_PASSWORD)
    page.goto("/warnings")
    expect(page.get_by_text(subject)).to_be_visible()
    page.goto("/records?q=carol")
    page.get_by_role("link", name="Carol Client").click()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()
    expect(page.get_by_text(body)).to_be_visible()
    expect(page.get_by_role("link", name="<b onmouseover=alert(4)>.pdf")).to_be_visible()
    page.get_by_text(body).hover()
    page.goto("/history")
    expect(page.get_by_text(subject)).to_have_count(2)
    assert page.locator("img[src=x]").count() == 0
    assert page.dialogs == []


def test_signed_out_pages_go_to_sign_in_and_sign_out_works(page, live_server):
    user = add_user(live_server.app, password="panel-password-1")
    page.goto("/records")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("panel-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Records")).to_be_visible()  # back where they were going
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/warnings")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


@pytest.mark.parametrize("width", [390, 1280])
def test_pages_have_no_horizontal_overflow(page, live_server, width):
    """The layout fits a phone and a desktop without sideways scrolling."""
    user = add_user(live_server.app, admin=True, password="panel-password-1")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, user.email, "panel-password-1")
    for path in ("/", "/preferences", "/warnings", "/records", "/history", "/users"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} overflows by {overflow}px at {width}px"
