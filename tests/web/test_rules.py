"""The Import rules pages: the editor's sections, custom rules, versions and the preview (flask test client)."""
from __future__ import annotations

import html as html_lib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from devkit.builders import build_message, minimal_pdf, tiny_png
from rolsync.extensions import db
from rolsync.models import RuleSetVersion
from rolsync.rules import default_rules
from rolsync.web.rules.forms import RulesForm

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------------


def form_data(definition: dict | None = None, **extra) -> dict:
    """What the browser posts for a rule set: the editor's field names, booleans as "y" or absent."""
    data = RulesForm.data_from(definition or default_rules())
    posted: dict = {}
    for name, value in data.items():
        if name == "custom_rules":
            for i, rule in enumerate(value):
                for key, item in rule.items():
                    if key == "conditions":
                        for j, condition in enumerate(item):
                            for ckey, cvalue in condition.items():
                                posted[f"custom_rules-{i}-conditions-{j}-{ckey}"] = cvalue
                    elif isinstance(item, bool):
                        if item:
                            posted[f"custom_rules-{i}-{key}"] = "y"
                    else:
                        posted[f"custom_rules-{i}-{key}"] = item
        elif isinstance(value, bool):
            if value:
                posted[name] = "y"
        else:
            posted[name] = str(value)
    posted.update({"preview_source": "upload", "preview_count": "10", "preview_direction": "received",
                   "base_version": ""})
    posted.update(extra)
    return {k: v for k, v in posted.items() if v is not None}


