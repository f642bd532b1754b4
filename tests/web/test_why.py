"""'Why wasn't this e-mail imported?' against the real Dovecot: every case produced for real, on both databases."""
from __future__ import annotations

import re

import pytest

from tests.mail.builders import build_message
from tests.test_importer import _set_rules
from tests.web.conftest import sign_in


@pytest.fixture
def mailbox(consultant, crm, tmp_path, app):
    """A consultant whose mailbox has one message of each case, signed in to the panel."""
    me = consultant.email
    _set_rules(consultant, tmp_path, first_run={"inbox": 2, "sent": 100})
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=me, subject="Ancient offer"))
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=me, subject="Recent offer"))
    consultant.deliver("INBOX", build_message(from_="stranger@nowhere.example", to=me, subject="Cold pitch",
                                              message_id="<pitch-1@nowhere.example>"))
    consultant.deliver("Archive", build_message(from_="carol@client.example", to=me, subject="Filed away"))
    uid = consultant.deliver("Sent", build_message(from_=me, to="carol@client.example", subject="Regrets"))
    with consultant.dovecot.client(consultant.username, consultant.password) as imap:
        imap.select_folder("Sent")
        imap.delete_messages([uid])
        imap.expunge()  # deleted before rolsync ever read it
    consultant.import_now()
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=me, subject="Just arrived"))
    client = app.test_client()
    sign_in(client, consultant.email, "user-password-123")
    consultant.client = client
    return consultant


def _why(client, query: str, **args) -> str:
    response = client.get("/history/why", query_string={"q": query, **args})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def _cases(html: str) -> list[str]:
    return re.findall(r'data-why-case="([a-z_]+)"', html)


def test_a_skipped_message_shows_its_outcome_rule_and_version(mailbox):
    for query in ("stranger@nowhere.example", "Cold pitch", "<pitch-1@nowhere.example>"):
        html = _why(mailbox.client, query)
        assert "Skipped: no contact or candidate has the address" in html, query
        assert "version 1" in html
        assert "data-why-server" not in html, "the ledger answered: the server is not asked"


def test_each_case_on_the_server_is_named(mailbox):
    html = _why(mailbox.client, "Ancient offer")
    assert _cases(html) == ["before_first_run"]
    assert "older than the mail the first import took" in html
    html = _why(mailbox.client, "Filed away")
    assert _cases(html) == ["other_folder"] and "in Archive" in html
    html = _why(mailbox.client, "Just arrived")
    assert _cases(html) == ["after_last_poll"]
    html = _why(mailbox.client, "Regrets")
    assert _cases(html) == ["not_on_server"] and "deleted" in html
    assert "Import this message" not in html


def test_import_this_message_imports_it_once_when_pressed_twice(mailbox):
    html = _why(mailbox.client, "Filed away")
    form = {name: value for name, value in re.findall(r'name="(folder|uidvalidity|uid|q)" value="([^"]*)"', html)}
    first = mailbox.client.post("/history/why/import", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Filed away”: imported" in first
    second = mailbox.client.post("/history/why/import", data=form, follow_redirects=True).get_data(as_text=True)
    assert "imported already; nothing was added twice" in second
    assert [n["subject"] for n in mailbox.notes()].count("Filed away") == 1
    html = _why(mailbox.client, "Filed away")
    assert "Imported: matched a record" in html and "Carol Client" in html


def test_a_bad_search_is_refused_in_words(mailbox):
    response = mailbox.client.get("/history/why", query_string={"q": "x" * 400})
    assert response.status_code == 422
    assert "at most 300 characters" in response.get_data(as_text=True)


def test_a_message_id_without_brackets_is_found_on_the_server(mailbox):
    mailbox.deliver("Archive", build_message(from_="carol@client.example", to=mailbox.email,
                                             subject="Filed by id", message_id="<filed-7@client.example>"))
    html = _why(mailbox.client, "filed-7@client.example")
    assert _cases(html) == ["other_folder"] and "Filed by id" in html
