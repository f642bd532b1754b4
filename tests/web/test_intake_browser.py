"""New people in real headless Chromium: an application lands there, becomes a candidate, or is set aside."""
from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from devkit.builders import build_message, minimal_pdf
from tests.conftest import load_crm, make_consultant
from tests.web.conftest import add_user
from tests.web.test_browser import CONSULTANT_PASSWORD, CRM, sign_in


def _new_people(page):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name="New people")


def test_the_whole_new_people_flow(page, live_server, dovecot, tmp_path):
    app = live_server.app
    consultant = make_consultant(app, dovecot, tmp_path)
    load_crm(app, CRM, tmp_path)
    cv = minimal_pdf("Nina Newcomer, chemist")
    consultant.deliver("INBOX", build_message(
        from_="Nina Newcomer <nina@applicants.example>", to=consultant.email, subject="Application: chemist",
        text="Please find my CV attached.", attachments=[("Nina_CV.pdf", "application/pdf", cv)]))
    consultant.deliver("INBOX", build_message(
        from_="Jobs Board <noreply@jobs.example>", reply_to="Rob Relayed <rob@applicants.example>",
        to=consultant.email, subject="New application via Jobs Board", text="Rob applied."))
    consultant.deliver("INBOX", build_message(
        from_="Spam Sender <offers@spam.example>", to=consultant.email, subject="Cheap printers",
        attachments=[("catalogue.pdf", "application/pdf", minimal_pdf("Printers"))]))
    consultant.deliver("INBOX", build_message(
        from_="Carla <carla.home@private.example>", to=consultant.email, subject="My updated CV",
        attachments=[("Carla_CV.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                      b"PK\x03\x04 not really a docx")]))
    consultant.import_now()

    sign_in(page, consultant.email, CONSULTANT_PASSWORD)
    expect(_new_people(page)).to_contain_text("4")
    _new_people(page).click()
    expect(page.get_by_role("heading", name="New people")).to_be_visible()

    # The relayed application is the applicant's, not the board's.
    rob = page.get_by_role("row").filter(has_text="New application via Jobs Board")
    expect(rob).to_contain_text("Rob Relayed")
    expect(rob).to_contain_text("rob@applicants.example")
    expect(rob).to_contain_text("Passed on by noreply@jobs.example")

    # The CV opens from the list.
    nina = page.get_by_role("row").filter(has_text="Application: chemist")
    with page.expect_download() as download_info:
        nina.get_by_role("link", name="Nina_CV.pdf").click()
    assert Path(download_info.value.path()).read_bytes() == cv

    # Create candidate, with the name corrected: the application is on the new record.
    nina.get_by_text("Create candidate").click()
    nina.get_by_label("Name", exact=True).fill("Nina Newcomer-Smith")
    nina.get_by_role("button", name="Create the candidate").click()
    expect(page.get_by_text("Nina Newcomer-Smith is now a candidate, with 1 message. Older mail with the address is being looked for in the mailbox.")).to_be_visible()
    expect(page.get_by_role("heading", name="Application: chemist")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Nina_CV.pdf").click()
    assert Path(download_info.value.path()).read_bytes() == cv
    expect(_new_people(page)).to_contain_text("3")

    # Attach to an existing record: search by name, attach; the address joins Pat Pair.
    _new_people(page).click()
    carla = page.get_by_role("row").filter(has_text="My updated CV")
    carla.get_by_text("Attach to an existing record").click()
    carla.get_by_label("Name or e-mail").fill("Pat")
    carla.get_by_role("button", name="Search").click()
    carla = page.get_by_role("row").filter(has_text="My updated CV")
    carla.get_by_role("button", name="Attach to Pat Pair").click()
    expect(page.get_by_text("carla.home@private.example was added to Pat Pair, with 1 message.")).to_be_visible()

    # Not a candidate, in bulk: the sender is blocked, and the admin sees it in the rules.
    page.get_by_role("row").filter(has_text="Cheap printers").get_by_role("checkbox").check()
    page.get_by_text("Several at once").click()
    page.get_by_role("button", name="The ticked people are not candidates").click()
    expect(page.get_by_text("Mail from offers@spam.example will not be imported.")).to_be_visible()
    expect(page.get_by_text("Cheap printers")).to_have_count(0)
    expect(_new_people(page)).to_contain_text("1")

    # Create candidates in bulk for the rest.
    page.get_by_role("row").filter(has_text="New application via Jobs Board").get_by_role("checkbox").check()
    page.get_by_text("Several at once").click()
    page.get_by_role("button", name="Create candidates of the ticked people").click()
    expect(page.get_by_text("1 candidate created, with 1 message.")).to_be_visible()
    expect(_new_people(page)).to_contain_text("0")

    rules = json.loads(consultant.cli("rules", "export").output)
    assert rules["blocked"]["addresses"] == ["offers@spam.example"]
    admin = add_user(app, admin=True, password="panel-password-1")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("panel-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import rules").click()
    expect(page.get_by_label("Never import mail from or to")).to_have_value("offers@spam.example")
    notes = {n["subject"]: n["record_email"] for n in consultant.notes()}
    assert notes == {"Application: chemist": "nina@applicants.example",
                     "My updated CV": "pair@candidates.example",
                     "New application via Jobs Board": "rob@applicants.example"}
