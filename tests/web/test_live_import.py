"""Preferences shows whether a mailbox is imported live (push) or on the schedule; admins switch push."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from rolsync import accounts, push, resources
from rolsync.extensions import db
from rolsync.models import ImportedMessage, MailAccount, User


def _mailbox(user_id: int) -> int:
    user = db.session.get(User, user_id)
    account = accounts.configure_mailbox(db.session, resources.get().secrets, user, accounts.MailboxForm(
        host="imap.agency.example", port=993, security="ssl", username=user.email, password="imap-secret-1"))
    db.session.commit()
    return account.id


def _new_mail_line(html: str) -> str:
    match = re.search(r"<dd data-push>(.*?)</dd>", html, re.S)
    assert match, "no New mail line"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def _mark_live(account_id: int, what: str | None) -> None:
    svc = resources.get()
    key = push.live_key(svc.queue.name, account_id)
    if what is None:
        svc.redis.delete(key)
    else:
        svc.redis.set(key, what, px=30_000)


def test_live_or_every_n_minutes_and_when_the_last_mail_arrived(app, user):
    account_id = _mailbox(user.id)
    html = user.client.get("/preferences").get_data(as_text=True)
    assert _new_mail_line(html).startswith("Every 5 minutes.")
    assert "Last mail arrived</dt>\n    <dd>not yet</dd>" in html

    db.session.add(ImportedMessage(user_id=user.id, dedupe_key="k1", message_key="k1", folder="INBOX",
                                   outcome="imported", created_at=datetime(2026, 5, 4, 9, 30, tzinfo=timezone.utc)))
    db.session.commit()
    _mark_live(account_id, push.LIVE_ALL)
    try:
        html = user.client.get("/preferences").get_data(as_text=True)
        assert _new_mail_line(html) == "Live: new mail is imported within seconds of arriving."
        assert "2026-05-04 09:30 UTC" in html
        # The schedule still checks, slowly, in case a notification went missing.
        assert "Imports run every 30 minutes" in html
        _mark_live(account_id, push.LIVE_INBOX)
        html = user.client.get("/preferences").get_data(as_text=True)
        assert _new_mail_line(html) == ("Live: new mail is imported within seconds of arriving "
                                        "(the Sent folder every 5 minutes).")
        # A user cannot switch push; there is no button for it either.
        assert "Switch live import" not in html
        assert user.client.post("/preferences/push", data={"push": "off"}).status_code == 403
        assert user.client.post("/preferences/push-all", data={"push": "off"}).status_code == 403
    finally:
        _mark_live(account_id, None)
    assert db.session.get(MailAccount, account_id).push_enabled


def test_an_admin_switches_push_per_mailbox_and_for_every_mailbox(app, admin, user):
    account_id = _mailbox(user.id)
    page = f"/users/{user.id}/preferences"
    html = admin.client.get(page).get_data(as_text=True)
    assert "Switch live import off for this mailbox" in html
    assert "Switch live import off for every mailbox" in html

    response = admin.client.post(f"{page}/push", data={"push": "off"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Live import is off for this mailbox: it is imported on the schedule." in html
    assert "Switch live import on for this mailbox" in html
    db.session.expire_all()
    assert not db.session.get(MailAccount, account_id).push_enabled

    html = admin.client.post(f"{page}/push", data={"push": "on"}, follow_redirects=True).get_data(as_text=True)
    assert "Live import is on for this mailbox." in html
    db.session.expire_all()
    assert db.session.get(MailAccount, account_id).push_enabled

    html = admin.client.post(f"{page}/push-all", data={"push": "off"}, follow_redirects=True).get_data(as_text=True)
    assert "Live import is off for every mailbox: all are imported on the schedule." in html
    assert "Live import is switched off for every mailbox." in html
    assert not push.push_on(db.session)
    admin.client.post(f"{page}/push-all", data={"push": "on"})
    assert push.push_on(db.session)
