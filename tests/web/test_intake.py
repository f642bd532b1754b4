"""New people in the panel (test client): who sees what, the count, and the rules page knowing the new action."""
from __future__ import annotations

import io
import re

from sqlalchemy import select

from devkit.builders import build_message, minimal_pdf
from rolsync.extensions import db
from rolsync.models import ImportWarning
from tests.web.conftest import sign_in
from tests.web.test_rules import form_data, save

CONSULTANT_PASSWORD = "user-password-123"


def _application(consultant, sender="Sam Stranger <sam@applicants.example>", subject="My CV") -> bytes:
    return build_message(from_=sender, to=consultant.email, subject=subject,
                         attachments=[("cv.pdf", "application/pdf", minimal_pdf())])


def _count(html: str) -> str:
    return re.search(r"data-new-people[^>]*>(\d+)<", html).group(1)


def test_new_people_has_its_own_count_and_only_the_owner_and_admins_see_an_item(app, consultant, crm, other_user,
                                                                               admin):
    consultant.deliver("INBOX", _application(consultant))
    consultant.import_now()
    client = app.test_client()
    sign_in(client, consultant.email, CONSULTANT_PASSWORD)
    html = client.get("/new-people").get_data(as_text=True)
    assert _count(html) == "1"
    assert re.search(r"data-open-warnings[^>]*>0<", html), "an application is not a warning"
    assert "Sam Stranger" in html and "sam@applicants.example" in html and "My CV" in html
    item = db.session.scalar(select(ImportWarning).where(ImportWarning.kind == "intake"))
    assert client.get(f"/new-people/{item.id}/attachments/0").data == minimal_pdf()

    assert "Sam Stranger" in admin.client.get("/new-people").get_data(as_text=True)
    assert "Sam Stranger" not in other_user.client.get("/new-people").get_data(as_text=True)
    assert other_user.client.get(f"/new-people/{item.id}/attachments/0").status_code == 404
    response = other_user.client.post(f"/new-people/{item.id}/create",
                                      data={"name": "Sam", "email": "sam@applicants.example"})
    assert response.status_code == 404


def test_create_candidate_refuses_a_bad_address_and_loses_nothing(app, consultant, crm):
    consultant.deliver("INBOX", _application(consultant))
    consultant.import_now()
    client = app.test_client()
    sign_in(client, consultant.email, CONSULTANT_PASSWORD)
    item = db.session.scalar(select(ImportWarning).where(ImportWarning.kind == "intake"))
    response = client.post(f"/new-people/{item.id}/create", data={"name": "Sam", "email": "not an address"},
                           follow_redirects=True)
    assert "not an address is not an e-mail address." in response.get_data(as_text=True)
    assert _count(response.get_data(as_text=True)) == "1"
    response = client.post(f"/new-people/{item.id}/create", data={"name": "  ", "email": "sam@applicants.example"},
                           follow_redirects=True)
    assert "Give the candidate a name." in response.get_data(as_text=True)
    assert consultant.notes() == []


def test_the_rules_page_preview_and_versions_know_new_people(app, admin, crm):
    html = admin.client.get("/rules").get_data(as_text=True)
    assert "Applications from new people" in html
    assert re.search(r'id="intake_extensions"[^>]*value="\.doc, \.docx, \.odt, \.pdf, \.rtf"', html) or \
        re.search(r'value="\.doc, \.docx, \.odt, \.pdf, \.rtf"[^>]*id="intake_extensions"', html)

    posted = form_data(action="preview", intake_enabled=None)
    application = build_message(from_="Sam <sam@applicants.example>", to="jo@agency.example", subject="My CV",
                                attachments=[("cv.pdf", "application/pdf", minimal_pdf())])
    posted["preview_files"] = [(io.BytesIO(application), "cv.eml")]
    response = admin.client.post("/rules", data=posted, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:3000]
    assert "1 would be handled differently" in html
    row = re.search(r'<tr class="is-changed">(.*?)</tr>', html, re.DOTALL).group(1)
    assert "an application from a new person" in row or "looks like an application" in row

    assert save(admin.client, comment="no New people", intake_enabled=None).status_code == 302
    html = admin.client.get("/rules/versions").get_data(as_text=True)
    assert "Put applications from new people on the New people page: on \u2192 off" in html


