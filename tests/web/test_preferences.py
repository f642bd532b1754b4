"""Preferences > Configure Email Importing, Import now and its state, and changing one's password."""
from __future__ import annotations

import io
import uuid

import pytest
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from rolsync import jobs, services
from rolsync.extensions import db
from rolsync.models import ImportRun, MailAccount, User
from tests.web.conftest import PASSWORD, clear_import_job, sign_in

AUTH_FAILED = "The mail server did not accept the username or password."


@pytest.fixture
def mailbox(dovecot):
    """A fresh login on the test Dovecot, with a Sent folder."""
    username = f"web-{uuid.uuid4().hex[:8]}@acme-recruit.com"
    password = f"imap-{uuid.uuid4().hex[:12]}"
    dovecot.add_user(username, password)
    dovecot.create_folder(username, password, "Sent")
    return {"host": dovecot.host, "port": dovecot.ssl_port, "username": username, "password": password,
            "ca_pem": dovecot.ca_pem}


def _form(mailbox: dict, **changes) -> dict:
    data = {"provider": "custom", "host": mailbox["host"], "port": str(mailbox["port"]), "security": "ssl",
            "username": mailbox["username"], "password": mailbox["password"], "ca_pem": mailbox["ca_pem"],
            "enabled": "y"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _account(user_id: int) -> MailAccount | None:
    db.session.expire_all()
    return db.session.scalar(select(MailAccount).where(MailAccount.user_id == user_id))


def _accounts() -> int:
    return db.session.scalar(select(func.count(MailAccount.id)))


def test_the_page_has_the_contract_words(user):
    html = user.client.get("/preferences").get_data(as_text=True)
    for words in ("Configure Email Importing", ">IMAP server</label>", ">Port</label>", ">Security</label>",
                  ">Username</label>", ">Password</label>", ">CA certificate</label>",
                  "Save Changes and Test Connection", "Import now", "encrypted"):
        assert words in html, words
    for provider in ("Gmail", "Microsoft 365", "Yahoo", "iCloud", "Fastmail", "Zoho"):
        assert f">{provider}</option>" in html
    assert 'data-host="imap.gmail.com"' in html and 'data-host="outlook.office365.com"' in html


def test_save_changes_and_test_connection_succeeds_against_dovecot(app, user, mailbox):
    response = user.client.post("/preferences/mailbox", data=_form(mailbox))
    assert response.status_code == 302
    html = user.client.get(response.location).get_data(as_text=True)
    assert "The mailbox settings were saved." in html
    assert "Mailbox connection successful" in html
    account = _account(user.id)
    assert (account.host, account.port, account.security, account.username) == (
        mailbox["host"], mailbox["port"], "ssl", mailbox["username"])
    assert account.password_encrypted != mailbox["password"]
    assert services.get().secrets.decrypt(account.password_encrypted) == mailbox["password"]
    # The result is shown once; the password never.
    again = user.client.get("/preferences").get_data(as_text=True)
    assert "Mailbox connection successful" not in again
    for page in (html, again):
        assert mailbox["password"] not in page
        assert account.password_encrypted not in page


def test_a_wrong_password_shows_the_auth_failed_sentence_and_hint(app, user, mailbox):
    response = user.client.post("/preferences/mailbox", data=_form(mailbox, password="not-the-password"),
                                follow_redirects=True)
    html = response.get_data(as_text=True)
    assert AUTH_FAILED in html
    assert "app password" in html  # the hint
    assert "auth_failed" in html
    assert "Mailbox connection successful" not in html
    assert "not-the-password" not in html
    assert _account(user.id) is not None  # saved anyway: the button saves, then tests


def test_a_blank_password_keeps_the_stored_one(app, user, mailbox):
    user.client.post("/preferences/mailbox", data=_form(mailbox))
    stored = _account(user.id).password_encrypted
    response = user.client.post("/preferences/mailbox", data=_form(mailbox, password=""), follow_redirects=True)
    assert "Mailbox connection successful" in response.get_data(as_text=True)
    assert _account(user.id).password_encrypted == stored


@pytest.mark.parametrize("changes", [
    {"host": "localhost"}, {"port": "1993"}, {"security": "starttls"}, {"username": "someone-else@acme-recruit.com"},
    {"ca_pem": ""},
])
def test_re_pointing_a_saved_mailbox_needs_the_password_again(app, user, admin, mailbox, changes, caplog):
    """The saved password goes only to the server it was typed for, whoever edits the mailbox."""
    user.client.post("/preferences/mailbox", data=_form(mailbox))
    stored = _account(user.id)
    before = (stored.host, stored.port, stored.security, stored.username, stored.ca_pem, stored.password_encrypted)
    for client, url in ((user.client, "/preferences/mailbox"), (admin.client, f"/users/{user.id}/preferences/mailbox")):
        response = client.post(url, data=_form(mailbox, password="", **changes))
        assert response.status_code == 422
        assert "Enter the mailbox password again to change the server" in response.get_data(as_text=True)
        account = _account(user.id)
        assert (account.host, account.port, account.security, account.username, account.ca_pem,
                account.password_encrypted) == before
    # With the password, the change is saved, and the audit log names who made it (never the password).
    caplog.set_level("INFO", logger="rolsync.audit")
    response = admin.client.post(f"/users/{user.id}/preferences/mailbox", data=_form(mailbox, **changes))
    assert response.status_code == 302
    audit = [r.getMessage() for r in caplog.records if r.name == "rolsync.audit"]
    assert any(admin.email in line and user.email in line for line in audit), audit
    assert not any(mailbox["password"] in line for line in audit)


def test_test_connection_to_loopback_is_refused_under_the_production_policy(app, user, mailbox):
    """127.0.0.1 is the suite's Dovecot: fine by the development default, refused by production's."""
    response = user.client.post("/preferences/mailbox", data=_form(mailbox), follow_redirects=True)
    assert "Mailbox connection successful" in response.get_data(as_text=True)

    from rolsync.mail.hosts import HostPolicy

    services.get().__dict__["host_policy"] = HostPolicy.from_settings(False, "")  # ROLSYNC_ENV=production
    html = user.client.post("/preferences/test", follow_redirects=True).get_data(as_text=True)
    assert "not allowed to connect to this mail server" in html
    assert "Mailbox connection successful" not in html
    # An admin's allowlist lets the on-premises server through again.
    services.get().__dict__["host_policy"] = HostPolicy.from_settings(False, f"{mailbox['host']}/32")
    html = user.client.post("/preferences/test", follow_redirects=True).get_data(as_text=True)
    assert "Mailbox connection successful" in html


def test_test_connection_is_rate_limited_per_user(app, user, other_user, mailbox):
    app.config["TEST_CONNECTION_MAX_PER_WINDOW"] = 2
    from rolsync.mail.hosts import HostPolicy

    # Refused before any network traffic: the limit is what is under test, not Dovecot.
    services.get().__dict__["host_policy"] = HostPolicy.from_settings(False, "")
    user.client.post("/preferences/mailbox", data=_form(mailbox))
    user.client.post("/preferences/test")
    html = user.client.post("/preferences/test", follow_redirects=True).get_data(as_text=True)
    assert "Too many connection tests. Try again in 10 minutes." in html
    other = other_user.client.post("/preferences/mailbox", data=_form(mailbox), follow_redirects=True)
    assert "not allowed to connect" in other.get_data(as_text=True)  # another user has a limit of their own


def test_test_connection_gives_up_at_its_overall_deadline(app, user, mailbox):
    """A port that accepts and stays silent: the request ends at the deadline, not at every step's timeout."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nothing ever answers
    app.config["TEST_CONNECTION_DEADLINE"] = 1
    try:
        response = user.client.post("/preferences/mailbox", data=_form(mailbox, port=str(silent.getsockname()[1])),
                                    follow_redirects=True)
    finally:
        silent.close()
    html = response.get_data(as_text=True)
    assert "The mail server did not finish answering in time." in html


def test_a_new_mailbox_needs_a_password(app, user, mailbox):
    response = user.client.post("/preferences/mailbox", data=_form(mailbox, password=""))
    assert response.status_code == 422
    assert "The password is missing." in response.get_data(as_text=True)
    assert _accounts() == 0


def test_the_ca_certificate_can_be_uploaded_as_a_file(app, user, mailbox):
    data = _form(mailbox, ca_pem="")
    data["ca_file"] = (io.BytesIO(mailbox["ca_pem"].encode()), "company-ca.pem")
    response = user.client.post("/preferences/mailbox", data=data, content_type="multipart/form-data",
                                follow_redirects=True)
    assert "Mailbox connection successful" in response.get_data(as_text=True)
    assert "BEGIN CERTIFICATE" in _account(user.id).ca_pem


def test_without_the_ca_the_certificate_is_not_trusted(app, user, mailbox):
    response = user.client.post("/preferences/mailbox", data=_form(mailbox, ca_pem=""), follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "certificate could not be verified" in html
    assert "tls_error" in html


@pytest.mark.parametrize(("changes", "message"), [
    ({"port": "70000"}, "The port must be a number from 1 to 65535"),
    ({"port": "0"}, "The port must be a number from 1 to 65535"),
    ({"port": "imap"}, "Enter the port as a number, for example 993."),
    ({"host": ""}, "Enter the IMAP server, for example imap.example.com."),
    ({"host": "not a host!"}, "is not a server name such as imap.example.com"),
    ({"username": "  "}, "Enter the username"),
    ({"ca_pem": "this is not a certificate"}, "The CA certificate must be a PEM file"),
])
def test_bad_values_are_refused_next_to_the_field_and_nothing_is_saved(app, user, mailbox, changes, message):
    response = user.client.post("/preferences/mailbox", data=_form(mailbox, **changes))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'class="field-error"' in html and message in html
    assert mailbox["password"] not in html  # not even echoed back into the form
    assert _accounts() == 0


def test_a_bad_ca_file_is_refused(app, user, mailbox):
    data = _form(mailbox, ca_pem="")
    data["ca_file"] = (io.BytesIO(b"\x89PNG not a certificate"), "logo.png")
    response = user.client.post("/preferences/mailbox", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "The CA certificate must be a PEM file" in response.get_data(as_text=True)
    assert _accounts() == 0


def test_bad_values_leave_saved_settings_alone(app, user, mailbox):
    user.client.post("/preferences/mailbox", data=_form(mailbox))
    response = user.client.post("/preferences/mailbox", data=_form(mailbox, port="99999", host="other.example"))
    assert response.status_code == 422
    account = _account(user.id)
    assert (account.host, account.port) == (mailbox["host"], mailbox["port"])


def test_a_provider_preset_fills_an_empty_server_without_javascript(user):
    response = user.client.post("/preferences/mailbox", data={"provider": "gmail", "host": "", "port": "",
                                                              "security": "ssl", "username": "", "password": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422  # the username is still missing
    assert 'value="imap.gmail.com"' in html and 'value="993"' in html
    assert "Gmail: turn on IMAP" in html


def test_an_admin_can_set_up_another_users_mailbox(app, admin, user, mailbox):
    response = admin.client.post(f"/users/{user.id}/preferences/mailbox", data=_form(mailbox))
    assert response.status_code == 302 and response.location.endswith(f"/users/{user.id}/preferences")
    html = admin.client.get(response.location).get_data(as_text=True)
    assert "Mailbox connection successful" in html
    assert f"Preferences of {user.user.name}" in html
    assert _account(user.id) is not None
    assert _account(admin.id) is None


def _save_account(app, user_id: int, **values) -> int:
    from rolsync import accounts

    user = db.session.get(User, user_id)
    account = accounts.configure_mailbox(db.session, services.get().secrets, user, accounts.MailboxForm(
        host="imap.agency.example", port=993, security="ssl", username=user.email, password="imap-secret-1"))
    for name, value in values.items():
        setattr(account, name, value)
    db.session.commit()
    return account.id


def test_import_now_queues_one_job_and_shows_its_state(app, user, import_jobs):
    account_id = _save_account(app, user.id)
    clear_import_job(app, account_id)
    import_jobs.append(account_id)

    response = user.client.post("/preferences/import", follow_redirects=True)
    assert "The import is queued." in response.get_data(as_text=True)
    job = Job.fetch(jobs.job_id_for(account_id), connection=services.get().redis)
    assert job.origin == services.get().queue.name
    assert job.args == (account_id, True)  # asked for by a person: runs even with automatic sync off
    assert "imap-secret-1" not in repr(job.args) + repr(job.kwargs)

    again = user.client.post("/preferences/import", follow_redirects=True).get_data(as_text=True)
    assert "already queued or running" in again
    assert services.get().queue.count == 1

    state = user.client.get("/preferences/import-status.json").json
    assert state["state"] == "queued" and state["active"] is True
    assert state["label"] == "Waiting for a worker"

    # A worker picks it up and reports progress in job.meta, as jobs.import_account_job does.
    job.meta["progress"] = {"done": 3, "total": 10}
    job.save_meta()
    job.set_status(JobStatus.STARTED)
    state = user.client.get("/preferences/import-status.json").json
    assert (state["state"], state["done"], state["total"]) == ("running", 3, 10)
    html = user.client.get("/preferences").get_data(as_text=True)
    assert 'value="3" max="10"' in html and "3 of 10 messages" in html


def test_import_now_needs_saved_settings(user):
    response = user.client.post("/preferences/import", follow_redirects=True)
    assert "Save the mailbox settings first." in response.get_data(as_text=True)
    assert user.client.get("/preferences/import-status.json").json["state"] == "idle"


def test_import_now_imports_a_manual_only_mailbox_and_says_so(app, user, import_jobs):
    account_id = _save_account(app, user.id, enabled=False)
    clear_import_job(app, account_id)
    import_jobs.append(account_id)
    response = user.client.post("/preferences/import", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "The import is queued" in html
    assert "Automatic sync is off for this mailbox, so mail is imported only when you press Import now." in html
    assert "Manual only" in html
    job = Job.fetch(jobs.job_id_for(account_id), connection=services.get().redis)
    assert job.args == (account_id, True)


def test_the_last_runs_last_error_and_schedule_are_shown(app, user):
    from datetime import datetime, timezone

    account_id = _save_account(app, user.id, last_error="The mail server did not answer in time.",
                               last_run_at=datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc))
    db.session.add(ImportRun(
        account_id=account_id, started_at=datetime(2026, 5, 4, 11, 59, tzinfo=timezone.utc),
        finished_at=datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc),
        counts={"folders": {"inbox": {"name": "INBOX", "imported": 7, "skipped": 2, "warnings": 1, "failed": 0},
                            "sent": {"name": "Sent", "imported": 4, "skipped": 0, "warnings": 0, "failed": 0}},
                "imported": 11, "skipped": 2, "warnings": 1, "failed": 0}))
    db.session.add(ImportRun(account_id=account_id, started_at=datetime(2026, 5, 4, 12, 5, tzinfo=timezone.utc),
                             finished_at=datetime(2026, 5, 4, 12, 5, tzinfo=timezone.utc),
                             error="The mail server did not answer in time."))
    db.session.commit()
    html = user.client.get("/preferences").get_data(as_text=True)
    assert "Last error:</strong> The mail server did not answer in time." in html
    assert "<b>7</b> imported" in html and "<b>4</b> imported" in html and "<b>1</b> warnings" in html
    assert "INBOX" in html and "Sent" in html
    assert "Imports run every 5 minutes" in html
    assert '<time datetime="2026-05-04T12:00:00+00:00">2026-05-04 12:00 UTC</time>' in html
    last = user.client.get("/preferences/import-status.json").json
    assert last["last_error"] == "The mail server did not answer in time."
    assert last["last_run"]["error"] == "The mail server did not answer in time."


def test_changing_ones_password(app, user):
    wrong = user.client.post("/preferences/password", data={
        "current_password": "not-it", "new_password": "new-password-123", "confirm": "new-password-123"})
    assert wrong.status_code == 422 and "The current password is not right." in wrong.get_data(as_text=True)
    mismatch = user.client.post("/preferences/password", data={
        "current_password": PASSWORD, "new_password": "new-password-123", "confirm": "other-password-123"})
    assert mismatch.status_code == 422 and "The two new passwords are not the same." in mismatch.get_data(
        as_text=True)
    short = user.client.post("/preferences/password", data={
        "current_password": PASSWORD, "new_password": "short", "confirm": "short"})
    assert short.status_code == 422 and "at least 12 characters" in short.get_data(as_text=True)

    done = user.client.post("/preferences/password", data={
        "current_password": PASSWORD, "new_password": "new-password-123", "confirm": "new-password-123"})
    assert done.status_code == 302
    assert user.client.get("/").status_code == 200  # this session stays signed in
    sign_in(app.test_client(), user.email, "new-password-123")


def test_the_mailbox_password_appears_on_no_page(app, user, admin, mailbox):
    user.client.post("/preferences/mailbox", data=_form(mailbox))
    ciphertext = _account(user.id).password_encrypted
    pages = [(user.client, p) for p in ("/", "/preferences", "/preferences/import-status.json", "/warnings",
                                        "/records", "/history", "/preferences/password")]
    pages += [(admin.client, p) for p in ("/", "/users", f"/users/{user.id}", f"/users/{user.id}/preferences",
                                          f"/users/{user.id}/import-status.json", "/warnings", "/history")]
    for client, path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        assert mailbox["password"] not in body, path
        assert ciphertext not in body, path
