"""Privacy per mailbox: who sees its notes, how much of its mail is kept, what stays out, and removing a note.

- Visibility: a mailbox's notes are seen by every user, or (private) only by
  the mailbox's owner and admins. `note_visible` is the one condition every
  page, download and export applies.
- Capture level: full, subject and participants, or participants and date.
  Admins set the default (`PrivacyPolicy`); locked, it is a ceiling the
  consultant may go under but not over. The import applies it after the rules
  decided (`reduce`), so nothing above the level is ever written.
- Private mail: an IMAP keyword and a folder the import never takes in.
- A consultant removes a note from their own mailbox (`remove_note`); the
  ledger remembers, so the message does not come back.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from sqlalchemy import ColumnElement, delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from rolsync.documents import DocumentStore
from rolsync.mail.parse import ParsedMessage
from rolsync.models import (
    CaptureLevel,
    Document,
    ImportedMessage,
    ImportWarning,
    MailAccount,
    Note,
    PendingMessage,
    PrivacyPolicy,
    StoredFile,
    User,
    Visibility,
    utcnow,
)

SKIP_PRIVATE = "private"
"""The ledger's reason for a message its owner marked private (keyword)."""

LEVEL_ORDER = [CaptureLevel.FULL, CaptureLevel.SUBJECT, CaptureLevel.PARTICIPANTS]
LEVEL_LABELS = {
    CaptureLevel.FULL: "Everything: subject, participants, date, text and documents",
    CaptureLevel.SUBJECT: "Subject and participants only (no text, no documents)",
    CaptureLevel.PARTICIPANTS: "Participants and date only",
}
NOTE_LEVEL_LABELS = {
    CaptureLevel.SUBJECT.value: "Subject and participants only: the mailbox keeps no text",
    CaptureLevel.PARTICIPANTS.value: "Participants and date only: the mailbox keeps no subject or text",
}
VISIBILITY_LABELS = {
    Visibility.EVERYONE: "Every user",
    Visibility.PRIVATE: "Only me and the admins",
}

# An IMAP flag keyword is an atom: no spaces, parentheses, braces, quotes, % * or backslash.
_KEYWORD = re.compile(r"[!#$&'+\-./0-9:;<=>?@A-Z\[\]^_`a-z|~]{1,64}")


class PrivacyError(ValueError):
    """A privacy setting or removal was refused; the message says why."""

    code = "privacy_refused"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# -- visibility ------------------------------------------------------------------------------------


def private_owners():
    """The users whose mailbox is private (a subquery)."""
    return select(MailAccount.user_id).where(MailAccount.visibility == Visibility.PRIVATE.value)


def note_visible(viewer: User | None) -> ColumnElement[bool]:
    """The condition on Note for what `viewer` may see; None is the operator (the CLI), who sees everything."""
    if viewer is None or viewer.is_admin:
        return true()
    return or_(Note.user_id == viewer.id, Note.user_id.not_in(private_owners()))


def can_see_note(session: Session, viewer: User | None, note: Note) -> bool:
    if viewer is None or viewer.is_admin or note.user_id == viewer.id:
        return True
    visibility = session.scalar(select(MailAccount.visibility).where(MailAccount.user_id == note.user_id))
    return visibility != Visibility.PRIVATE.value


def held_visible(viewer: User | None) -> ColumnElement[bool]:
    """The condition on PendingMessage: held mail links onto a record only where its owner's visibility allows."""
    if viewer is None or viewer.is_admin:
        return true()
    return or_(PendingMessage.user_id == viewer.id, PendingMessage.user_id.not_in(private_owners()))


# -- capture level ---------------------------------------------------------------------------------


def policy(session: Session) -> PrivacyPolicy:
    """The admins' settings (defaults until an admin saves them)."""
    found = session.get(PrivacyPolicy, 1)
    return found or PrivacyPolicy(id=1, capture_default=CaptureLevel.FULL.value, capture_locked=False)


def save_policy(session: Session, capture_default: str, locked: bool, *, by: str) -> PrivacyPolicy:
    level = _level(capture_default)
    row = session.get(PrivacyPolicy, 1)
    if row is None:
        row = PrivacyPolicy(id=1)
        session.add(row)
    row.capture_default, row.capture_locked = level.value, locked
    row.updated_at, row.updated_by = utcnow(), by
    session.flush()
    return row


def save_retention(session: Session, months: int | None, *, by: str) -> PrivacyPolicy:
    """Set (or with None, remove) the age after which imported notes and documents are deleted."""
    if months is not None and not 1 <= months <= 1200:
        raise PrivacyError("Enter a number of months from 1 to 1200, or leave it empty to keep everything.",
                           "retention_months")
    row = session.get(PrivacyPolicy, 1)
    if row is None:
        row = PrivacyPolicy(id=1, capture_default=CaptureLevel.FULL.value, capture_locked=False)
        session.add(row)
    row.retention_months = months
    row.updated_at, row.updated_by = utcnow(), by
    session.flush()
    return row


def _level(value: str) -> CaptureLevel:
    try:
        return CaptureLevel(value)
    except ValueError:
        raise PrivacyError("Choose one of the capture levels offered.", "capture_level") from None


def allowed_levels(session: Session) -> list[CaptureLevel]:
    """The levels a consultant may choose: all, or (locked) the default and those keeping less."""
    rules = policy(session)
    if not rules.capture_locked:
        return list(LEVEL_ORDER)
    return LEVEL_ORDER[LEVEL_ORDER.index(CaptureLevel(rules.capture_default)):]


