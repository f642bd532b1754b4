"""Import history: one's own messages (admins everyone's), searchable by address and subject, paginated."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from devkit.builders import build_message
from rolsync.extensions import db
from rolsync.models import ImportedMessage
from tests.web.conftest import sign_in


@pytest.fixture
def imported(consultant, crm):
    """A real import: a note to Carol, a sent mail to Cathy, a duplicate warning, mail between colleagues."""
    consultant.deliver_many("INBOX", [
        build_message(from_="carol@client.example", to=consultant.email, subject="Shortlist please", text="x"),
        build_message(from_="shared@client.example", to=consultant.email, subject="Who gets this?", text="x"),
        build_message(from_=f"boss@{consultant.domain}", to=consultant.email, subject="Team lunch", text="x"),
        build_message(from_="stranger@nowhere.example", to=consultant.email, subject="Newsletter", text="x"),
    ])
    consultant.deliver("Sent", build_message(from_=consultant.email, to="Cathy <cathy@candidates.example>",
                                             subject="Interview on Thursday", text="10am?"))
    consultant.import_now()
    client = consultant.app.test_client()
    sign_in(client, consultant.email, "user-password-123")
    return client


def test_every_message_is_listed_with_its_outcome_reason_and_rule(imported):
    html = imported.get("/history").get_data(as_text=True)
    for subject in ("Shortlist please", "Who gets this?", "Team lunch", "Newsletter", "Interview on Thursday"):
        assert subject in html
    assert html.count(">Imported</span>") == 2
    assert html.count(">Skipped</span>") == 2
    assert html.count(">Warning</span>") == 1
    assert "matched a record" in html and ">Carol Client</a>" in html and ">Cathy Candidate</a>" in html
    assert "mail between colleagues (own domain)" in html and "address shared by several records" in html
    # Words, not rule keys: the built-in rules' names are not shown to people.
    assert "own_domain" not in html and "duplicate_contact" not in html and "one_contact" not in html
    assert "no contact or candidate has the address" in html


def test_search_by_sender_recipient_or_subject(imported):
    by_sender = imported.get("/history?q=carol@client").get_data(as_text=True)
    assert "Shortlist please" in by_sender and "Newsletter" not in by_sender
    by_recipient = imported.get("/history?q=cathy@candidates.example").get_data(as_text=True)
    assert "Interview on Thursday" in by_recipient and "Shortlist please" not in by_recipient
    by_warned_address = imported.get("/history?q=SHARED@").get_data(as_text=True)
    assert "Who gets this?" in by_warned_address
    by_subject = imported.get("/history?q=lunch").get_data(as_text=True)
    assert "Team lunch" in by_subject and "Newsletter" not in by_subject
    by_outcome = imported.get("/history?outcome=skipped").get_data(as_text=True)
    assert "Team lunch" in by_outcome and "Newsletter" in by_outcome and "Shortlist please" not in by_outcome
    assert "No messages match." in imported.get("/history?q=zzz-nothing").get_data(as_text=True)


def test_a_skipped_message_is_found_by_any_address_it_went_to(consultant, crm):
    """Mail that made no note (a stranger in Cc, a colleague) is still found by its recipients."""
    consultant.deliver("Sent", build_message(
        from_=consultant.email, to=f"boss@{consultant.domain}", cc="Pat <pat@stranger.example>",
        subject="Budget for Q3", text="x"))
    consultant.deliver("INBOX", build_message(
        from_="stranger@nowhere.example", to=consultant.email, subject="Offer", text="x"))
    consultant.import_now()
    client = consultant.app.test_client()
    sign_in(client, consultant.email, "user-password-123")

    by_cc = client.get("/history?q=PAT@stranger").get_data(as_text=True)
    assert "Budget for Q3" in by_cc and "Offer" not in by_cc
    assert f"to boss@{consultant.domain}, pat@stranger.example" in by_cc
    by_colleague = client.get(f"/history?q=boss@{consultant.domain}").get_data(as_text=True)
    assert "Budget for Q3" in by_colleague


def test_users_see_their_own_history_and_admins_everyones(app, imported, user, admin):
    assert "Shortlist please" not in user.client.get("/history").get_data(as_text=True)
    assert "Nothing imported yet." in user.client.get("/history").get_data(as_text=True)
    everyone = admin.client.get("/history").get_data(as_text=True)
    assert "Shortlist please" in everyone and "consultant" in everyone
    assert "Shortlist please" not in admin.client.get(f"/history?user={user.id}").get_data(as_text=True)


def test_the_history_is_paginated_newest_first(app, user):
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    with app.app_context():
        for i in range(60):
            db.session.add(ImportedMessage(
                user_id=user.id, dedupe_key=f"mid:{i}", message_key=f"mid:{i}", folder="INBOX",
                subject=f"Message {i:02d}", from_addr="someone@example.org", outcome="skipped", reason="no_match",
                rule="no_match", created_at=start + timedelta(minutes=i)))
        db.session.commit()
    first = user.client.get("/history").get_data(as_text=True)
    assert "1–25 of 60" in first and "Message 59" in first and "Message 34" not in first
    third = user.client.get("/history?page=3").get_data(as_text=True)
    assert "51–60 of 60" in third and "Message 00" in third and "Message 10" not in third
    assert 'href="/history?page=2"' in third
    searched = user.client.get("/history?q=message&page=2").get_data(as_text=True)
    assert 'href="/history?page=3&amp;q=message"' in searched or 'href="/history?q=message&amp;page=3"' in searched


def test_the_history_lists_the_newest_mail_first_not_the_last_decided(app, user):
    """A first import decides old and new mail at one moment: the order is the mail's own date."""
    decided = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    written = {"Oldest": datetime(2025, 9, 1, tzinfo=timezone.utc),
               "Newest": datetime(2026, 2, 28, tzinfo=timezone.utc),
               "Middle": datetime(2025, 12, 24, tzinfo=timezone.utc)}
    with app.app_context():
        for i, (subject, sent_at) in enumerate(written.items()):
            db.session.add(ImportedMessage(
                user_id=user.id, dedupe_key=f"mid:{i}", message_key=f"mid:{i}", folder="INBOX", subject=subject,
                outcome="imported", reason="matched", created_at=decided + timedelta(seconds=i), sent_at=sent_at))
        # A row from before the ledger kept the mail's date falls back to when it was decided.
        db.session.add(ImportedMessage(user_id=user.id, dedupe_key="mid:old", message_key="mid:old", folder="INBOX",
                                       subject="Undated", outcome="skipped", reason="no_match",
                                       created_at=datetime(2025, 10, 1, tzinfo=timezone.utc)))
        db.session.commit()
    html = user.client.get("/history").get_data(as_text=True)
    order = sorted(["Oldest", "Newest", "Middle", "Undated"], key=html.index)
    assert order == ["Newest", "Middle", "Undated", "Oldest"]
    assert '<time datetime="2026-02-28T00:00:00+00:00">' in html  # the date column shows the mail's date
