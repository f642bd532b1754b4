"""A new agency's first hour in real Chromium: setup, first steps, and every post telling the person what happened."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import load_crm, make_consultant
from tests.mail.builders import build_message
from tests.web.conftest import add_user, clear_import_job

ROOT = Path(__file__).resolve().parents[2]
CONSULTANT_PASSWORD = "user-password-123"  # what make_consultant gives the web user


def setup_url(app, base: str) -> str:
    """What `make run` prints on its console: the one-time setup address."""
    result = app.test_cli_runner().invoke(args=["users", "setup-url", "--url", base])
    assert result.exit_code == 0, result.output
    return re.search(r"(http://\S+/setup\?token=\S+)", result.output).group(1)


def sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def expect_flash_in_view(page, text: str) -> None:
    """The message is shown, and inside the viewport: nobody has to scroll to learn what happened."""
    flash = page.locator(".flash").filter(has_text=text)
    expect(flash).to_be_visible()
    box = flash.bounding_box()
    viewport = page.viewport_size
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], \
        f"{text!r} is outside the viewport: {box} in {viewport}, scrolled to {page.evaluate('window.scrollY')}"


def test_setup_creates_the_first_admin_with_the_printed_token_once(page, live_server, tmp_path):
    app = live_server.app
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_text("rolsync has no admin yet.")).to_be_visible()
    expect(page.get_by_text("/setup?token=…")).to_be_visible()

    url = setup_url(app, live_server.url)
    token_file = Path(app.instance_path) / "setup-token.sha256"
    assert url.split("token=")[1] not in token_file.read_text(), "only a hash of the token is stored"

    # A wrong token: refused, no form.
    response = page.goto(url[:-4] + "AAAA")
    assert response.status == 403
    expect(page.get_by_text("This setup address is not valid")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_count(0)
    response = page.goto(live_server.url + "/setup")
    assert response.status == 403

    # The printed address: every refused value at once, then the admin.
    page.goto(url)
    expect(page.get_by_role("heading", name="Set up rolsync")).to_be_visible()
    page.get_by_label("Email").fill("not an address")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Repeat the password").fill("shorter")
    page.get_by_role("button", name="Create the admin account").click()
    expect(page.get_by_text("is not an e-mail address")).to_be_visible()
    expect(page.get_by_text("The password must have at least 12 characters")).to_be_visible()
    expect(page.get_by_text("The two passwords differ.")).to_be_visible()

    page.get_by_label("Your name").fill("Agnes Owner")
    page.get_by_label("Email").fill("agnes@agency.example")
    page.get_by_label("Password", exact=True).fill("a-long-admin-password")
    page.get_by_label("Repeat the password").fill("a-long-admin-password")
    page.get_by_role("button", name="Create the admin account").click()
    expect(page.get_by_role("heading", name="Getting started")).to_be_visible()
    expect_flash_in_view(page, "Your admin account is ready")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")).to_be_visible()
    assert not token_file.exists()

    # The first steps: a CRM upload right there (the sample CSV of the repository).
    expect(page.get_by_text("1. Connect your mailbox")).to_be_visible()
    page.get_by_label("CSV file").set_input_files(str(ROOT / "docs" / "sample-crm.csv"))
    page.get_by_role("button", name="Load records").click()
    expect_flash_in_view(page, "Loaded 6 new records.")
    expect(page.locator(".step-done").filter(has_text="2. Load your contacts and candidates")).to_be_visible()
    bad = tmp_path / "bad.csv"
    bad.write_text("name,email\nSomeone,someone@example.org\n")
    page.get_by_label("CSV file").set_input_files(str(bad))
    page.get_by_role("button", name="Load records").click()
    expect_flash_in_view(page, "Nothing was loaded: the CSV header must be exactly kind,name,email,company.")

    # The address is used up, and setup is gone for good once an admin exists, whatever the token.
    assert page.goto(url).status == 404
    assert page.goto(live_server.url + "/setup").status == 404
    printed = app.test_cli_runner().invoke(args=["users", "setup-url", "--url", live_server.url])
    assert printed.exit_code == 0 and "rolsync has an admin; sign in at" in printed.output
    assert not token_file.exists()
    page.context.clear_cookies()
    page.goto("/login")
    expect(page.get_by_text("rolsync has no admin yet.")).to_have_count(0)
    sign_in(page, "agnes@agency.example", "a-long-admin-password")


class SilentServer:
    """A loopback port that accepts connections and never says a word (a firewall's black hole)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_port():
    server = SilentServer()
    yield server.port
    server.close()


def test_test_connection_shows_progress_and_cannot_be_sent_twice(page, live_server, silent_port):
    live_server.app.config["TEST_CONNECTION_TIMEOUT"] = 4
    user = add_user(live_server.app, password="panel-password-1")
    sign_in(page, user.email, "panel-password-1")
    page.goto("/preferences")
    page.get_by_label("IMAP server").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(silent_port))
    page.get_by_label("Username").fill("me@agency.example")
    page.get_by_label("Password").fill("mailbox-password")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    # Playwright cannot look at a page while its form submission is pending (it waits for the answer, the
    # very seconds under test), so the page writes down what it shows, in sessionStorage, as it changes.
    page.get_by_role("button", name="Save Changes and Test Connection").evaluate("""button => {
        const form = button.form, note = form.querySelector("[data-busy-note]"), log = [];
        const snap = why => {
            log.push({why, t: performance.timeOrigin + performance.now(), value: button.value,
                      disabled: button.disabled, note: !note.hidden});
            sessionStorage.setItem("busy-log", JSON.stringify(log));
        };
        new MutationObserver(() => snap("change")).observe(form, {attributes: true, subtree: true});
        window.addEventListener("pagehide", () => snap("left"));
        button.click();
        setTimeout(() => { form.requestSubmit(); snap("pressed again"); }, 100);
    }""")
    expect(page.get_by_text("The mail server did not answer in time")).to_be_visible(timeout=30_000)
    log = page.evaluate("JSON.parse(sessionStorage.getItem('busy-log'))")
    busy = [entry for entry in log if entry["value"] == "Testing…" and entry["disabled"] and entry["note"]]
    assert busy, log
    left = next(entry for entry in log if entry["why"] == "left")
    assert left["t"] - busy[0]["t"] > 3000, "the button said Testing… while the silent port was tried"
    assert all(entry["disabled"] for entry in log if entry["t"] >= busy[0]["t"]), log
    assert len([url for url in posts if url.endswith("/preferences/mailbox")]) == 1, posts
    expect(page.get_by_role("button", name="Save Changes and Test Connection")).to_be_enabled()
    expect_flash_in_view(page, "The mailbox settings were saved.")


