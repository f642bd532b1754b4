"""A private mailbox's notes: invisible to other consultants on every page, download URL and export."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from devkit.builders import build_message
from rolsync import notes, privacy, resources
from rolsync.extensions import db
from rolsync.models import Direction, MailAccount, Note, PendingMessage, User, Visibility
from rolsync.records import RecordFilter, search_records
from tests.web.seed import seed_crm


def _mailbox(app, user_id: int, visibility: Visibility) -> None:
    with app.app_context():
        db.session.add(MailAccount(user_id=user_id, host="imap.agency.example", username=f"u{user_id}@agency.example",
                                   password_encrypted=resources.get().secrets.encrypt("pw"),
                                   visibility=visibility.value))
        db.session.commit()


def _download_status(client, url: str) -> int:
    response = client.get(url)
    response.close()
    return response.status_code


def _export(app, *args: str) -> list[dict]:
    result = app.test_cli_runner().invoke(args=["notes", "export", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_private_mailboxs_notes_are_hidden_from_other_consultants(app, user, other_user, admin):
    _mailbox(app, user.id, Visibility.PRIVATE)
    seeded = seed_crm(app, user.id)
    page = f"/records/contact/{seeded.carol_id}"
    download = f"/documents/{seeded.document_id}"

    # The owner and admins see the note and its document.
    for person in (user, admin):
        html = person.client.get(page).get_data(as_text=True)
        assert "CV for the Java role" in html and "cv.pdf" in html
        assert _download_status(person.client, download) == 200
    # Another consultant sees the record without the note, and the document is "not found", as a wrong id is.
    html = other_user.client.get(page).get_data(as_text=True)
    assert "Carol Client" in html
    assert "CV for the Java role" not in html and "cv.pdf" not in html and "Please find the CV" not in html
    assert _download_status(other_user.client, download) == 404
    # The list counts only the notes one may see.
    carol = RecordFilter(text="carol")
    [hidden] = search_records(db.session, carol, viewer=db.session.get(User, other_user.id)).items
    [shown] = search_records(db.session, carol, viewer=db.session.get(User, user.id)).items
    assert (hidden.notes, hidden.last_note_at) == (0, None) and shown.notes == 1
    # The export says who may see what.
    assert len(_export(app)) == 1
    assert len(_export(app, "--visible-to", user.email)) == 1
    assert len(_export(app, "--visible-to", admin.email)) == 1
    assert _export(app, "--visible-to", other_user.email) == []


def test_an_everyone_mailboxs_notes_are_seen_by_all(app, user, other_user):
    _mailbox(app, user.id, Visibility.EVERYONE)
    seeded = seed_crm(app, user.id)

    assert "CV for the Java role" in other_user.client.get(f"/records/contact/{seeded.carol_id}").get_data(
        as_text=True)
    assert _download_status(other_user.client, f"/documents/{seeded.document_id}") == 200
    assert len(_export(app, "--visible-to", other_user.email)) == 1


def test_held_mail_links_only_where_its_owners_visibility_allows(app, user, other_user):
    _mailbox(app, user.id, Visibility.PRIVATE)
    seeded = seed_crm(app, user.id)
    with app.app_context():
        raw = build_message(from_="newcomer@client.example", to="me@agency.example", subject="Held for later",
                            text="Kept until a record has this address.")
        writer = notes.NoteWriter(db.session, resources.get().documents)
        sha = writer.store_bytes(raw)
        writer.flush()
        notes.hold_for_record(db.session, user_id=user.id, address="newcomer@client.example",
                              message_key="mid:held-1", raw_sha256=sha, folder="INBOX", direction=Direction.RECEIVED)
        db.session.commit()
    dan = f"/records/contact/{seeded.dan_id}"

    response = other_user.client.post(f"{dan}/emails", data={"address": "newcomer@client.example"},
                                      follow_redirects=True)

    html = response.get_data(as_text=True)
    assert "newcomer@client.example was added" in html
    assert "now on the record" not in html and "Held for later" not in html
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Note.id)).where(Note.contact_id == seeded.dan_id)) == 0
    assert db.session.scalar(select(PendingMessage.linked_at)) is None  # it waits for its owner or an admin


def test_a_consultant_removes_a_note_from_their_own_mailbox_only(app, user, other_user):
    _mailbox(app, user.id, Visibility.EVERYONE)
    seeded = seed_crm(app, user.id)
    page = f"/records/contact/{seeded.carol_id}"
    assert "Remove note" not in other_user.client.get(page).get_data(as_text=True)
    refused = other_user.client.post(f"{page}/notes/{seeded.note_id}/remove", follow_redirects=True)
    assert "Only notes from your own mailbox can be removed." in refused.get_data(as_text=True)
    assert db.session.get(Note, seeded.note_id) is not None

    assert "Remove note" in user.client.get(page).get_data(as_text=True)
    removed = user.client.post(f"{page}/notes/{seeded.note_id}/remove", follow_redirects=True)

    html = removed.get_data(as_text=True)
    assert "The note was removed" in html and "CV for the Java role" not in html
    db.session.expire_all()
    assert db.session.get(Note, seeded.note_id) is None
    assert _download_status(user.client, f"/documents/{seeded.document_id}") == 404


def test_preferences_save_the_privacy_settings_within_what_admins_allow(app, user, admin):
    _mailbox(app, user.id, Visibility.EVERYONE)
    html = user.client.get("/preferences").get_data(as_text=True)
    assert "Who sees the notes from this mailbox" in html and "Private keyword" in html

    saved = user.client.post("/preferences/privacy", data={
        "visibility": "private", "capture_level": "subject", "private_keyword": "$private",
        "private_folder": "Personal"}, follow_redirects=True)

    assert "The privacy settings were saved" in saved.get_data(as_text=True)
    db.session.expire_all()
    account = db.session.scalar(select(MailAccount).where(MailAccount.user_id == user.id))
    assert (account.visibility, account.capture_level, account.private_keyword, account.private_folder) == (
        "private", "subject", "$private", "Personal")

    locked = admin.client.post("/privacy/capture", data={"capture_default": "subject", "capture_locked": "y"},
                               follow_redirects=True)
    assert "The capture policy was saved" in locked.get_data(as_text=True)
    offered = user.client.get("/preferences").get_data(as_text=True)
    assert privacy.LEVEL_LABELS[privacy.CaptureLevel.FULL] not in offered
    refused = user.client.post("/preferences/privacy", data={"visibility": "private", "capture_level": "full"},
                               follow_redirects=True)
    assert "allows no more than" in refused.get_data(as_text=True)
    bad = user.client.post("/preferences/privacy", data={"visibility": "private", "capture_level": "subject",
                                                         "private_keyword": "two words"}, follow_redirects=True)
    assert "A keyword is one word" in bad.get_data(as_text=True)
    assert user.client.post("/privacy/capture", data={"capture_default": "full"}).status_code == 403


def test_admins_set_retention_on_the_privacy_page(app, user, admin):
    assert _download_status(user.client, "/privacy") == 403
    refused = admin.client.post("/privacy/retention", data={"retention_months": "0"})
    assert refused.status_code == 422
    assert "from 1 to 1200" in refused.get_data(as_text=True)

    saved = admin.client.post("/privacy/retention", data={"retention_months": "24"}, follow_redirects=True)

    assert "older than 24 months will be deleted each night" in saved.get_data(as_text=True)
    db.session.expire_all()
    assert privacy.policy(db.session).retention_months == 24
    kept = admin.client.post("/privacy/retention", data={"retention_months": ""}, follow_redirects=True)
    assert "Imported notes and documents are kept." in kept.get_data(as_text=True)


def test_a_note_says_which_capture_level_made_it(app, user, other_user):
    _mailbox(app, user.id, Visibility.EVERYONE)
    seeded = seed_crm(app, user.id)
    page = f"/records/contact/{seeded.carol_id}"
    assert "the mailbox keeps no text" not in other_user.client.get(page).get_data(as_text=True)
    with app.app_context():
        db.session.get(Note, seeded.note_id).capture_level = "subject"
        db.session.commit()

    html = other_user.client.get(page).get_data(as_text=True)

    assert "Subject and participants only: the mailbox keeps no text" in html
