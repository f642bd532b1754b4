"""Erasing a person from a record's page: admins only, the counts first, then nothing of them is left."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import func, select

from rolsync.extensions import db
from rolsync.models import Contact, Document, Erasure, Note
from tests.web.conftest import add_user
from tests.web.seed import seed_crm


def test_only_admins_are_offered_and_allowed_to_erase(app, user, admin):
    seeded = seed_crm(app, user.id)
    page = f"/records/contact/{seeded.carol_id}"
    assert "Erase this person" not in user.client.get(page).get_data(as_text=True)
    assert "Erase this person" in admin.client.get(page).get_data(as_text=True)
    assert user.client.get(f"{page}/erase").status_code == 403
    assert user.client.post(f"{page}/erase").status_code == 403
    assert user.client.get("/privacy").status_code == 403
    assert db.session.get(Contact, seeded.carol_id) is not None


def test_the_confirmation_shows_the_counts_and_erasing_leaves_an_audit_of_counts(app, user, admin):
    seeded = seed_crm(app, user.id)
    page = f"/records/contact/{seeded.carol_id}"

    confirm = admin.client.get(f"{page}/erase").get_data(as_text=True)

    assert "carol@client.example" in confirm
    counts = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td>', confirm))
    assert counts["Records"] == "1" and counts["Notes"] == "1" and counts["Documents"] == "1"
    assert db.session.get(Contact, seeded.carol_id) is not None  # looking erases nothing

    response = admin.client.post(f"{page}/erase", follow_redirects=True)

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The person was erased" in html and "carol@client.example" not in html
    db.session.expire_all()
    assert db.session.get(Contact, seeded.carol_id) is None
    assert db.session.scalar(select(func.count(Note.id))) == 0
    assert db.session.scalar(select(func.count(Document.id))) == 0
    [audit] = db.session.scalars(select(Erasure)).all()
    assert audit.erased_by == admin.email
    assert audit.counts["notes"] == 1 and audit.counts["documents"] == 1
    assert admin.client.get(f"/documents/{seeded.document_id}").status_code == 404
    # Adding her address to another record is refused until an admin allows it again.
    dan = f"/records/contact/{seeded.dan_id}"
    refused = user.client.post(f"{dan}/emails", data={"address": "Carol@Client.example"})
    assert refused.status_code == 422
    assert "belongs to a person who was erased" in refused.get_data(as_text=True)
    lifted = admin.client.post("/privacy/lift", data={"address": "carol@client.example"}, follow_redirects=True)
    assert "may be imported and loaded again" in lifted.get_data(as_text=True)
    assert user.client.post(f"{dan}/emails", data={"address": "carol@client.example"}).status_code == 302


def test_erase_from_the_record_page_in_chromium(page, live_server):
    from tests.web.test_browser import sign_in

    app = live_server.app
    admin_user = add_user(app, admin=True, password="admin-password-1")
    consultant = add_user(app, password="user-password-1")
    seeded = seed_crm(app, consultant.id)
    sign_in(page, admin_user.email, "admin-password-1")

    page.goto(f"/records/contact/{seeded.carol_id}")
    expect(page.get_by_text("CV for the Java role")).to_be_visible()
    page.get_by_role("link", name="Erase this person").click()

    counts = page.locator("#erase-counts")
    expect(counts.get_by_role("row", name=re.compile("Notes"))).to_contain_text("1")
    expect(counts.get_by_role("row", name=re.compile("Documents"))).to_contain_text("1")
    expect(counts.get_by_role("row", name=re.compile("Records"))).to_contain_text("1")
    page.get_by_role("button", name="Erase this person for good").click()

    expect(page.get_by_role("heading", name="Erased people and deletions")).to_be_visible()
    expect(page.get_by_text("The person was erased")).to_be_visible()
    expect(page.locator("#erasures tbody tr")).to_have_count(1)
    expect(page.locator("#erasures")).to_contain_text(admin_user.email)
    page.goto("/records")
    expect(page.get_by_text("Carol Client")).to_have_count(0)
