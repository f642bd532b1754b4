"""Preview a draft rule set: what the active rules and the draft do to some messages, writing nothing.

Messages come from a consultant's mailbox (the newest N of the Inbox and the
Sent folder, fetched by an RQ job, `jobs.preview_job`, so the web panel never
talks IMAP inside a request) or from uploaded .eml files. Each is decided twice by
`rules.decide`, the function the import itself uses, so the preview shows
exactly what an import would do.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session

from rolsync.crypto import SecretBox
from rolsync.mail.imap import MailboxSession
from rolsync.mail.parse import MessageUnreadable, parse_message
from rolsync.mailbox_settings import settings_for
from rolsync.models import Direction, MailAccount
from rolsync.oauth import OAuthProvider
from rolsync.rules import CompiledRules, decide

MAX_PREVIEW_MESSAGES = 200


@dataclass(frozen=True)
class PreviewMessage:
    label: str  # where it came from: "INBOX #42" or the uploaded file's name
    raw: bytes
    direction: Direction


@dataclass
class PreviewRow:
    label: str
    subject: str
    from_addr: str
    date: str | None
    active: dict | None
    draft: dict | None
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.active != self.draft

    def as_json(self) -> dict:
        return {**asdict(self), "changed": self.changed}


def preview(session: Session, account: MailAccount | None, messages: list[PreviewMessage],
            active: CompiledRules, draft: CompiledRules) -> list[PreviewRow]:
    """Decide every message with both rule sets; nothing is written."""
    own_addresses = set()
    host, account_email = "", ""
    if account is not None:
        host, account_email = account.host, account.account_email
        own_addresses = {a.lower() for a in (account.account_email, account.user.email) if "@" in a}
    rows = []
    for message in messages[:MAX_PREVIEW_MESSAGES]:
        try:
            parsed = parse_message(message.raw)
        except MessageUnreadable as exc:
            rows.append(PreviewRow(message.label, "", "", None, None, None, error=f"could not be read: {exc.reason}"))
            continue
        verdicts = []
        for rules in (active, draft):
            decision = decide(session, rules, parsed, message.direction,
                              own=rules.own_domains(host, account_email), own_addresses=own_addresses)
            verdicts.append(decision.summary())
        rows.append(PreviewRow(message.label, parsed.subject, parsed.from_addr or "",
                               parsed.date.isoformat() if parsed.date else None, verdicts[0], verdicts[1]))
    session.rollback()  # belt and braces: a preview leaves no trace
    return rows


def fetch_recent(account: MailAccount, secrets: SecretBox, count: int, timeout: float = 30, *,
                 providers: Mapping[str, OAuthProvider] | None = None) -> list[PreviewMessage]:
    """The newest `count` messages of the Inbox and of the Sent folder, read-only.

    `providers` are the OAuth providers in use, needed for a mailbox connected with one.
    """
    count = max(1, min(count, MAX_PREVIEW_MESSAGES // 2))
    found: list[PreviewMessage] = []
    with MailboxSession(settings_for(account, secrets, providers or {}, timeout)) as mailbox:
        folders = mailbox.find_folders()
        for role, direction in (("inbox", Direction.RECEIVED), ("sent", Direction.SENT)):
            name = folders.get(role)
            if not name:
                continue
            mailbox.examine(name)
            uids = mailbox.newest_uids(count)
            for fetched in mailbox.fetch(uids):
                found.append(PreviewMessage(f"{name} #{fetched.uid}", fetched.raw, direction))
    return found
