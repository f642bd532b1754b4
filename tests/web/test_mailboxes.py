"""The admin's Mailboxes page and the counts on Preferences, through the test client on both databases."""
from __future__ import annotations

import re

from sqlalchemy import select

from rolsync.extensions import db
from rolsync.models import MailAccount
from tests.mail.builders import build_message
from tests.web.conftest import sign_in


def _row(html: str, email: str) -> str:
    match = re.search(rf'<tr data-mailbox="{re.escape(email)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {email}"
    return match.group(1)


def test_admin_sees_each_mailbox_with_its_state_and_counts(consultant, crm, admin, user):
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="Hi"))
    consultant.import_now()
    html = admin.client.get("/mailboxes").get_data(as_text=True)
    row = _row(html, consultant.email)
    assert ">healthy<" in row
    assert "1 messages: 1 imported" in row
    assert user.client.get("/mailboxes").status_code == 403

    account = db.session.scalar(select(MailAccount))
    account.port = 1  # refused
    db.session.commit()
    consultant.cli("mail", "import", consultant.email)
    failing = admin.client.get("/mailboxes?state=failing").get_data(as_text=True)
    assert ">failing<" in _row(failing, consultant.email)
    assert consultant.email not in admin.client.get("/mailboxes?state=healthy").get_data(as_text=True)


def test_paused_mailboxes_are_resumed_in_bulk(consultant, admin):
    account = db.session.scalar(select(MailAccount))
    account.paused, account.paused_reason = True, "The mail server refused the password 3 times."
    db.session.commit()
    html = admin.client.get("/mailboxes?state=paused").get_data(as_text=True)
    assert ">paused<" in _row(html, consultant.email) and "Resume the ticked mailboxes" in html
    response = admin.client.post("/mailboxes/resume", data={"account": [str(account.id)]}, follow_redirects=True)
    assert "Resumed 1 mailbox" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(MailAccount.paused)) is False


def test_preferences_show_the_consultant_their_own_counts(consultant, crm, app):
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="Hi"))
    consultant.deliver("INBOX", build_message(from_="nobody@nowhere.example", to=consultant.email, subject="?"))
    consultant.import_now()
    client = app.test_client()
    sign_in(client, consultant.email, "user-password-123")
    html = client.get("/preferences").get_data(as_text=True)
    assert "Every message accounted for" in html
    table = re.search(r"<table[^>]*data-reconciliation.*?</table>", html, re.S).group(0)
    assert re.search(r"On the server</th><td class=\"num\">2</td>", table)
    assert "Skipped: no contact or candidate has the address" in table