def _run_worker(app) -> subprocess.CompletedProcess:
    env = {**os.environ, **app.config["TEST_ENV"]}
    return subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def _account_id(app, email: str) -> int:
    from sqlalchemy import select

    from rolsync.extensions import db
    from rolsync.models import MailAccount, User

    with app.app_context():
        return db.session.scalar(select(MailAccount.id).join(User).where(User.email == email))


def test_import_now_on_a_phone_with_sync_off_says_so_in_view_and_keeps_what_is_typed(page, live_server, dovecot,
                                                                                    tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, [("contact", "Carol Client", "carol@client.example", "Client Ltd")], tmp_path)
    consultant.deliver("INBOX", build_message(from_="Carol <carol@client.example>", to=consultant.email,
                                              subject="Shortlist", text="Three names."))
    account_id = _account_id(app, consultant.email)
    clear_import_job(app, account_id)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, consultant.email, CONSULTANT_PASSWORD)

    # Switch automatic sync off: manual only.
    page.goto("/preferences")
    page.get_by_label("Sync this mailbox automatically").uncheck()
    page.get_by_label("CA certificate").fill(dovecot.ca_pem)
    page.get_by_role("button", name="Save Changes and Test Connection").click()
    expect_flash_in_view(page, "The mailbox settings were saved.")
    expect(page.get_by_text("Mailbox connection successful")).to_be_visible()

    page.get_by_role("button", name="Import now").click()
    expect_flash_in_view(page, "Automatic sync is off for this mailbox, so mail is imported only when you press "
                               "Import now.")
    expect(page.get_by_text("Waiting for a worker")).to_be_visible()

    # The person starts typing new settings while the import runs.
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.get_by_label("IMAP server").fill("imap.typed-while-importing.example")
    page.get_by_label("Username").fill("typed@agency.example")
    worker = _run_worker(app)
    assert worker.returncode == 0, worker.stderr[-3000:]

    inbox = page.locator("ul.run-counts").filter(has=page.get_by_text("INBOX", exact=True))
    expect(inbox).to_contain_text("1 imported", timeout=30_000)
    expect(page.get_by_text("Waiting for a worker")).to_have_count(0)
    expect(page.get_by_label("IMAP server")).to_have_value("imap.typed-while-importing.example")
    expect(page.get_by_label("Username")).to_have_value("typed@agency.example")
    assert navigations == [], "the page reloaded itself"
    assert [n["subject"] for n in consultant.notes()] == ["Shortlist"]
    clear_import_job(app, account_id)


