"""Records: search, the timeline of notes, document downloads, editing addresses."""
from __future__ import annotations

from sqlalchemy import select

from devkit.builders import build_message, minimal_pdf
from rolsync import crm
from rolsync.extensions import db
from rolsync.models import Company, Contact, EmailAddress, RecordKind
from tests.web.seed import seed_crm


def test_the_list_searches_by_name_address_and_company(app, user):
    seed_crm(app, user.id)
    with app.app_context():
        crm.load_rows(db.session, [crm.CrmRow(RecordKind.CANDIDATE, "Cathy Candidate", "cathy@candidates.example",
                                              "")])
        db.session.commit()
    everyone = user.client.get("/records").get_data(as_text=True)
    for name in ("Carol Client", "Dan Dup", "Dana Dup", "Cathy Candidate"):
        assert name in everyone
    assert user.client.get("/records?q=CATHY").get_data(as_text=True).count("Cathy Candidate") == 1
    by_address = user.client.get("/records?q=shared@client").get_data(as_text=True)
    assert "Dan Dup" in by_address and "Dana Dup" in by_address and "Carol" not in by_address
    by_company = user.client.get("/records?q=other co").get_data(as_text=True)
    assert "Dana Dup" in by_company and "Dan Dup<" not in by_company
    candidates = user.client.get("/records?kind=candidate").get_data(as_text=True)
    assert "Cathy Candidate" in candidates and "Carol Client" not in candidates
    assert "No records match." in user.client.get("/records?q=nobody-at-all").get_data(as_text=True)
    percent = user.client.get("/records?q=%25").get_data(as_text=True)  # a LIKE wildcard is just a character
    assert "No records match." in percent


def test_a_record_shows_its_notes_company_and_related_companies(app, user):
    seeded = seed_crm(app, user.id)
    with app.app_context():
        client_ltd = db.session.scalar(select(Company).where(Company.name == "Client Ltd"))
        other = db.session.scalar(select(Company).where(Company.name == "Other Co"))
        client_ltd.relate(other)
        db.session.commit()
    html = user.client.get(f"/records/contact/{seeded.carol_id}").get_data(as_text=True)
    assert "Carol Client" in html and "Client Ltd" in html and "related companies: Other Co" in html
    assert "CV for the Java role" in html and "Please find the CV attached." in html
    assert "Received" in html and "cv.pdf" in html
    assert f'href="/documents/{seeded.document_id}"' in html
    assert user.client.get("/records/contact/999999").status_code == 404
    assert user.client.get(f"/records/person/{seeded.carol_id}").status_code == 404


