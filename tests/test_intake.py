"""New people: applications from strangers become intake items; their actions import the held mail once."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from devkit.builders import build_message, minimal_pdf
from rolsync import intake
from rolsync.extensions import db
from rolsync.models import Candidate, ImportedMessage, ImportWarning, Role, User
from rolsync.resources import get as resources_of_app
from tests.conftest import load_crm

STRANGER = "Sam Stranger <sam@applicants.example>"


def _set_rules(consultant, tmp_path, **changes) -> None:
    rules = json.loads(consultant.cli("rules", "export").output)
    for section, values in changes.items():
        rules[section].update(values)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    result = consultant.cli("rules", "import", str(path))
    assert result.exit_code == 0, result.output


def _application(subject="Application: senior chemist", date="Mon, 03 Jun 2024 10:00:00 +0200", **kw) -> bytes:
    return build_message(from_=kw.pop("from_", STRANGER), to="consultant@acme-recruit.com", subject=subject,
                         date=date, attachments=[("Sam_Stranger_CV.pdf", "application/pdf", minimal_pdf())], **kw)


def _admin(app) -> User:
    user = db.session.scalar(select(User).where(User.role == Role.ADMIN.value))
    if user is None:
        user = User(email="admin@acme-recruit.com", name="Admin", role=Role.ADMIN.value)
        user.set_password("admin-password-123")
        db.session.add(user)
        db.session.flush()
    return user


def _intake(consultant) -> list[dict]:
    return [w for w in consultant.warnings() if w["kind"] == "intake"]


def test_an_application_from_a_stranger_lands_in_new_people_and_create_candidate_imports_it_and_held_mail_once(
        app, consultant, crm, tmp_path):
    _set_rules(consultant, tmp_path, no_match={"action": "keep"})
    consultant.deliver("INBOX", build_message(from_=STRANGER, subject="A question about the role",
                                              date="Fri, 31 May 2024 09:00:00 +0200"))
    consultant.deliver("INBOX", build_message(from_=STRANGER, subject="Is it remote?",
                                              date="Sat, 01 Jun 2024 09:00:00 +0200"))
    consultant.deliver("INBOX", _application())
    consultant.import_now()

    items = _intake(consultant)
    assert [(w["address"], w["subject"]) for w in items] == [("sam@applicants.example",
                                                             "Application: senior chemist")]
    assert consultant.notes() == []

    with app.app_context():
        admin = _admin(app)
        page = intake.open_items(db.session, admin)
        assert [intake.item_name(i) for i in page.items] == ["Sam Stranger"]
        assert [a["filename"] for a in intake.item_attachments(page.items[0])] == ["Sam_Stranger_CV.pdf"]
        assert intake.open_count(db.session, admin) == 1
        item = page.items[0]
        outcome = intake.create_candidate(db.session, resources_of_app().documents, item, name="Sam Stranger",
                                          email="sam@applicants.example", actor=admin.email)
        db.session.commit()
        assert outcome.notes_created == 3
        candidate = db.session.scalar(select(Candidate).where(Candidate.name == "Sam Stranger"))
        assert [e.address for e in candidate.emails] == ["sam@applicants.example"]
        again = db.session.get(ImportWarning, item.id)
        with pytest.raises(intake.IntakeError, match="already been dealt with"):
            intake.create_candidate(db.session, resources_of_app().documents, again, name="Sam Stranger",
                                    email="sam@applicants.example", actor=admin.email)
        db.session.rollback()
        outcomes = {m.subject: (m.outcome, m.reason) for m in db.session.scalars(select(ImportedMessage))}
        assert intake.open_count(db.session, admin) == 0

    notes = [n for n in consultant.notes() if n["record_email"] == "sam@applicants.example"]
    assert sorted(n["subject"] for n in notes) == ["A question about the role", "Application: senior chemist",
                                                   "Is it remote?"]
    assert outcomes["Application: senior chemist"] == ("imported", "linked")
    # Imported once: the next import run and a reload of the CRM add nothing.
    consultant.import_now()
    load_crm(app, [("candidate", "Sam Stranger", "sam@applicants.example", "")], tmp_path)
    assert len([n for n in consultant.notes() if n["record_email"] == "sam@applicants.example"]) == 3


def test_a_job_board_relay_makes_an_item_for_the_applicant_not_the_board(app, consultant, crm):
    consultant.deliver("INBOX", build_message(
        from_="Jobs Board <noreply@jobs.example>", reply_to="Rita Relay <rita@applicants.example>",
        to="consultant@acme-recruit.com", subject="New application: Rita Relay", text="Rita applied."))
    consultant.import_now()

    items = _intake(consultant)
    assert [w["address"] for w in items] == ["rita@applicants.example"]
    with app.app_context():
        item = intake.open_items(db.session, _admin(app)).items[0]
        assert intake.item_name(item) == "Rita Relay"


def test_not_a_candidate_stops_the_senders_next_mail_until_the_admin_undoes_it(app, consultant, crm, tmp_path):
    consultant.deliver("INBOX", _application(subject="My CV"))
    consultant.import_now()
    with app.app_context():
        admin = _admin(app)
        item = intake.open_items(db.session, admin).items[0]
        closed, blocked = intake.not_a_candidate(db.session, admin, [item.id], actor=admin.email)
        db.session.commit()
    assert (closed, blocked) == (1, ["sam@applicants.example"])
    rules = json.loads(consultant.cli("rules", "export").output)
    assert rules["blocked"]["addresses"] == ["sam@applicants.example"]

    consultant.deliver("INBOX", _application(subject="My CV, again"))
    consultant.import_now()
    assert [w["subject"] for w in _intake(consultant) if w["status"] == "open"] == []

    _set_rules(consultant, tmp_path, blocked={"addresses": []})
    consultant.deliver("INBOX", _application(subject="My CV, a third time"))
    consultant.import_now()
    assert [w["subject"] for w in _intake(consultant) if w["status"] == "open"] == ["My CV, a third time"]


def test_attach_to_an_existing_record_adds_the_address_and_imports_the_held_application(app, consultant, crm):
    consultant.deliver("INBOX", _application(from_="Cathy C <cathy.private@home.example>", subject="My new CV"))
    consultant.import_now()
    with app.app_context():
        admin = _admin(app)
        item = intake.open_items(db.session, admin).items[0]
        [choice] = intake.find_existing(db.session, "Cathy")
        outcome = intake.attach_to_record(db.session, resources_of_app().documents, item, kind=choice.kind,
                                          record_id=choice.id, actor=admin.email)
        db.session.commit()
    assert outcome.notes_created == 1
    notes = [n for n in consultant.notes() if n["record_email"] == "cathy@candidates.example"]
    assert [n["subject"] for n in notes] == ["My new CV"]


def test_a_record_loaded_by_csv_pulls_its_held_mail_in(app, consultant, crm, tmp_path):
    consultant.deliver("INBOX", _application(from_="Lou Later <lou@applicants.example>", subject="CV attached"))
    consultant.import_now()
    assert consultant.notes() == []
    load_crm(app, [("candidate", "Lou Later", "lou@applicants.example", "")], tmp_path)
    assert [n["subject"] for n in consultant.notes() if n["record_email"] == "lou@applicants.example"] == ["CV attached"]


def test_new_people_shows_one_row_per_sender_and_one_action_takes_all_their_applications(app, consultant, crm):
    consultant.deliver("INBOX", _application(subject="First try", date="Mon, 03 Jun 2024 10:00:00 +0200"))
    consultant.deliver("INBOX", _application(subject="Second try", date="Tue, 04 Jun 2024 10:00:00 +0200"))
    consultant.import_now()
    assert len(_intake(consultant)) == 2
    with app.app_context():
        admin = _admin(app)
        page = intake.open_items(db.session, admin)
        assert [i.subject for i in page.items] == ["Second try"]
        assert intake.open_count(db.session, admin) == 1
        assert intake.messages_from(db.session, admin, page.items) == {"sam@applicants.example": 2}
        outcome = intake.create_candidate(db.session, resources_of_app().documents, page.items[0], name="Sam Stranger",
                                          email="sam@applicants.example", actor=admin.email)
        db.session.commit()
    assert (outcome.notes_created, outcome.items_closed) == (2, 2)
    assert {w["status"] for w in _intake(consultant)} == {"resolved"}


def test_create_candidate_refuses_an_address_a_record_has_and_points_to_attach(app, consultant, crm):
    consultant.deliver("INBOX", _application())
    consultant.import_now()
    with app.app_context():
        admin = _admin(app)
        item = intake.open_items(db.session, admin).items[0]
        with pytest.raises(intake.IntakeError) as refused:
            intake.create_candidate(db.session, resources_of_app().documents, item, name="Sam",
                                    email="cathy@candidates.example", actor=admin.email)
        assert str(refused.value) == ("Cathy Candidate already has the address cathy@candidates.example: use Attach "
                                      "to an existing record instead.")