def export(app) -> dict:
    result = app.test_cli_runner().invoke(args=["rules", "export"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def version_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(RuleSetVersion))


def row_counts() -> dict[str, int]:
    db.session.rollback()
    return {table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables}


def save(client, definition=None, comment="a change", **extra):
    return client.post("/rules", data=form_data(definition, action="save", comment=comment, **extra))


def error_next_to(html: str, field_id: str) -> str:
    """The error text shown for the field with this id (the page puts it right after the field)."""
    found = re.search(rf'id="{re.escape(field_id)}-error"[^>]*>(.*?)</p>', html, re.S)
    assert found, f"no error next to {field_id}"
    return html_lib.unescape(re.sub(r"\s+", " ", found.group(1)).strip())


# -- access -------------------------------------------------------------------------------------


def test_a_user_is_refused_every_rules_page(user):
    for method, path in (("GET", "/rules"), ("POST", "/rules"), ("GET", "/rules/versions"),
                         ("POST", "/rules/versions/1/roll-back"),
                         ("GET", "/rules/preview/rules-preview-" + "0" * 32 + ".json")):
        assert user.client.open(path, method=method, data=form_data(action="save")).status_code == 403, path
    assert version_count() == 0


def test_the_editor_shows_the_rules_in_use(admin):
    html = admin.client.get("/rules").get_data(as_text=True)
    assert "In use: the default rules" in html
    for heading in ("Mail between colleagues", "Images", "An address on more than one record",
                    "Mail from unknown addresses", "First import of a mailbox", "Attachments",
                    "Auto-replies and bulk mail", "Blocked addresses", "Custom rules", "Preview", "Save"):
        assert f"<h2>{heading}</h2>" in html
    assert re.search(r'<input checked[^>]*name="images_mode"[^>]*value="exclude_all"', html)
    assert re.search(r'name="first_run_inbox"[^>]*value="100"', html)


# -- each built-in section ------------------------------------------------------------------------


SECTIONS = {
    "own_domain": ({"own_domain_enabled": None, "own_domain_source": "list",
                    "own_domain_domains": "Acme.com\nacme-group.com"},
                   {"enabled": False, "source": "list", "domains": ["acme-group.com", "acme.com"]}),
    "images": ({"images_mode": "exclude_inline", "images_min_size": "2"},
               {"mode": "exclude_inline", "min_size": 2048}),
    "duplicate_address": ({"duplicate_action": "attach_latest"}, {"action": "attach_latest"}),
    "no_match": ({"no_match_action": "keep"}, {"action": "keep"}),
    "first_run": ({"first_run_inbox": "20", "first_run_sent": "35", "first_run_sent_since": "2024-03-01"},
                  {"inbox": 20, "sent": 35, "inbox_since": None, "sent_since": "2024-03-01"}),
    "attachments": ({"attachments_max_size": "1.5", "attachments_blocked_extensions": "exe, .ICS"},
                    {"max_size": 1572864, "blocked_extensions": [".exe", ".ics"]}),
    "automatic_mail": ({"automatic_mail_skip": None}, {"skip": False}),
    "blocked": ({"blocked_addresses": "spam@jobs.example\n@Bulk.example"},
                {"addresses": ["@bulk.example", "spam@jobs.example"]}),
    "intake": ({"intake_enabled": None, "intake_extensions": "pdf, .DOCX", "intake_relays": None},
               {"enabled": False, "extensions": [".docx", ".pdf"], "relays": False}),
}


@pytest.mark.parametrize("section", list(SECTIONS))
def test_each_section_saves_a_version_that_the_export_shows(app, admin, section):
    posted, expected = SECTIONS[section]
    response = save(admin.client, comment=f"change {section}", **posted)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert response.location.endswith("/rules/versions#messages")

    exported = export(app)
    assert exported[section] == expected
    untouched = {k: v for k, v in default_rules().items() if k != section}
    assert {k: v for k, v in exported.items() if k != section} == untouched
    version = db.session.scalar(select(RuleSetVersion))
    assert (version.version, version.author, version.comment, version.active) == (
        1, admin.email, f"change {section}", True)
    # The editor now shows what was saved.
    html = admin.client.get("/rules").get_data(as_text=True)
    assert "In use: <strong>version 1</strong>" in html


@pytest.mark.parametrize("posted, field_id, message", [
    ({"first_run_inbox": "-5"}, "first_run_inbox", "Must be a whole number of 0 or more, got -5."),
    ({"first_run_sent": "lots"}, "first_run_sent", "Must be a whole number of 0 or more, got 'lots'."),
    ({"images_min_size": "lots"}, "images_min_size", "Enter a size in KB of 0 or more"),
    ({"attachments_blocked_extensions": ".exe, .not an extension!"}, "attachments_blocked_extensions",
     "is not a file extension"),
    ({"blocked_addresses": "jo@agency.example\nnot-an-address"}, "blocked_addresses",
     "'not-an-address' is not an e-mail address or @domain."),
    ({"own_domain_source": "list", "own_domain_domains": ""}, "own_domain_domains",
     "The source 'list' needs at least one domain."),
    ({"own_domain_domains": "under_score.example"}, "own_domain_domains", "is not a domain name"),
])
def test_bad_values_are_refused_next_to_their_field_and_nothing_is_saved(app, admin, posted, field_id, message):
    response = save(admin.client, **posted)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in error_next_to(html, field_id)
    assert version_count() == 0
    assert export(app) == default_rules()
    # What was typed stays in the form, to be corrected.
    for value in posted.values():
        assert value.split("\n")[0] in html


def test_saving_needs_a_comment(admin):
    response = save(admin.client, comment="  ", images_mode="keep")
    assert response.status_code == 422
    assert "Say in a few words what changed" in error_next_to(response.get_data(as_text=True), "comment")
    assert version_count() == 0


def test_saving_the_same_rules_makes_no_version(admin):
    response = save(admin.client)
    assert response.status_code == 302
    assert "Nothing changed" in admin.client.get(response.location).get_data(as_text=True)
    assert version_count() == 0


def test_a_version_saved_meanwhile_is_not_overwritten_blindly(app, admin):
    assert save(admin.client, images_mode="keep").status_code == 302  # version 1, by "someone else"
    response = save(admin.client, no_match_action="warn", base_version="")  # the page was opened before that
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "saved version 1 after you opened this page" in html
    assert version_count() == 1
    # The page now knows about version 1: saving again is a decision, and is done.
    assert re.search(r'name="base_version" type="hidden" value="1"', html)
    assert save(admin.client, no_match_action="warn", base_version="1").status_code == 302
    assert export(app)["no_match"]["action"] == "warn" and export(app)["images"]["mode"] == "exclude_all"


# -- custom rules ------------------------------------------------------------------------------------


CUSTOM = {
    "name": "Invoices go to accounts",
    "enabled": True,
    "match": "any",
    "conditions": [
        {"field": "header", "header": "X-Mailer", "op": "contains", "value": "billing"},
        {"field": "from", "op": "in_list", "value": ["invoices@supplier.example", "billing@supplier.example"]},
        {"field": "subject", "op": "regex", "value": r"^invoice\s+\d+"},
    ],
    "action": "send_to_record",
    "record": {"kind": "contact", "email": "accounts@client.example"},
}
DROP_BIG = {"name": "No huge files", "enabled": False, "match": "all",
            "conditions": [{"field": "attachment_size", "op": "greater_than", "value": 5000000}],
            "action": "drop_attachment"}


def test_custom_rules_are_added_edited_and_round_trip(app, admin):
    # Add a rule: the same draft comes back with one blank rule of one condition; nothing is saved.
    response = admin.client.post("/rules", data=form_data(action="add_rule", images_mode="keep"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="custom_rules-0-name"' in html and 'name="custom_rules-0-conditions-0-value"' in html
    assert 'name="custom_rules-1-name"' not in html
    assert re.search(r'<input checked[^>]*name="images_mode"[^>]*value="keep"', html)
    assert version_count() == 0

    definition = default_rules()
    definition["custom_rules"] = [CUSTOM, DROP_BIG]
    posted = form_data(definition)
    posted["custom_rules-0-conditions-1-value"] = "Invoices@Supplier.example\r\n\r\nbilling@supplier.example\r\n"
    response = admin.client.post("/rules", data={**posted, "action": "save", "comment": "two custom rules"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    exported = export(app)["custom_rules"]
    assert [r["name"] for r in exported] == ["Invoices go to accounts", "No huge files"]
    assert exported[0]["conditions"] == [
        {"field": "header", "header": "x-mailer", "op": "contains", "value": "billing"},
        {"field": "from", "op": "in_list", "value": ["invoices@supplier.example", "billing@supplier.example"]},
        {"field": "subject", "op": "regex", "value": r"^invoice\s+\d+"},
    ]
    assert exported[0]["record"] == {"kind": "contact", "email": "accounts@client.example"}
    assert exported[1]["enabled"] is False and exported[1]["conditions"][0]["value"] == 5000000

    # The editor shows them back; saving unchanged changes nothing.
    html = admin.client.get("/rules").get_data(as_text=True)
    assert "Rule 1: Invoices go to accounts" in html and "Rule 2: No huge files" in html
    assert "invoices@supplier.example\nbilling@supplier.example" in html
    again = admin.client.post("/rules", data={**form_data(export(app)), "action": "save", "comment": "same",
                                             "base_version": "1"})
    assert again.status_code == 302 and version_count() == 1

    # Move the second rule up, add a condition to it, remove the first condition of the other: a post-back each.
    current = form_data(export(app), base_version="1")
    html = admin.client.post("/rules", data={**current, "action": "up:1"}).get_data(as_text=True)
    assert html.index("Rule 1: No huge files") < html.index("Rule 2: Invoices go to accounts")
    posted = form_data({**default_rules(), "custom_rules": [DROP_BIG, CUSTOM]}, base_version="1")
    html = admin.client.post("/rules", data={**posted, "action": "add_condition:0"}).get_data(as_text=True)
    assert 'name="custom_rules-0-conditions-1-value"' in html
    html = admin.client.post("/rules", data={**posted, "action": "remove_condition:1:0"}).get_data(as_text=True)
    assert 'name="custom_rules-1-conditions-2-value"' not in html and 'value="X-Mailer"' not in html
    response = admin.client.post("/rules", data={**posted, "action": "save", "comment": "reorder"})
    assert response.status_code == 302
    assert [r["name"] for r in export(app)["custom_rules"]] == ["No huge files", "Invoices go to accounts"]

    # Remove one and save.
    posted = form_data(export(app), base_version="2")
    html = admin.client.post("/rules", data={**posted, "action": "remove:0"}).get_data(as_text=True)
    assert "No huge files" not in html and "Rule 1: Invoices go to accounts" in html
    assert version_count() == 2


def test_a_catastrophic_regex_is_refused_next_to_its_value(app, admin):
    definition = default_rules()
    definition["custom_rules"] = [{**CUSTOM, "conditions": [
        {"field": "subject", "op": "contains", "value": "cv"},
        {"field": "body", "op": "regex", "value": "(a+)+$"}]}]
    response = save(admin.client, definition)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "The regular expression nests repetitions" in error_next_to(html, "custom_rules-0-conditions-1-value")
    assert version_count() == 0
    assert export(app)["custom_rules"] == []


@pytest.mark.parametrize("change, field_id, message", [
    ({"custom_rules-0-name": ""}, "custom_rules-0-name", "Give the rule a name"),
    ({"custom_rules-0-record_email": "not an address"}, "custom_rules-0-record_email", "Name the record"),
    ({"custom_rules-0-conditions-0-header": ""}, "custom_rules-0-conditions-0-header", "Name the header"),
    ({"custom_rules-0-conditions-1-value": ""}, "custom_rules-0-conditions-1-value", "In_list needs a list"),
    ({"custom_rules-0-conditions-2-value": "[unclosed"}, "custom_rules-0-conditions-2-value",
     "The regular expression is not valid"),
    ({"custom_rules-0-conditions-0-field": "attachment_size", "custom_rules-0-conditions-0-value": "big"},
     "custom_rules-0-conditions-0-value", "Enter a size in MB of 0 or more"),
])
def test_custom_rule_mistakes_are_shown_next_to_their_field(admin, change, field_id, message):
    definition = {**default_rules(), "custom_rules": [CUSTOM]}
    response = admin.client.post("/rules", data={**form_data(definition), "action": "save", "comment": "x",
                                                 **change})
    assert response.status_code == 422
    assert message in error_next_to(response.get_data(as_text=True), field_id)
    assert version_count() == 0


# -- versions ------------------------------------------------------------------------------------------


def test_versions_list_their_changes_and_roll_back(app, admin):
    assert save(admin.client, comment="keep all images", images_mode="keep").status_code == 302
    assert save(admin.client, comment="warn on unknown", base_version="1", images_mode="keep",
                no_match_action="warn").status_code == 302

    html = admin.client.get("/rules/versions").get_data(as_text=True)
    assert html.index('id="v2"') < html.index('id="v1"')
    assert "“keep all images”" in html and "“warn on unknown”" in html and admin.email in html
    v2 = html[html.index('id="v2"'):html.index('id="v1"')]
    assert "No contact or candidate has the address: skip the message \u2192 raise a warning" in v2 and "Images:" not in v2 and "active" in v2
    assert "Roll back to this version" not in v2
    v1 = html[html.index('id="v1"'):]
    assert "Images: leave out every image \u2192 keep every image" in v1 and "Roll back to this version" in v1

    response = admin.client.post("/rules/versions/1/roll-back")
    assert response.status_code == 302 and response.location.endswith("/rules/versions")
    html = admin.client.get(response.location).get_data(as_text=True)
    assert "Rolled back: version 3 has the rules of version 1" in html
    v3 = html[html.index('id="v3"'):html.index('id="v2"')]
    assert "rolled back to version 1" in v3 and "No contact or candidate has the address: raise a warning \u2192 skip the message" in v3
    exported = export(app)
    assert exported["images"]["mode"] == "keep" and exported["no_match"]["action"] == "skip"
    assert db.session.scalar(select(RuleSetVersion).where(RuleSetVersion.active.is_(True))).version == 3
    assert admin.client.post("/rules/versions/99/roll-back").status_code == 404


# -- preview -------------------------------------------------------------------------------------------


def test_a_preview_of_uploaded_messages_shows_the_difference_and_writes_nothing(app, admin, crm):
    with_logo = build_message(from_="carol@client.example", to="jo@agency.example", subject="CV and logo",
                              text="x", attachments=[("cv.pdf", "application/pdf", minimal_pdf()),
                                                     ("logo.png", "image/png", tiny_png())])
    plain = build_message(from_="cathy@candidates.example", to="jo@agency.example", subject="Plain", text="x")
    before = row_counts()
    posted = form_data(images_mode="keep", action="preview")
    posted["preview_files"] = [(io.BytesIO(with_logo), "logo.eml"), (io.BytesIO(plain), "plain.eml"),
                               (io.BytesIO(b""), "empty.eml")]
    response = admin.client.post("/rules", data=posted, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:3000]

    assert row_counts() == before, "the preview wrote something"
    assert "Images: leave out every image \u2192 keep every image" in html
    assert "3 messages" in html and "1 would be handled differently" in html
    row = re.search(r'<tr class="is-changed">(.*?)</tr>', html, re.S).group(1)
    assert "CV and logo" in row and "Carol Client" in row
    active, draft = re.findall(r'<td data-label="(?:Rules in use|Draft)"[^>]*>(.*?)</td>', row, re.S)
    assert "leaves out logo.png" in active and "keeps cv.pdf</p>" in active
    assert "keeps cv.pdf, logo.png" in draft and 'class="diff">keeps' in draft
    assert "could not be read" in html
    # The draft is still in the form, unsaved.
    assert re.search(r'<input checked[^>]*name="images_mode"[^>]*value="keep"', html)
    assert version_count() == 0


def test_a_preview_without_files_or_mailbox_says_what_is_missing(admin):
    response = admin.client.post("/rules", data=form_data(action="preview"))
    assert response.status_code == 422
    assert "Choose one or more .eml files" in error_next_to(response.get_data(as_text=True), "preview_files")
    response = admin.client.post("/rules", data=form_data(action="preview", preview_source="mailbox"))
    assert "Choose the mailbox" in error_next_to(response.get_data(as_text=True), "preview_account")


def test_a_preview_with_an_invalid_draft_shows_the_errors_instead(admin):
    posted = form_data(action="preview", first_run_inbox="-1")
    posted["preview_files"] = [(io.BytesIO(build_message(subject="x")), "a.eml")]
    response = admin.client.post("/rules", data=posted, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Must be a whole number" in error_next_to(response.get_data(as_text=True), "first_run_inbox")


def _run_worker(app) -> subprocess.CompletedProcess:
    env = {**os.environ, **app.config["TEST_ENV"]}
    return subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_a_mailbox_preview_runs_on_a_worker_and_the_page_polls_it(app, admin, consultant, crm):
    from rolsync.models import MailAccount

    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Logo inside", text="x",
                                              attachments=[("logo.png", "image/png", tiny_png())]))
    account_id = db.session.scalar(select(MailAccount.id))
    before = row_counts()
    response = admin.client.post("/rules", data=form_data(action="preview", images_mode="keep",
                                                          preview_source="mailbox", preview_account=str(account_id),
                                                          preview_count="5"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:3000]
    assert "Waiting for a worker to read the mailbox" in html and "Refresh preview" in html
    job_id = re.search(r'name="preview_job" type="hidden" value="([^"]+)"', html).group(1)
    status_url = f"/rules/preview/{job_id}.json"
    assert admin.client.get(status_url).get_json()["state"] == "queued"

    worker = _run_worker(app)
    assert worker.returncode == 0, worker.stderr[-3000:]

    state = admin.client.get(status_url).get_json()
    assert state["state"] == "finished" and state["active"] is False
    assert "Logo inside" in state["html"] and "is-changed" in state["html"] and "keeps logo.png" in state["html"]
    # Without JavaScript: Refresh preview posts the draft back and shows the same table.
    html = admin.client.post("/rules", data=form_data(action="refresh_preview", images_mode="keep",
                                                      preview_job=job_id)).get_data(as_text=True)
    assert "Logo inside" in html and "1 would be handled differently" in html
    assert row_counts() == before
    assert admin.client.get("/rules/preview/not-a-job.json").status_code == 404
