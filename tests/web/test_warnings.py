"""The warning queue, fed by a real `flask mail import` from the test Dovecot."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from devkit.builders import build_message, minimal_pdf, tiny_png
from rolsync.extensions import db
from rolsync.models import Contact, EmailAddress, ImportedMessage, ImportWarning
from tests.web.conftest import sign_in
from tests.web.seed import seed_crm, seed_duplicate_warning

CONSULTANT_PASSWORD = "user-password-123"


@pytest.fixture
def duplicate(consultant, crm):
    """A real import of one message from an address two contacts share, with a PDF and a logo."""
    consultant.deliver("INBOX", build_message(
        from_="Dan <shared@client.example>", to=consultant.email, subject="Budget for the new hire",
        text="We can go to 80k.\nDan", message_id="<budget-1@client.example>",
        attachments=[("budget.pdf", "application/pdf", minimal_pdf()), ("logo.png", "image/png", tiny_png())]))
    summary = consultant.import_now()
    assert summary["warnings"] == 1 and summary["imported"] == 0
    client = consultant.app.test_client()
    sign_in(client, consultant.email, CONSULTANT_PASSWORD)
    warning = db.session.scalar(select(ImportWarning))
    return {"client": client, "warning": warning.id, "consultant": consultant}


def _contact(name: str) -> Contact:
    return db.session.scalar(select(Contact).where(Contact.name == name))


def _ledger() -> ImportedMessage:
    db.session.expire_all()
    return db.session.scalar(select(ImportedMessage))


def _badge(html: str) -> str:
    return re.search(r"data-open-warnings[^>]*>(\d+)<", html).group(1)


def test_a_warning_shows_the_message_and_the_records_that_share_the_address(duplicate):
    html = duplicate["client"].get("/warnings").get_data(as_text=True)
    assert "Budget for the new hire" in html
    assert "shared@client.example" in html
    assert "Dan Dup" in html and "Dana Dup" in html
    assert "We can go to 80k. Dan" in html  # the snippet
    assert html.count(">Attach to this record</button>") == 2
    assert ">Attach to all</button>" in html and ">Dismiss</button>" in html
    assert _badge(html) == "1"


def test_attach_to_this_record_imports_the_note_and_documents_now(duplicate):
    dan, dana = _contact("Dan Dup"), _contact("Dana Dup")
    response = duplicate["client"].post(f"/warnings/{duplicate['warning']}/attach",
                                        data={"record": f"contact:{dan.id}"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "The message is now a note on Dan Dup." in html
    assert _badge(html) == "0"

    [note] = duplicate["consultant"].notes()
    assert note["record_id"] == dan.id and note["record_kind"] == "contact"
    assert note["subject"] == "Budget for the new hire" and note["direction"] == "received"
    assert note["message_id"] == "budget-1@client.example"
    assert "We can go to 80k." in note["body"]
    assert [d["filename"] for d in note["documents"]] == ["budget.pdf"]  # the rules leave the image out
    [warning] = duplicate["consultant"].warnings()
    assert warning["status"] == "resolved"
    db.session.expire_all()
    stored = db.session.get(ImportWarning, duplicate["warning"])
    assert (stored.resolution, stored.resolved_by) == ("attached", duplicate["consultant"].email)
    ledger = _ledger()
    assert (ledger.outcome, ledger.reason, ledger.notes_created) == ("imported", "attached", 1)

    record_page = duplicate["client"].get(f"/records/contact/{dan.id}").get_data(as_text=True)
    assert "Budget for the new hire" in record_page and "budget.pdf" in record_page
    assert "Budget for the new hire" not in duplicate["client"].get(f"/records/contact/{dana.id}").get_data(
        as_text=True)

    # Importing again changes nothing: the ledger already has the message.
    assert duplicate["consultant"].import_now()["imported"] == 0
    assert len(duplicate["consultant"].notes()) == 1


def test_attach_to_all_gives_every_record_the_note(duplicate):
    response = duplicate["client"].post(f"/warnings/{duplicate['warning']}/attach-all", follow_redirects=True)
    assert "The message was added to 2 records." in response.get_data(as_text=True)
    notes = duplicate["consultant"].notes()
    assert sorted(n["record_id"] for n in notes) == sorted([_contact("Dan Dup").id, _contact("Dana Dup").id])
    assert _ledger().notes_created == 2


def test_a_warning_is_dealt_with_once(duplicate):
    dan = _contact("Dan Dup")
    duplicate["client"].post(f"/warnings/{duplicate['warning']}/attach", data={"record": f"contact:{dan.id}"})
    again = duplicate["client"].post(f"/warnings/{duplicate['warning']}/attach-all", follow_redirects=True)
    assert "This warning has already been dealt with." in again.get_data(as_text=True)
    assert len(duplicate["consultant"].notes()) == 1


def test_attach_refuses_a_record_the_warning_does_not_name(duplicate):
    carol = _contact("Carol Client")
    response = duplicate["client"].post(f"/warnings/{duplicate['warning']}/attach",
                                        data={"record": f"contact:{carol.id}"}, follow_redirects=True)
    assert "That record is not one of the records this warning names." in response.get_data(as_text=True)
    assert duplicate["consultant"].notes() == []
    assert duplicate["client"].post(f"/warnings/{duplicate['warning']}/attach",
                                    data={"record": "<script>"}).status_code == 400


def test_resolving_a_duplicate_by_editing_the_records_then_retry(duplicate):
    client = duplicate["client"]
    dan, dana = _contact("Dan Dup"), _contact("Dana Dup")
    email_id = db.session.scalar(select(EmailAddress.id).where(EmailAddress.contact_id == dana.id))

    # Still a duplicate: Retry explains and keeps the warning.
    still = client.post(f"/warnings/{duplicate['warning']}/retry", follow_redirects=True).get_data(as_text=True)
    assert "shared@client.example still belongs to several records (Dan Dup, Dana Dup)." in still
    assert _badge(still) == "1"

    removed = client.post(f"/records/contact/{dana.id}/emails/{email_id}/remove", follow_redirects=True)
    html = removed.get_data(as_text=True)
    assert "shared@client.example was removed from Dana Dup." in html
    assert "choose Retry to import the message" in html

    page = client.get("/warnings").get_data(as_text=True)
    assert "The address now belongs only to Dan Dup: Retry imports the message there." in page
    done = client.post(f"/warnings/{duplicate['warning']}/retry", follow_redirects=True).get_data(as_text=True)
    assert "Imported: the message is now a note on Dan Dup." in done
    assert _badge(done) == "0"
    [note] = duplicate["consultant"].notes()
    assert note["record_id"] == dan.id
    assert [d["filename"] for d in note["documents"]] == ["budget.pdf"]
    ledger = _ledger()
    assert (ledger.outcome, ledger.reason, ledger.rule) == ("imported", "matched", "one_contact")
    assert duplicate["consultant"].warnings()[0]["status"] == "resolved"


def test_retry_in_bulk_after_fixing_a_shared_address_and_the_resolved_warning_names_its_record(duplicate):
    consultant = duplicate["consultant"]
    consultant.deliver("INBOX", build_message(
        from_="Dan <shared@client.example>", to=consultant.email, subject="Second budget mail", text="x",
        message_id="<budget-2@client.example>"))
    assert consultant.import_now()["warnings"] == 1
    client = duplicate["client"]
    ids = [str(w.id) for w in db.session.scalars(select(ImportWarning).order_by(ImportWarning.id))]
    assert len(ids) == 2

    still = client.post("/warnings/retry", data={"warning_ids": ids}, follow_redirects=True).get_data(as_text=True)
    assert "None of the 2 could be imported yet. Still open: shared@client.example still belongs to several " \
           "records (Dan Dup, Dana Dup). (1 more like it)" in still
    assert _badge(still) == "2"

    dana = _contact("Dana Dup")
    email_id = db.session.scalar(select(EmailAddress.id).where(EmailAddress.contact_id == dana.id))
    client.post(f"/records/contact/{dana.id}/emails/{email_id}/remove")
    done = client.post("/warnings/retry", data={"warning_ids": ids}, follow_redirects=True).get_data(as_text=True)
    assert "2 of 2 imported (now notes on Dan Dup)." in done and _badge(done) == "0"
    assert sorted(n["subject"] for n in consultant.notes()) == ["Budget for the new hire", "Second budget mail"]

    resolved = client.get("/warnings?status=resolved").get_data(as_text=True)
    row = resolved[resolved.index("Second budget mail"):]
    row = row[:row.index("</tr>")]
    assert "imported on retry" in row and re.search(r"Now a note on <a [^>]*>Dan Dup</a>", row)
    assert "Dana Dup" not in row.split("Now a note on", 1)[1].split("</p>", 1)[0]


def test_dismiss_and_reopen(duplicate):
    client = duplicate["client"]
    html = client.post(f"/warnings/{duplicate['warning']}/dismiss", follow_redirects=True).get_data(as_text=True)
    assert "The warning was dismissed." in html and _badge(html) == "0"
    assert "Budget for the new hire" not in html  # the list shows open warnings
    dismissed = client.get("/warnings?status=dismissed").get_data(as_text=True)
    assert "Budget for the new hire" in dismissed and "Reopen" in dismissed
    assert duplicate["consultant"].notes() == []
    html = client.post(f"/warnings/{duplicate['warning']}/reopen", follow_redirects=True).get_data(as_text=True)
    assert "The warning is open again." in html and _badge(html) == "1"


def test_bulk_dismiss_only_touches_ones_own_open_warnings(app, user, other_user):
    seed_crm(app, user.id)
    mine = [seed_duplicate_warning(app, user.id, subject=f"Mine {i}") for i in range(3)]
    theirs = seed_duplicate_warning(app, other_user.id, subject="Theirs")
    response = user.client.post("/warnings/dismiss", data={"warning_ids": [str(mine[0]), str(mine[1]),
                                                                           str(theirs)]},
                                follow_redirects=True)
    assert "2 warnings dismissed." in response.get_data(as_text=True)
    db.session.expire_all()
    statuses = {w.subject: w.status for w in db.session.scalars(select(ImportWarning))}
    assert statuses == {"Mine 0": "dismissed", "Mine 1": "dismissed", "Mine 2": "open", "Theirs": "open"}
    nothing = user.client.post("/warnings/dismiss", data={}, follow_redirects=True)
    assert "Tick the warnings to dismiss first." in nothing.get_data(as_text=True)


def test_filters_by_kind_status_text_and_user(app, admin, user, other_user):
    seed_crm(app, user.id)
    seed_duplicate_warning(app, user.id, subject="Alpha offer")
    seed_duplicate_warning(app, other_user.id, subject="Beta offer")
    with app.app_context():
        db.session.add(ImportWarning(user_id=user.id, kind="no_sent_folder", detail="No Sent folder was found."))
        db.session.commit()

    everyone = admin.client.get("/warnings").get_data(as_text=True)
    assert "Alpha offer" in everyone and "Beta offer" in everyone and "No Sent folder" in everyone
    assert user.email in everyone and other_user.email in everyone  # admins see whose it is
    only_user = admin.client.get(f"/warnings?user={other_user.id}").get_data(as_text=True)
    assert "Beta offer" in only_user and "Alpha offer" not in only_user
    by_kind = admin.client.get("/warnings?kind=no_sent_folder").get_data(as_text=True)
    assert "No Sent folder" in by_kind and "Alpha offer" not in by_kind
    by_text = admin.client.get("/warnings?q=ALPHA").get_data(as_text=True)
    assert "Alpha offer" in by_text and "Beta offer" not in by_text
    assert "No warnings match." in admin.client.get("/warnings?status=resolved").get_data(as_text=True)
    # A user's own filter cannot reach someone else's warnings.
    mine = user.client.get(f"/warnings?user={other_user.id}").get_data(as_text=True)
    assert "Beta offer" not in mine and "Alpha offer" in mine


def test_the_list_is_paginated(app, user):
    seed_crm(app, user.id)
    for i in range(27):
        seed_duplicate_warning(app, user.id, subject=f"Offer number {i:02d}")
    first = user.client.get("/warnings").get_data(as_text=True)
    assert "1–25 of 27" in first and "Offer number 26" in first and "Offer number 01" not in first
    second = user.client.get("/warnings?page=2").get_data(as_text=True)
    assert "26–27 of 27" in second and "Offer number 01" in second and "Offer number 00" in second
    assert user.client.get("/warnings?page=99").status_code == 200


def test_mail_content_is_escaped(app, user):
    seed_crm(app, user.id)
    seed_duplicate_warning(app, user.id, subject="<script>alert(1)</script>",
                           text='<img src=x onerror="alert(2)">')
    html = user.client.get("/warnings").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html


def test_the_original_message_downloads_as_a_file(app, user):
    seed_crm(app, user.id)
    warning_id = seed_duplicate_warning(app, user.id)
    response = user.client.get(f"/warnings/{warning_id}/message.eml")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f"attachment; filename=warning-{warning_id}.eml"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "message/rfc822"
    assert b"Budget for the new hire" in response.get_data()
    response.close()


def test_an_empty_queue_says_so(user):
    html = user.client.get("/warnings").get_data(as_text=True)
    assert "Nothing to sort out" in html


def test_a_warning_without_a_kept_message_offers_no_import(app, user):
    with app.app_context():
        db.session.add(ImportWarning(user_id=user.id, kind="no_sent_folder",
                                     detail="No Sent folder was found in the mailbox."))
        db.session.commit()
    html = user.client.get("/warnings").get_data(as_text=True)
    assert "No Sent folder was found in the mailbox." in html
    assert "Attach to" not in html and ">Retry</button>" not in html and ">Dismiss</button>" in html


def test_another_users_warning_cannot_be_attached(app, user, other_user):
    seeded = seed_crm(app, user.id)
    warning_id = seed_duplicate_warning(app, user.id)
    response = other_user.client.post(f"/warnings/{warning_id}/attach", data={"record": f"contact:{seeded.dan_id}"})
    assert response.status_code == 404



def test_warnings_list_the_newest_mail_first(app, user):
    from datetime import datetime, timezone

    seed_crm(app, user.id)
    older = seed_duplicate_warning(app, user.id, subject="Written in January")
    newer = seed_duplicate_warning(app, user.id, subject="Written in March")
    with app.app_context():
        # Raised in the other order: the March mail was decided first.
        db.session.get(ImportWarning, older).sent_at = datetime(2026, 1, 5, tzinfo=timezone.utc)
        db.session.get(ImportWarning, newer).sent_at = datetime(2026, 3, 5, tzinfo=timezone.utc)
        db.session.get(ImportWarning, newer).created_at = datetime(2026, 3, 6, tzinfo=timezone.utc)
        db.session.get(ImportWarning, older).created_at = datetime(2026, 3, 7, tzinfo=timezone.utc)
        db.session.commit()
    html = user.client.get("/warnings").get_data(as_text=True)
    assert html.index("Written in March") < html.index("Written in January")
