"""Import past e-mails: a record's mail older than the first run's floor, found on the server and imported once."""
from __future__ import annotations

import json

from devkit.builders import build_message
from tests.conftest import load_crm


def _set_rules(consultant, tmp_path, **changes) -> None:
    rules = json.loads(consultant.cli("rules", "export").output)
    for section, values in changes.items():
        rules[section].update(values)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    result = consultant.cli("rules", "import", str(path))
    assert result.exit_code == 0, result.output


def _backfill(consultant, email: str, *extra: str) -> dict:
    result = consultant.cli("records", "backfill", email, "--user", consultant.email, *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _subjects(consultant, email: str) -> list[str]:
    return sorted(n["subject"] for n in consultant.notes() if n["record_email"] == email)


def test_backfill_finds_mail_older_than_the_first_run_floor_and_imports_it_once(app, consultant, crm, tmp_path):
    _set_rules(consultant, tmp_path, first_run={"inbox": 2, "sent": 2})
    cathy = "cathy@candidates.example"
    consultant.deliver("INBOX", build_message(from_=f"Cathy <{cathy}>", to=consultant.email,
                                              subject="Old: my availability", date="Mon, 01 Jan 2024 09:00:00 +0000"))
    consultant.deliver("Sent", build_message(from_=consultant.email, to="Someone <someone@else.example>",
                                             cc=cathy, subject="Old: the offer, Cathy in copy",
                                             date="Tue, 02 Jan 2024 09:00:00 +0000"))
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Older than the floor, not Cathy's",
                                              date="Wed, 03 Jan 2024 09:00:00 +0000"))
    for n in range(2):
        consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                                  subject=f"New {n}", date="Mon, 03 Jun 2024 10:00:00 +0000"))
        consultant.deliver("Sent", build_message(from_=consultant.email, to="carol@client.example",
                                                 subject=f"Sent {n}", date="Mon, 03 Jun 2024 10:00:00 +0000"))
    first = consultant.import_now()
    assert first["imported"] == 4
    assert _subjects(consultant, cathy) == []

    summary = _backfill(consultant, cathy)
    assert set(summary) >= {"folders", "imported", "skipped", "warnings", "failed"}
    assert summary["imported"] == 2
    assert _subjects(consultant, cathy) == ["Old: my availability", "Old: the offer, Cathy in copy"]
    # Pressed twice: nothing imported twice, and the ordinary import still has nothing new.
    again = _backfill(consultant, cathy)
    assert again["imported"] == 0 and again["folders"]["inbox"]["already_imported"] == 1
    assert consultant.import_now()["imported"] == 0
    assert _subjects(consultant, cathy) == ["Old: my availability", "Old: the offer, Cathy in copy"]
    assert "Older than the floor, not Cathy's" not in [n["subject"] for n in consultant.notes()]


def test_backfill_since_a_day_and_mail_skipped_before_the_record_existed(app, consultant, crm, tmp_path):
    lou = "lou@applicants.example"
    consultant.deliver("INBOX", build_message(from_=f"Lou <{lou}>", to=consultant.email, subject="January",
                                              date="Mon, 01 Jan 2024 09:00:00 +0000"))
    consultant.deliver("INBOX", build_message(from_=f"Lou <{lou}>", to=consultant.email, subject="May",
                                              date="Wed, 01 May 2024 09:00:00 +0000"))
    assert consultant.import_now()["skipped"] == 2  # nobody had the address yet (no_match: skip)
    load_crm(app, [("candidate", "Lou Later", lou, "")], tmp_path)
    assert _subjects(consultant, lou) == []

    # The search's SINCE is by the server's date of arrival, which is today for these test messages.
    summary = _backfill(consultant, lou, "--since", "2999-01-01")
    assert summary["imported"] == 0
    summary = _backfill(consultant, lou, "--since", "2024-01-01")
    assert summary["imported"] == 2
    assert _subjects(consultant, lou) == ["January", "May"]


def test_backfill_refuses_an_address_no_record_has(app, consultant, crm):
    result = consultant.cli("records", "backfill", "nobody@example.org", "--user", consultant.email)
    assert result.exit_code != 0
    assert "no contact or candidate has the address nobody@example.org" in result.output


def test_the_first_run_by_date_takes_what_arrived_since_that_day_and_preferences_say_so_before(
        app, consultant, crm, tmp_path):
    client = app.test_client()
    from tests.web.conftest import sign_in

    sign_in(client, consultant.email, "user-password-123")
    html = client.get("/preferences").get_data(as_text=True)
    assert "The first import will take Inbox: the newest 100 messages; Sent: the newest 100 messages." in html

    # Dovecot dates an appended message by its arrival, today; so "since" a future day takes nothing and a
    # past day takes everything, however many: more than the newest-N cap set next to it.
    _set_rules(consultant, tmp_path, first_run={"inbox": 1, "sent": 1, "inbox_since": "2024-03-01",
                                                "sent_since": "2999-01-01"})
    html = client.get("/preferences").get_data(as_text=True)
    assert ("The first import will take Inbox: every message since 1 March 2024; "
            "Sent: every message since 1 January 2999.") in html
    for n in range(3):
        consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                                  subject=f"Inbox {n}"))
    consultant.deliver("Sent", build_message(from_=consultant.email, to="carol@client.example", subject="Sent"))
    summary = consultant.import_now()
    assert summary["imported"] == 3
    assert sorted(n["subject"] for n in consultant.notes()) == ["Inbox 0", "Inbox 1", "Inbox 2"]
    assert "The first import will take" not in client.get("/preferences").get_data(as_text=True)