def test_a_document_downloads_as_an_attachment_and_is_never_sniffed(app, user):
    seeded = seed_crm(app, user.id)
    response = user.client.get(f"/documents/{seeded.document_id}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == "attachment; filename=cv.pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/pdf"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.get_data() == minimal_pdf()
    response.close()


def test_a_document_that_a_browser_would_run_comes_as_plain_bytes(app, user):
    from rolsync import notes, resources
    from rolsync.mail.parse import parse_message
    from rolsync.matching import find_records
    from rolsync.models import Direction, Document
    from rolsync.rules.store import active_rules

    seed_crm(app, user.id)
    raw = build_message(from_="carol@client.example", subject="page", text="x",
                        attachments=[('"><script>alert(1)</script>.html', "text/html", b"<script>alert(1)</script>")])
    with app.app_context():
        carol = find_records(db.session, ["carol@client.example"])["carol@client.example"].contacts
        notes.save_message_as_notes(db.session, resources.get().documents, active_rules(db.session),
                                    parse_message(raw), user_id=user.id, folder="INBOX",
                                    direction=Direction.RECEIVED, records=carol)
        db.session.commit()
        document = db.session.scalar(select(Document).where(Document.content_type == "text/html"))
        document_id, contact_id = document.id, document.note.contact_id
    response = user.client.get(f"/documents/{document_id}")
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    response.close()
    page = user.client.get(f"/records/contact/{contact_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page


def test_adding_and_removing_addresses(app, user):
    seeded = seed_crm(app, user.id)
    response = user.client.post(f"/records/contact/{seeded.carol_id}/emails",
                                data={"address": "Carol <Carol.Second@Client.Example>"}, follow_redirects=True)
    assert "carol.second@client.example was added." in response.get_data(as_text=True)
    addresses = lambda: sorted(db.session.scalars(select(EmailAddress.address).where(  # noqa: E731
        EmailAddress.contact_id == seeded.carol_id)))
    db.session.expire_all()
    assert addresses() == ["carol.second@client.example", "carol@client.example"]

    duplicate = user.client.post(f"/records/contact/{seeded.carol_id}/emails", data={"address": "carol@client.example"})
    assert duplicate.status_code == 422
    assert "Carol Client already has the address carol@client.example." in duplicate.get_data(as_text=True)
    bad = user.client.post(f"/records/contact/{seeded.carol_id}/emails", data={"address": "not an address"})
    assert bad.status_code == 422 and "is not an e-mail address" in bad.get_data(as_text=True)
    empty = user.client.post(f"/records/contact/{seeded.carol_id}/emails", data={"address": ""})
    assert empty.status_code == 422 and "Enter an e-mail address." in empty.get_data(as_text=True)
    db.session.expire_all()
    assert len(addresses()) == 2

    second = db.session.scalar(select(EmailAddress.id).where(EmailAddress.address == "carol.second@client.example"))
    response = user.client.post(f"/records/contact/{seeded.carol_id}/emails/{second}/remove", follow_redirects=True)
    assert "carol.second@client.example was removed from Carol Client." in response.get_data(as_text=True)
    db.session.expire_all()
    assert addresses() == ["carol@client.example"]
    # Someone else's address id through this record's URL does nothing.
    dan_email = db.session.scalar(select(EmailAddress.id).where(EmailAddress.contact_id == seeded.dan_id))
    response = user.client.post(f"/records/contact/{seeded.carol_id}/emails/{dan_email}/remove",
                                follow_redirects=True)
    assert "That address does not belong to this record." in response.get_data(as_text=True)


def test_adding_an_address_another_record_has_warns_of_the_duplicate(app, user):
    seeded = seed_crm(app, user.id)
    response = user.client.post(f"/records/contact/{seeded.carol_id}/emails",
                                data={"address": "shared@client.example"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Dan Dup, Dana Dup also have this address" in html
    page = user.client.get(f"/records/contact/{seeded.dan_id}").get_data(as_text=True)
    assert "mail from it waits in Warnings" in page


def test_adding_an_address_imports_mail_the_rules_kept_for_it(consultant, tmp_path):
    """With no_match set to keep, mail from an unknown address waits for a record; adding the address links it."""
    import json

    from tests.web.conftest import sign_in

    rules = json.loads(consultant.cli("rules", "export").output)
    rules["no_match"]["action"] = "keep"
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    assert consultant.cli("rules", "import", str(path)).exit_code == 0
    with consultant.app.app_context():
        crm.load_rows(db.session, [crm.CrmRow(RecordKind.CONTACT, "Nina New", "nina@old.example", "")])
        db.session.commit()
    consultant.deliver("INBOX", build_message(from_="nina@new.example", to=consultant.email,
                                              subject="My new address", text="Write here from now on."))
    consultant.import_now()
    assert consultant.notes() == []

    client = consultant.app.test_client()
    sign_in(client, consultant.email, "user-password-123")
    nina = db.session.scalar(select(Contact.id).where(Contact.name == "Nina New"))
    response = client.post(f"/records/contact/{nina}/emails", data={"address": "nina@new.example"},
                           follow_redirects=True)
    assert "1 message kept for this address is now on the record." in response.get_data(as_text=True)
    [note] = consultant.notes()
    assert note["subject"] == "My new address" and note["record_id"] == nina