def test_flash_messages_after_posts_are_in_view(page, live_server):
    admin = add_user(live_server.app, admin=True, password="panel-password-1")
    sign_in(page, admin.email, "panel-password-1")

    # The rule editor posts to #save, far down the page.
    page.goto("/rules")
    page.get_by_label("What changed, in a few words").fill("nothing really")
    page.get_by_role("button", name="Save as a new version").click()
    expect_flash_in_view(page, "Nothing changed, so no new version was saved.")

    page.get_by_label("Keep every image").check()
    page.get_by_label("Largest attachment kept (MB, 0 for no limit)").fill("1.5")
    page.get_by_label("What changed, in a few words").fill("keep images, 1.5 MB at most")
    page.get_by_role("button", name="Save as a new version").click()
    expect_flash_in_view(page, "Saved as version 1")
    expect(page.get_by_text("Largest attachment kept: no limit → 1.5 MB")).to_be_visible()

    page.get_by_role("button", name="Restore the built-in rules").click()
    expect_flash_in_view(page, "Restored: version 2 has the built-in rules and is active now.")
    expect(page.get_by_text("Images: keep every image → leave out every image")).to_be_visible()
    page.goto("/rules")
    expect(page.get_by_label("Leave out every image")).to_be_checked()
    expect(page.get_by_label("Largest attachment kept (MB, 0 for no limit)")).to_have_value("0")

    # Add user: every refused value at once.
    page.goto("/users/new")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text(f"A user with the e-mail {admin.email} already exists")).to_be_visible()
    expect(page.get_by_text("The password must have at least 12 characters")).to_be_visible()


def test_long_values_stay_inside_their_boxes_and_the_phone_navigation_shows_every_link(page, live_server):
    app = live_server.app
    admin = add_user(app, admin=True, password="panel-password-1", name="Ada " + "Lovelace" * 24)
    long_name = "N" * 200
    add_user(app, email=f"{'x' * 60}@{'very-long-subdomain.' * 6}agency.example", name=long_name)
    host = ("mail-" + "very-long-label-" * 3 + "x.") * 4 + "example.com"
    with app.app_context():
        from rolsync import accounts, services
        from rolsync.extensions import db
        from rolsync.models import User

        owner = db.session.get(User, admin.id)
        accounts.configure_mailbox(db.session, services.get().secrets, owner, accounts.MailboxForm(
            host=host, port=993, security="ssl", username="someone@" + "long-domain-" * 10 + "example.com",
            password="mailbox-password"))
        db.session.commit()
    sign_in(page, admin.email, "panel-password-1")

    for path in ("/users", "/preferences", "/"):
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 844})
            page.goto(path)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} at {width} px is {overflow} px wider than the window"

    # At 390 px the admin navigation wraps: every link is on screen, none cut off.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Dashboard", "Preferences", "Warnings", "Records", "Import history", "Import rules", "Users",
                 "Providers"):
        box = nav.get_by_role("link", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, box)
