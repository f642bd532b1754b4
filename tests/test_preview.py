"""The rules preview writes nothing and says what a real import then does."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from devkit.builders import build_message, minimal_pdf, tiny_png
from rolsync import resources
from rolsync.extensions import db
from rolsync.models import Direction, ImportedMessage, MailAccount
from rolsync.preview import PreviewMessage, fetch_recent, preview
from rolsync.rules import CompiledRules, default_rules
from rolsync.rules.store import active_rules


def row_counts() -> dict[str, int]:
    db.session.rollback()
    return {table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables}


def test_preview_writes_nothing_and_matches_the_import(consultant, crm, tmp_path):
    consultant.deliver_many("INBOX", [
        build_message(from_="carol@client.example", to=consultant.email, subject="CV and logo", text="x",
                      attachments=[("cv.pdf", "application/pdf", minimal_pdf()), ("logo.png", "image/png", tiny_png())]),
        build_message(from_="stranger@nowhere.example", to=consultant.email, subject="Stranger", text="x"),
        build_message(from_="shared@client.example", to=consultant.email, subject="Shared", text="x"),
        build_message(from_="carol@client.example", to=consultant.email, subject="Newsletter", text="x",
                      headers={"List-Id": "<news.client.example>"}),
    ])
    consultant.deliver("Sent", build_message(from_=consultant.email, to="cathy@candidates.example",
                                             subject="Offer", text="x"))
    draft_definition = default_rules()
    draft_definition["images"]["mode"] = "keep"
    draft_definition["no_match"]["action"] = "warn"
    draft_definition["automatic_mail"]["skip"] = False
    account = db.session.scalar(select(MailAccount))
    before = row_counts()

    messages = fetch_recent(account, resources.get().secrets, 10)
    rows = {row.subject: row for row in preview(db.session, account, messages, active_rules(db.session),
                                                CompiledRules(draft_definition))}

    assert row_counts() == before, "the preview wrote something"
    assert set(rows) == {"CV and logo", "Stranger", "Shared", "Newsletter", "Offer"}
    assert rows["CV and logo"].active["kept"] == ["cv.pdf"]
    assert rows["CV and logo"].draft["kept"] == ["cv.pdf", "logo.png"] and rows["CV and logo"].changed
    assert (rows["Stranger"].active["outcome"], rows["Stranger"].draft["outcome"]) == ("skipped", "warned")
    assert rows["Newsletter"].active["reason"] == "automatic" and rows["Newsletter"].draft["outcome"] == "imported"
    assert not rows["Shared"].changed and rows["Shared"].draft["outcome"] == "warned"
    assert rows["Offer"].draft["direction"] == "sent"

    path = tmp_path / "draft.json"
    path.write_text(json.dumps(draft_definition))
    assert consultant.cli("rules", "import", str(path)).exit_code == 0
    consultant.import_now()
    outcomes = {m.subject: (m.outcome, m.reason) for m in db.session.scalars(select(ImportedMessage))}
    assert outcomes == {subject: (row.draft["outcome"], row.draft["reason"]) for subject, row in rows.items()}
    kept = {n["subject"]: sorted(d["filename"] for d in n["documents"]) for n in consultant.notes()}
    assert kept["CV and logo"] == rows["CV and logo"].draft["kept"]


def test_uploaded_messages_preview_without_a_mailbox(app, crm):
    raw = build_message(from_="carol@client.example", to="someone@agency.example", subject="Uploaded", text="x")
    [row] = preview(db.session, None, [PreviewMessage("upload.eml", raw, Direction.RECEIVED),
                                       PreviewMessage("junk.eml", b"", Direction.RECEIVED)][:1],
                    active_rules(db.session), CompiledRules(default_rules()))
    assert row.active["records"][0]["name"] == "Carol Client" and not row.changed
    [bad] = preview(db.session, None, [PreviewMessage("junk.eml", b"", Direction.RECEIVED)],
                    active_rules(db.session), CompiledRules(default_rules()))
    assert bad.error and bad.active is None
