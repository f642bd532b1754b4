"""The Import rules pages in real headless Chromium, against a live server with CSRF on."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from devkit.builders import build_message, minimal_pdf, tiny_png
from tests.conftest import load_crm
from tests.web.conftest import add_user
from tests.web.test_browser import sign_in

PASSWORD = "panel-password-1"
SCREENSHOTS = os.environ.get("ROLSYNC_SCREENSHOTS")  # set to docs/screenshots to refresh the README's picture


def _export(app) -> dict:
    result = app.test_cli_runner().invoke(args=["rules", "export"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_an_admin_changes_the_image_rule_previews_it_and_saves(page, live_server, tmp_path):
    app = live_server.app
    load_crm(app, [("contact", "Carol Client", "carol@client.example", "Client Ltd"),
                   ("candidate", "Cathy Candidate", "cathy@candidates.example", "")], tmp_path)
    with_logo = tmp_path / "cv-and-logo.eml"
    with_logo.write_bytes(build_message(
        from_="Carol <carol@client.example>", to="ada@agency.example", subject="CV for the Java role", text="See CV",
        attachments=[("cv.pdf", "application/pdf", minimal_pdf()), ("logo.png", "image/png", tiny_png())]))
    plain = tmp_path / "plain.eml"
    plain.write_bytes(build_message(from_="cathy@candidates.example", to="ada@agency.example",
                                    subject="Thanks for the call", text="Talk soon"))
    admin = add_user(app, admin=True, password=PASSWORD, name="Ada Admin")

    sign_in(page, admin.email, PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import rules").click()
    expect(page.get_by_role("heading", name="Import rules", exact=True)).to_be_visible()
    expect(page.get_by_text("In use: the default rules")).to_be_visible()
    expect(page.get_by_label("Leave out every image")).to_be_checked()

    page.get_by_label("Keep every image").check()
    page.get_by_label("Upload .eml files").set_input_files([str(with_logo), str(plain)])
    page.get_by_role("button", name="Preview", exact=True).click()

    result = page.locator("#preview-result")
    expect(result.get_by_text("Images: leave out every image → keep every image")).to_be_visible()
    expect(result.get_by_text("1 would be handled differently by the draft")).to_be_visible()
    changed = result.locator("tr.is-changed")
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("CV for the Java role")
    expect(changed.locator("td[data-label='Rules in use']")).to_contain_text("leaves out logo.png")
    expect(changed.locator("td[data-label='Draft'] .diff")).to_contain_text("keeps cv.pdf, logo.png")
    expect(result.get_by_role("row").filter(has_text="Thanks for the call")).not_to_have_class(re.compile("is-changed"))
    # The draft survives the preview, and nothing was saved.
    expect(page.get_by_label("Keep every image")).to_be_checked()
    assert _export(app)["images"]["mode"] == "exclude_all"
    if SCREENSHOTS:
        page.set_viewport_size({"width": 1280, "height": 1010})
        page.locator("#preview").evaluate("el => el.scrollIntoView({block: 'start'})")
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / "rules.png"))

    page.get_by_label("What changed, in a few words").fill("Keep images: clients send CVs as scans")
    page.get_by_role("button", name="Save as a new version").click()

    expect(page.get_by_role("heading", name="Versions of the import rules")).to_be_visible()
    expect(page.get_by_text("Saved as version 1")).to_be_visible()
    version = page.locator("#v1")
    expect(version.get_by_role("heading", name="Version 1")).to_contain_text("active")
    expect(version).to_contain_text("“Keep images: clients send CVs as scans”")
    expect(version).to_contain_text(admin.email)
    expect(version.get_by_text("Images: leave out every image → keep every image")).to_be_visible()
    assert _export(app)["images"]["mode"] == "keep"

    # Back in the editor, the saved version is in use.
    page.get_by_role("link", name="Edit the rules").click()
    expect(page.get_by_text("In use: version 1")).to_be_visible()
    expect(page.get_by_label("Keep every image")).to_be_checked()


def test_a_user_is_refused_the_rules(page, live_server):
    user = add_user(live_server.app, password=PASSWORD)
    sign_in(page, user.email, PASSWORD)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Import rules")).to_have_count(0)
    response = page.goto("/rules")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert page.goto("/rules/versions").status == 403


def test_a_bad_regex_is_explained_next_to_its_field(page, live_server):
    app = live_server.app
    admin = add_user(app, admin=True, password=PASSWORD)
    sign_in(page, admin.email, PASSWORD)
    page.goto("/rules")
    page.get_by_role("button", name="+ Add a custom rule").click()

    rule = page.locator("#custom-rule-0")
    expect(rule.get_by_text("Rule 1")).to_be_visible()
    rule.get_by_label("Name", exact=True).fill("Spammy subjects")
    rule.get_by_label("Field").select_option(label="Subject")
    expect(rule.get_by_label("Header name")).to_be_hidden()  # only for "a header"
    rule.get_by_label("Comparison").select_option(label="matches the regular expression")
    rule.get_by_label("Value").fill("(a+)+$")
    rule.get_by_label("Then").select_option(label="Skip the message")
    expect(rule.get_by_label("Record's e-mail address")).to_be_hidden()
    page.get_by_label("What changed, in a few words").fill("Skip spam")
    page.get_by_role("button", name="Save as a new version").click()

    value = page.locator("#custom-rule-0").get_by_label("Value")
    expect(value).to_have_value("(a+)+$")
    expect(value).to_have_attribute("aria-invalid", "true")
    error = page.locator("#" + value.get_attribute("aria-describedby"))
    expect(error).to_contain_text("The regular expression nests repetitions, e.g. (a+)+, which can take for ever")
    # The error sits in the same field as the value box, right under it.
    assert page.locator(".condition-value .field-error").count() == 1
    assert _export(app)["custom_rules"] == []

    # Corrected, it saves.
    value.fill(r"\bfree money\b")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_text("Saved as version 1")).to_be_visible()
    assert _export(app)["custom_rules"][0]["conditions"][0]["value"] == r"\bfree money\b"


@pytest.mark.parametrize("width", [390, 1280])
def test_the_rules_pages_fit_a_phone_and_a_desktop(page, live_server, width):
    admin = add_user(live_server.app, admin=True, password=PASSWORD)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, admin.email, PASSWORD)
    page.goto("/rules")
    page.get_by_role("button", name="+ Add a custom rule").click()
    page.get_by_role("button", name="+ Add a condition").click()
    page.locator("#custom-rule-0").get_by_label("Name", exact=True).fill("A rule with a rather long name indeed")
    page.get_by_label("What changed, in a few words").fill("first")
    page.get_by_role("button", name="Save as a new version").click()  # refused: the conditions are empty
    expect(page.locator(".field-error").first).to_be_visible()
    for path in (None, "/rules/versions"):
        if path:
            page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path or '/rules'} overflows by {overflow}px at {width}px"