def capture_level(session: Session, account: MailAccount) -> CaptureLevel:
    """The level the import applies to this mailbox now: its own choice if still allowed, else the default."""
    rules = policy(session)
    default = CaptureLevel(rules.capture_default)
    if account.capture_level is None:
        return default
    chosen = CaptureLevel(account.capture_level)
    if rules.capture_locked and LEVEL_ORDER.index(chosen) < LEVEL_ORDER.index(default):
        return default  # the admin lowered the ceiling after the consultant chose
    return chosen


def capture_level_of_user(session: Session, user_id: int) -> CaptureLevel:
    """The capture level of the user's mailbox (the default when they have none)."""
    account = session.scalar(select(MailAccount).where(MailAccount.user_id == user_id))
    return capture_level(session, account) if account is not None else CaptureLevel(policy(session).capture_default)


def reduce(parsed: ParsedMessage, level: CaptureLevel) -> ParsedMessage:
    """The message as far as `level` keeps it; the caller must drop spooled attachments of the original."""
    if level is CaptureLevel.FULL:
        return parsed
    subject = parsed.subject if level is CaptureLevel.SUBJECT else ""
    return dataclasses.replace(parsed, subject=subject, text="", attachments=[])


# -- settings of a mailbox -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MailboxPrivacy:
    """What a consultant sets under Preferences > Privacy."""

    visibility: str
    capture_level: str
    private_keyword: str = ""
    private_folder: str = ""


def save_mailbox_privacy(session: Session, account: MailAccount, wanted: MailboxPrivacy) -> None:
    """Save the mailbox's privacy settings; PrivacyError (naming the field) if one is refused."""
    try:
        visibility = Visibility(wanted.visibility)
    except ValueError:
        raise PrivacyError("Choose who sees the notes from this mailbox.", "visibility") from None
    level = _level(wanted.capture_level)
    if level not in allowed_levels(session):
        raise PrivacyError("Your admin allows no more than "
                           f"\u201c{LEVEL_LABELS[CaptureLevel(policy(session).capture_default)]}\u201d.",
                           "capture_level")
    keyword = wanted.private_keyword.strip()
    if keyword and (not _KEYWORD.fullmatch(keyword) or keyword.startswith("\\")):
        raise PrivacyError("A keyword is one word of letters, digits and - _ . (for example Private or $private).",
                           "private_keyword")
    folder = wanted.private_folder.strip()
    if folder.upper() == "INBOX":
        raise PrivacyError("The Inbox cannot be kept out; choose another folder, or use a keyword.",
                           "private_folder")
    if len(folder) > 512:
        raise PrivacyError("That folder name is too long.", "private_folder")
    account.visibility = visibility.value
    account.capture_level = level.value
    account.private_keyword = keyword or None
    account.private_folder = folder or None
    session.flush()


def has_private_keyword(account: MailAccount, flags: Iterable[str | bytes]) -> bool:
    """Whether a message's flags carry the mailbox's private keyword (keywords compare case-insensitively)."""
    keyword = (account.private_keyword or "").lower()
    if not keyword:
        return False
    return any((f.decode("utf-8", "replace") if isinstance(f, bytes) else f).lower() == keyword for f in flags)


def is_private_folder(account: MailAccount, folder: str | None) -> bool:
    """Whether the folder (or one inside it) is the one the consultant keeps out."""
    private = (account.private_folder or "").strip().lower()
    if not private or not folder:
        return False
    name = folder.lower()
    return name == private or any(name.startswith(private + sep) for sep in "/.")


# -- removing a note -------------------------------------------------------------------------------


def remove_note(session: Session, store: DocumentStore, user: User, note_id: int) -> None:
    """Remove a note made from `user`'s own mailbox, with its documents; the message is not imported again.

    Commits, then deletes stored files nothing else names.
    """
    note = session.get(Note, note_id)
    if note is None or note.user_id != user.id:
        raise PrivacyError("Only notes from your own mailbox can be removed.")
    files = {d.sha256 for d in note.documents}
    key = note.message_key
    session.delete(note)  # its documents go with it (cascade)
    session.flush()
    # The ledger row stays and says so: a later poll, or the same mail read again, is skipped.
    handled = (ImportedMessage.user_id == user.id, ImportedMessage.message_key == key)
    if session.scalar(select(func.count(ImportedMessage.id)).where(*handled)):
        session.execute(update(ImportedMessage).where(*handled).values(removed_at=utcnow()))
    else:
        session.add(ImportedMessage(user_id=user.id, dedupe_key=key, message_key=key, folder=note.folder,
                                    outcome="imported", reason="removed", removed_at=utcnow(), created_at=utcnow()))
    unused = unreferenced_files(session, files)
    if unused:
        session.execute(delete(StoredFile).where(StoredFile.sha256.in_(sorted(unused))))
    session.commit()
    for digest in sorted(unused):
        store.delete(digest)


def removed_messages(session: Session, keys: Iterable[str]) -> set[tuple[int, str]]:
    """(user id, message key) of these messages whose note a user removed: nothing brings them back."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    return {(user_id, key) for user_id, key in session.execute(
        select(ImportedMessage.user_id, ImportedMessage.message_key).where(
            ImportedMessage.message_key.in_(wanted), ImportedMessage.removed_at.is_not(None)))}


def unreferenced_files(session: Session, digests: set[str]) -> set[str]:
    """Of these stored files, the ones no document, warning or held message names."""
    if not digests:
        return set()
    wanted = sorted(digests)
    used: set[str] = set()
    for column in (Document.sha256, ImportWarning.raw_sha256, PendingMessage.raw_sha256):
        used.update(session.scalars(select(column).where(column.in_(wanted)).distinct()))
    return digests - used