def test_a_big_backlog_of_held_mail_follows_a_new_address_in_the_background(app, consultant, crm, monkeypatch,
                                                                          tmp_path):
    import json

    from rolsync import held
    from rolsync.models import Contact
    from tests.web.test_rules import _run_worker

    rules = json.loads(consultant.cli("rules", "export").output)
    rules["no_match"]["action"] = "keep"
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    assert consultant.cli("rules", "import", str(tmp_path / "rules.json")).exit_code == 0
    for n in range(3):
        consultant.deliver("INBOX", build_message(from_="carol.private@home.example", to=consultant.email,
                                                  subject=f"From home {n}", date=f"Mon, 0{n + 1} Apr 2024 09:00:00 +0000"))
    consultant.import_now()
    assert consultant.notes() == []

    monkeypatch.setattr(held, "LINK_NOW", 2)  # three held messages are more than the request imports itself
    client = app.test_client()
    sign_in(client, consultant.email, CONSULTANT_PASSWORD)
    carol = db.session.scalar(select(Contact.id).where(Contact.name == "Carol Client"))
    response = client.post(f"/records/contact/{carol}/emails", data={"address": "carol.private@home.example"},
                           follow_redirects=True)
    assert "carol.private@home.example was added." in response.get_data(as_text=True)
    assert consultant.notes() == []

    worker = _run_worker(app)
    assert worker.returncode == 0, worker.stderr[-3000:]
    notes = [n for n in consultant.notes() if n["record_id"] == carol]
    assert sorted((n["subject"], n["date"][:10]) for n in notes) == [
        ("From home 0", "2024-04-01"), ("From home 1", "2024-04-02"), ("From home 2", "2024-04-03")]
    # Once: running the job again (or adding the address elsewhere) adds nothing.
    assert _run_worker(app).returncode == 0
    assert len([n for n in consultant.notes() if n["record_id"] == carol]) == 3


def test_an_application_is_not_listed_among_the_warnings_unless_asked_for(app, consultant, crm):
    consultant.deliver("INBOX", _application(consultant))
    consultant.import_now()
    client = app.test_client()
    sign_in(client, consultant.email, CONSULTANT_PASSWORD)
    assert "My CV" not in client.get("/warnings").get_data(as_text=True)
    assert "My CV" in client.get("/warnings?kind=intake").get_data(as_text=True)
    assert [w["kind"] for w in consultant.warnings()] == ["intake"]


def test_create_candidate_also_brings_the_persons_mail_that_was_not_held(app, consultant, crm):
    from tests.web.test_rules import _run_worker

    consultant.deliver("INBOX", _application(consultant, subject="My CV"))
    consultant.deliver("INBOX", build_message(from_="Sam Stranger <sam@applicants.example>", to=consultant.email,
                                              subject="Did you get my CV?"))
    summary = consultant.import_now()
    assert summary["skipped"] == 1  # the follow-up has no CV: no_match skips it
    client = app.test_client()
    sign_in(client, consultant.email, CONSULTANT_PASSWORD)
    item = db.session.scalar(select(ImportWarning).where(ImportWarning.kind == "intake"))
    response = client.post(f"/new-people/{item.id}/create", data={"name": "Sam Stranger",
                                                                   "email": "sam@applicants.example"},
                           follow_redirects=True)
    assert "Sam Stranger is now a candidate, with 1 message." in response.get_data(as_text=True)
    worker = _run_worker(app)
    assert worker.returncode == 0, worker.stderr[-3000:]
    notes = sorted(n["subject"] for n in consultant.notes() if n["record_email"] == "sam@applicants.example")
    assert notes == ["Did you get my CV?", "My CV"]
