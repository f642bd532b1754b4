"""`flask mail reconcile` against the real Dovecot: the counts add up to the server's, on SQLite and PostgreSQL."""
from __future__ import annotations

import json

from sqlalchemy import delete, select

from rolsync import notes
from rolsync.extensions import db
from rolsync.models import FolderState, ImportedMessage
from tests.mail.builders import build_message
from tests.test_importer import _set_rules

BUCKETS = ("imported", "warned", "failed", "before_first_run", "not_read_yet", "unaccounted")


def _reconcile(consultant) -> dict:
    result = consultant.cli("mail", "reconcile", consultant.email)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _adds_up(counts: dict) -> bool:
    return sum(counts[b] for b in BUCKETS) + sum(counts["skipped"].values()) == counts["messages"]


def _mailbox(consultant) -> None:
    """Two messages older than the first run's cap, then one of each outcome, and a copy in Sent."""
    me = consultant.email
    for subject in ("Old one", "Old two"):
        consultant.deliver("INBOX", build_message(from_="carol@client.example", to=me, subject=subject))
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=me, subject="Imported",
                                              message_id="<imported@client.example>"))
    consultant.deliver("INBOX", build_message(from_="stranger@nowhere.example", to=me, subject="Stranger"))
    consultant.deliver("INBOX", build_message(from_="shared@client.example", to=me, subject="Shared address"))
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=me, subject="Poison"))
    consultant.deliver("Sent", build_message(from_=me, to="carol@client.example", subject="Sent to Carol"))
    # The same message (same Message-ID) in Sent as well: imported once, the copy accounted for.
    consultant.deliver("Sent", build_message(from_="carol@client.example", to=me, subject="Imported",
                                             message_id="<imported@client.example>"))


def test_every_message_on_the_server_is_accounted_for(consultant, crm, tmp_path, monkeypatch):
    _set_rules(consultant, tmp_path, first_run={"inbox": 4, "sent": 100})
    _mailbox(consultant)
    add = notes.NoteWriter.add

    def add_or_fail(self, parsed, **kwargs):
        if parsed.subject == "Poison":
            raise ValueError("cannot save this one")
        return add(self, parsed, **kwargs)

    monkeypatch.setattr(notes.NoteWriter, "add", add_or_fail)
    consultant.import_now()

    report = _reconcile(consultant)
    inbox, sent = report["folders"]["inbox"], report["folders"]["sent"]
    assert inbox["name"] == "INBOX"
    assert (inbox["messages"], inbox["uidnext"]) == (6, 7)
    assert (inbox["imported"], inbox["warned"], inbox["failed"], inbox["before_first_run"]) == (1, 1, 1, 2)
    assert inbox["skipped"] == {"no_match": 1}
    assert (inbox["not_read_yet"], inbox["unaccounted"]) == (0, 0)
    assert sent["messages"] == 2 and sent["imported"] == 1
    assert sent["skipped"] == {"already_imported": 1}
    assert all(_adds_up(c) for c in (inbox, sent, report))
    assert report["messages"] == 8 and report["imported"] == 2
    assert report["skipped"] == {"already_imported": 1, "no_match": 1}

    # New mail arrives after the poll: counted at the next poll, not before.
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                              subject="Later"))
    assert _reconcile(consultant)["folders"]["inbox"]["messages"] == 6
    consultant.import_now()
    inbox = _reconcile(consultant)["folders"]["inbox"]
    assert (inbox["messages"], inbox["imported"]) == (7, 2) and _adds_up(inbox)


def test_a_message_deleted_on_the_server_leaves_the_count(consultant, crm):
    for subject in ("Keep", "Delete me"):
        consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                                  subject=subject))
    consultant.import_now()
    assert _reconcile(consultant)["folders"]["inbox"]["imported"] == 2
    with consultant.dovecot.client(consultant.username, consultant.password) as client:
        client.select_folder("INBOX")
        client.delete_messages(client.search(["SUBJECT", "Delete me"]))
        client.expunge()
    consultant.import_now()  # the poll sees MESSAGES change: counted again, nothing else read
    inbox = _reconcile(consultant)["folders"]["inbox"]
    assert (inbox["messages"], inbox["imported"]) == (1, 1) and _adds_up(inbox)


def test_a_message_rolsync_lost_track_of_is_unaccounted_and_warned_about(consultant, crm, app):
    for subject in ("First", "Second"):
        consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email,
                                                  subject=subject))
    consultant.import_now()
    # Lose the ledger row of one message, as a bug would.
    db.session.execute(delete(ImportedMessage).where(ImportedMessage.subject == "Second"))
    db.session.commit()
    consultant.deliver("INBOX", build_message(from_="stranger@nowhere.example", to=consultant.email,
                                              subject="Third"))
    consultant.import_now()
    inbox = _reconcile(consultant)["folders"]["inbox"]
    assert inbox["unaccounted"] == 1 and _adds_up(inbox)
    [warning] = [w for w in consultant.warnings() if w["kind"] == "unaccounted"]
    assert warning["status"] == "open" and "1 in INBOX" in warning["detail"]

    # Once it is accounted for again (here: the row is back), the next count clears the warning.
    state = db.session.scalar(select(FolderState).where(FolderState.role == "inbox"))
    uid = inbox["unaccounted_uids"][0]
    db.session.add(ImportedMessage(user_id=state.account.user_id, dedupe_key="restored", message_key="restored",
                                   folder="INBOX", uidvalidity=state.uidvalidity, uid=uid, outcome="imported"))
    db.session.commit()
    consultant.deliver("INBOX", build_message(from_="stranger@nowhere.example", to=consultant.email,
                                              subject="Fourth"))
    consultant.import_now()
    assert _reconcile(consultant)["folders"]["inbox"]["unaccounted"] == 0
    assert [w["status"] for w in consultant.warnings() if w["kind"] == "unaccounted"] == ["resolved"]


def test_an_idle_poll_does_not_count_again(consultant, crm):
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="One"))
    consultant.import_now()
    counted_at = _reconcile(consultant)["folders"]["inbox"]["counted_at"]
    consultant.import_now()
    again = _reconcile(consultant)["folders"]["inbox"]
    assert again["counted_at"] == counted_at
    assert again["polled_at"] > counted_at
