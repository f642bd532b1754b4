""""Why wasn't this e-mail imported?": the ledger first, then the mail server, and importing one message by hand.

A message the import decided on is in the ledger, with its outcome, the rule
and rule-set version, and the records. One that is not is searched for on the
server (IMAP SEARCH in every folder LIST names, bounded in folders, hits and
time) and each copy found is put in one case:

* ``before_first_run``: older than the newest N the first import took;
* ``other_folder``: in a folder rolsync does not read (only Inbox and Sent);
* ``after_last_poll``: arrived after the last poll read the folder;
* ``copy``: a second copy of a message the ledger has;
* ``unaccounted``: read, yet no outcome recorded (reconciliation warns of these);
* nothing found: ``not_on_server`` (deleted, or never delivered to this mailbox).

The first three can be imported now: `import_one` puts the message through
the same rules and ledger as a run, so pressing twice makes one note.
"""
from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.history import HistoryEntry, HistoryFilter, search_history
from rolsync.importer import AccountImporter, MessageOutcome, settings_for
from rolsync.mail.errors import FolderNotFound, MailError
from rolsync.mail.imap import MailboxSession
from rolsync.models import Direction, FolderState, ImportedMessage, MailAccount, User

MAX_QUERY = 300
"""Longer searches are refused: nothing people search for is longer, and IMAP servers choke on it."""
MAX_FOLDERS = 60
"""Folders searched at most, Inbox and Sent first."""
MAX_HITS = 20
"""Copies found on the server that are described at most (the newest)."""
SEARCH_SECONDS = 20.0
"""The server search stops after this long and says so: it runs inside a page request."""
_MESSAGE_ID = re.compile(r"^<?[^\s<>@]+@[^\s<>@]+>?$")
_ADDRESS = re.compile(r"^[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+$")


class Case(str, enum.Enum):
    BEFORE_FIRST_RUN = "before_first_run"
    OTHER_FOLDER = "other_folder"
    AFTER_LAST_POLL = "after_last_poll"
    COPY = "copy"
    UNACCOUNTED = "unaccounted"
    IN_LEDGER = "in_ledger"


CASE_SENTENCES = {
    Case.BEFORE_FIRST_RUN: "It is older than the mail the first import took (only the newest messages of each "
                           "folder are imported when a mailbox is set up; older ones stay out).",
    Case.OTHER_FOLDER: "It is in a folder rolsync does not read: only the Inbox and the Sent folder are imported.",
    Case.AFTER_LAST_POLL: "It arrived after the last import read this folder; the next scheduled import will "
                          "take it.",
    Case.COPY: "It is another copy of a message that was already imported or decided on.",
    Case.UNACCOUNTED: "The import read this folder past this message but recorded nothing for it; your "
                      "administrator sees it counted as unaccounted on the Mailboxes page.",
    Case.IN_LEDGER: "The import has already decided on this message: search for its Message-ID to see how.",
}
NOT_ON_SERVER = ("No message like this is on the mail server: it was deleted (or moved out of the mailbox) "
                 "before rolsync read it, or it never reached this mailbox.")
IMPORTABLE = frozenset({Case.BEFORE_FIRST_RUN, Case.OTHER_FOLDER, Case.AFTER_LAST_POLL})


class WhyError(ValueError):
    """A search or an import by hand was refused; the message says why in plain words."""


@dataclass
class ServerCopy:
    """One copy of the message on the server, and why it has no ledger row."""

    folder: str
    uidvalidity: int
    uid: int
    subject: str
    from_addr: str
    date: datetime | None
    case: Case

    @property
    def sentence(self) -> str:
        return CASE_SENTENCES[self.case]

    @property
    def importable(self) -> bool:
        return self.case in IMPORTABLE


@dataclass
class Answer:
    query: str
    ledger: list[HistoryEntry] = field(default_factory=list)
    searched_server: bool = False
    copies: list[ServerCopy] = field(default_factory=list)
    folders_searched: int = 0
    incomplete: str | None = None  # why the server search stopped early
    error: str | None = None  # the server could not be searched

    @property
    def not_on_server(self) -> bool:
        return self.searched_server and not self.copies and self.error is None and self.incomplete is None


def criteria(query: str) -> list:
    """The IMAP SEARCH for what a person typed: a Message-ID, an address, or words of the subject."""
    text = " ".join(query.split())
    if not text:
        raise WhyError("Type an address, words of the subject, or a Message-ID.")
    if len(text) > MAX_QUERY:
        raise WhyError(f"Search for at most {MAX_QUERY} characters.")
    if _ADDRESS.match(text):
        # A Message-ID without its brackets looks like an address: ask for either.
        return ["OR", ["OR", "FROM", text, "OR", "TO", text, "CC", text], ["HEADER", "Message-ID", text]]
    if _MESSAGE_ID.match(text):
        return ["HEADER", "Message-ID", text.strip("<>")]
    words: list = []
    for word in text.split()[:8]:
        words += ["SUBJECT", word]
    return words


def explain(session: Session, user: User, query: str, *, secrets: SecretBox, search_server: bool = False,
            timeout: float = 10.0, seconds: float = SEARCH_SECONDS) -> Answer:
    """The user's ledger rows matching `query`; without any (or when asked), the copies on the server."""
    search = criteria(query)
    answer = Answer(query=query)
    answer.ledger = search_history(session, user, HistoryFilter(text=query, user_id=user.id), 1, 20).items
    account = user.mail_account
    if account is None or (answer.ledger and not search_server):
        return answer
    answer.searched_server = True
    try:
        _search_server(session, account, search, answer, settings_for(account, secrets, timeout),
                       time.monotonic() + seconds)
    except MailError as exc:
        answer.error = f"{exc.message} {exc.hint or ''}".strip()
    return answer


def _search_server(session: Session, account: MailAccount, search: list, answer: Answer, settings, deadline: float
                   ) -> None:
    states = {state.name: state for state in session.scalars(
        select(FolderState).where(FolderState.account_id == account.id))}
    with MailboxSession(settings) as mailbox:
        folders = mailbox.selectable_folders()
        # The folders rolsync reads first, so a deadline cuts the others.
        folders.sort(key=lambda name: (name not in states, name.upper() != "INBOX"))
        if len(folders) > MAX_FOLDERS:
            answer.incomplete = f"Only the first {MAX_FOLDERS} of {len(folders)} folders were searched."
            folders = folders[:MAX_FOLDERS]
        found: list[tuple[str, int, list[int]]] = []
        for name in folders:
            if time.monotonic() > deadline:
                answer.incomplete = "The search took too long and stopped before every folder was searched."
                break
            try:
                status = mailbox.examine(name)
            except FolderNotFound:
                continue
            answer.folders_searched += 1
            uids = mailbox.search_uids(search)
            if uids:
                found.append((name, status.uidvalidity, uids))
        remaining = MAX_HITS
        for name, uidvalidity, uids in found:
            if remaining <= 0:
                answer.incomplete = f"Only the newest {MAX_HITS} messages found are shown."
                break
            take = uids[-remaining:]
            remaining -= len(take)
            mailbox.examine(name)
            for uid, header, internaldate in _headers(mailbox, take):
                answer.copies.append(_copy(session, account, states.get(name), name, uidvalidity, uid, header,
                                           internaldate))


def _headers(mailbox: MailboxSession, uids: list[int]):
    """(uid, parsed header, INTERNALDATE) of each message: the header only, whatever the attachments weigh."""
    parser = BytesParser(policy=policy.default)
    for uid, raw, internaldate in mailbox.fetch_headers(uids):
        yield uid, parser.parsebytes(raw, headersonly=True), internaldate


def _copy(session: Session, account: MailAccount, state: FolderState | None, folder: str, uidvalidity: int,
          uid: int, header, internaldate: datetime | None) -> ServerCopy:
    message_id = str(header.get("Message-ID") or "").strip().strip("<>") or None
    try:
        date = header["Date"].datetime if header.get("Date") else None
    except (TypeError, ValueError, AttributeError):
        date = None
    copy = ServerCopy(folder, uidvalidity, uid, " ".join(str(header.get("Subject") or "").split()),
                      str(header.get("From") or ""), date or internaldate, Case.UNACCOUNTED)
    ledger = select(ImportedMessage.id).where(ImportedMessage.user_id == account.user_id)
    if session.scalar(ledger.where(ImportedMessage.folder == folder, ImportedMessage.uidvalidity == uidvalidity,
                                   ImportedMessage.uid == uid)) is not None:
        copy.case = Case.IN_LEDGER
    elif state is None:
        copy.case = Case.OTHER_FOLDER
    elif state.uidvalidity != uidvalidity or uid > (state.last_uid or 0):
        copy.case = Case.AFTER_LAST_POLL
    elif uid < (state.floor_uid or 0) or _before(internaldate, state.floor_date):
        copy.case = Case.BEFORE_FIRST_RUN
    elif message_id and session.scalar(ledger.where(ImportedMessage.message_id == message_id)) is not None:
        copy.case = Case.COPY
    return copy


def _before(when: datetime | None, floor: datetime | None) -> bool:
    if when is None or floor is None:
        return False
    aware = [value if value.tzinfo else value.replace(tzinfo=timezone.utc) for value in (when, floor)]
    return aware[0] < aware[1]


@dataclass
class ImportedOne:
    outcome: MessageOutcome | None  # None: the ledger had it already
    subject: str


def import_one(session: Session, account: MailAccount, folder: str, uidvalidity: int, uid: int, *,
               secrets: SecretBox, store: DocumentStore, timeout: float = 20.0) -> ImportedOne:
    """Import one message from the server through the rules and the ledger, whatever the floor or the folder."""
    states = {state.name: state for state in session.scalars(
        select(FolderState).where(FolderState.account_id == account.id))}
    known = states.get(folder)
    if known is not None and known.role == "sent":
        direction = Direction.SENT
    else:
        direction = Direction.RECEIVED
    importer = AccountImporter(session, account, secrets=secrets, store=store, timeout=timeout)
    with MailboxSession(settings_for(account, secrets, timeout)) as mailbox:
        try:
            status = mailbox.examine(folder)
        except FolderNotFound as exc:
            raise WhyError(f"The folder {folder} is not on the mail server any more.") from exc
        if status.uidvalidity != uidvalidity:
            raise WhyError(f"The folder {folder} was renumbered on the server since the search; search again.")
        fetched = list(mailbox.fetch([uid], batch_size=1))
    if not fetched:
        raise WhyError("The message is not on the mail server any more.")
    message = fetched[0]
    if known is None and direction is Direction.RECEIVED and _from_self(message.raw, importer.own_addresses):
        direction = Direction.SENT  # a sent message filed in another folder
    # A folder rolsync does not read has no state row: a transient one names it in the ledger row.
    state = known or FolderState(account_id=account.id, role="other", name=folder, uidvalidity=uidvalidity)
    outcome = importer.import_fetched(message, state, direction)
    if state is not known and state in session:
        session.expunge(state)
    header = BytesParser(policy=policy.default).parsebytes(message.raw, headersonly=True)
    return ImportedOne(outcome, " ".join(str(header.get("Subject") or "").split()))


def _from_self(raw: bytes, own: set[str]) -> bool:
    header = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    addresses = getattr(header.get("From"), "addresses", ()) or ()
    return any((a.addr_spec or "").lower() in own for a in addresses)
