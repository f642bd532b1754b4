"""The import of one mailbox: new messages become notes and documents, once.

Safety rests on two rules. Each message is saved in one database transaction
together with its ledger row and the folder's watermark, so a crash at any
point leaves either all of a message or none of it. And the watermark
(`FolderState.last_uid`) only moves past committed messages, so a message is
never skipped because a later one was saved first.

For speed the transaction holds a whole fetch batch: the batch's messages are
parsed, then decided with one ledger query and one record lookup for all of
them, then saved with a few multi-row statements, and committed together with
the watermark at the batch's last UID. A crash loses the uncommitted batch and
the next run reads it again, so nothing is lost and nothing duplicated. A
message that cannot be saved rolls back alone (the batch is saved again one
message at a time, each in a SAVEPOINT) and is recorded as failed, as before.

No message can stop a mailbox: a batch the database refuses for a reason that
is not transient is split in halves, each saved in a transaction of its own,
until the message it refuses is alone; that one is saved as failed, with a
warning saying why, and the rest import. Transient trouble (a dropped
connection, a deadlock, a busy SQLite) stops the run instead, and the next run
retries from the watermark. A message larger than `max_message_bytes` is not
downloaded: it gets a ledger row and a warning, and the watermark moves past it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from rolsync import erasure, logs, notes, privacy, reconcile
from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.accounts import pause_account, record_auth_failure
from rolsync.mail.errors import AuthFailed, FolderNotFound
from rolsync.mail.imap import FetchedMessage, ImapSettings, MailboxSession, Security
from rolsync.mail.parse.limits import DEFAULT_LIMITS, ParseLimits
from rolsync.mail.parse.message import parse_or_failure
from rolsync.mail.parse.model import MessageUnreadable, ParsedMessage
from rolsync.mail.parse.text import snippet
from rolsync.decisions import Decision, addresses_to_match, decide
from rolsync.matching import chunked, find_records
from rolsync.models import (
    CaptureLevel,
    Direction,
    FolderState,
    ImportedMessage,
    ImportRun,
    ImportWarning,
    MailAccount,
    Outcome,
    RuleSetVersion,
    WarningKind,
    WarningStatus,
    utcnow,
)
from rolsync.rules import CompiledRules
from rolsync.rules.store import active_rules

log = logging.getLogger(__name__)

FOLDER_ROLES = ("inbox", "sent")
UIDVALIDITY_WINDOW = timedelta(hours=24)
MAX_MESSAGE_BYTES = 50 * 1024 * 1024  # ROLSYNC_LIMIT_MESSAGE_BYTES's default


class UidValidityUnstable(Exception):
    """A folder keeps changing its UIDVALIDITY: the account is paused rather than re-read forever."""

    def __init__(self, folder: str, changes: int):
        self.folder = folder
        self.changes = changes
        self.message = (f"The folder {folder} changed its UIDVALIDITY {changes} times within a day, so "
                        "importing is paused to avoid reading it again and again. Ask the mail server's "
                        "administrator whether the mailbox is being migrated, then resume the import.")
        self.hint = None
        super().__init__(self.message)

# Database trouble is not the message's fault: stop the run and let the next
# one retry from the watermark rather than marking good mail as failed.
FATAL_DB_ERRORS = (OperationalError, InterfaceError)
# SQLSTATE classes of trouble that passes: connection (08), transaction rollback
# (40: deadlock, serialization), resources (53), operator intervention (57), system (58).
TRANSIENT_SQLSTATE_CLASSES = {"08", "40", "53", "57", "58"}
TRANSIENT_SQLITE_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN")


def is_transient(exc: BaseException) -> bool:
    """Whether the database's trouble passes by itself (retry the batch later) rather than being the batch's.

    psycopg's "more than 65,535 parameters" is an OperationalError too, with
    no SQLSTATE and the connection intact: it is the batch's, not transient.
    A lost connection is flagged by SQLAlchemy (`connection_invalidated`).
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate:
        return str(sqlstate)[:2] in TRANSIENT_SQLSTATE_CLASSES
    name = getattr(orig, "sqlite_errorname", None)
    if name:
        return str(name).startswith(TRANSIENT_SQLITE_ERRORS)
    return isinstance(exc, InterfaceError)


@dataclass
class FolderCounts:
    name: str | None
    imported: int = 0
    skipped: int = 0
    warnings: int = 0
    failed: int = 0
    already: int = 0

    def count(self, outcome: "MessageOutcome | None") -> None:
        if outcome is None:
            self.already += 1
            return
        if outcome.outcome is Outcome.IMPORTED:
            self.imported += 1
        elif outcome.outcome is Outcome.FAILED:
            self.failed += 1
        else:
            self.skipped += outcome.outcome is Outcome.SKIPPED
        self.warnings += outcome.warnings

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "imported": self.imported,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "failed": self.failed,
            "already_imported": self.already,
        }


@dataclass
class ImportResult:
    folders: dict[str, FolderCounts] = field(default_factory=dict)
    more: bool = False  # the run stopped at its budget; the next run continues

    def total(self, attr: str) -> int:
        return sum(getattr(c, attr) for c in self.folders.values())

    def add(self, other: "ImportResult") -> None:
        for role, counts in other.folders.items():
            mine = self.folders.setdefault(role, FolderCounts(counts.name))
            mine.name = counts.name
            for attr in ("imported", "skipped", "warnings", "failed", "already"):
                setattr(mine, attr, getattr(mine, attr) + getattr(counts, attr))
        self.more = other.more

    def as_json(self) -> dict:
        return {
            "folders": {role: counts.as_json() for role, counts in self.folders.items()},
            "imported": self.total("imported"),
            "skipped": self.total("skipped"),
            "warnings": self.total("warnings"),
            "failed": self.total("failed"),
        }


@dataclass
class MessageOutcome:
    outcome: Outcome
    reason: str | None = None
    rule: str | None = None
    notes_created: int = 0
    warnings: int = 0


@dataclass
class _Message:
    """One fetched message on its way through a batch: parsed, then decided, then saved."""

    fetched: FetchedMessage
    parsed: ParsedMessage | None = None
    unreadable: MessageUnreadable | None = None
    failure: Exception | None = None  # parsing, deciding or saving it raised
    key: str = ""  # the ledger's dedupe key
    decision: Decision | None = None
    outcome: MessageOutcome | None = None  # None: this user's ledger has it already
    recorded: bool = False  # a failure the ledger has already: counted again, not written again
    refused: bool = False  # the database refused to save it (found by splitting its batch)

    @classmethod
    def of(cls, fetched: FetchedMessage, result: ParsedMessage | Exception) -> "_Message":
        """A fetched message with what parsing it gave: the parsed message, unreadable, or a failure."""
        message = cls(fetched)
        if fetched.too_large is not None:
            return message  # not downloaded: nothing was parsed
        if isinstance(result, MessageUnreadable):
            message.unreadable = result
        elif isinstance(result, Exception):  # a message we cannot handle must not stop the mailbox
            log.error("parsing UID %s failed: %s", fetched.uid, result, exc_info=result)
            message.failure = result
        else:
            message.parsed = result
        return message

    @property
    def raw_key(self) -> str:
        """The ledger key of a message that could not be read or imported: its raw bytes identify it."""
        if self.fetched.gm_msgid:
            return f"gm:{self.fetched.gm_msgid}"
        if self.fetched.too_large is not None:
            # Not downloaded, so no bytes to hash: what the server says of it.
            date = self.fetched.internaldate.isoformat() if self.fetched.internaldate else ""
            return f"too-large:{self.fetched.uid}:{self.fetched.too_large}:{date}"
        return f"sha:{self.raw_sha256}"

    @property
    def raw_sha256(self) -> str:
        return self.parsed.content_hash if self.parsed else _sha(self.fetched.raw)


def settings_for(account: MailAccount, secrets: SecretBox, timeout: float = 30.0) -> ImapSettings:
    """The IMAP settings of an account, with its password decrypted (or OAuth token fetched) for this use only.

    They carry the deployment's host policy, so the import, Test Connection
    and every other use connect only where an admin allows.
    """
    from rolsync import services

    policy = services.get().host_policy
    if account.uses_oauth:
        from rolsync import oauth

        settings = oauth.imap_settings(account, secrets, services.get().oauth_providers, timeout)
        return dataclasses.replace(settings, host_policy=policy)
    return ImapSettings(
        host=account.host,
        port=account.port,
        security=Security(account.security),
        username=account.username,
        password=secrets.decrypt(account.password_encrypted),
        ca_pem=account.ca_pem,
        timeout=timeout,
        host_policy=policy,
    )


def dedupe_key(parsed: ParsedMessage | None, fetched: FetchedMessage, content_hash: str) -> str:
    """The identity of a message within one mailbox, whatever folder or UIDVALIDITY."""
    if fetched.gm_msgid:
        return f"gm:{fetched.gm_msgid}"
    return message_key(parsed, content_hash)


def message_key(parsed: ParsedMessage | None, content_hash: str) -> str:
    """The identity of a message across mailboxes: Message-ID, else a content hash."""
    return notes.message_key(parsed) if parsed is not None else f"sha:{content_hash}"


class AccountImporter:
    """Imports one account's new mail; one instance per run."""

    def __init__(
        self,
        session: Session,
        account: MailAccount,
        *,
        secrets: SecretBox,
        store: DocumentStore,
        rules: CompiledRules | None = None,
        max_messages: int = 500,
        fetch_batch: int = 200,
        timeout: float = 30.0,
        progress: Callable[[int, int], None] | None = None,
        deadline: float | None = None,
        uidvalidity_limit: int = 3,
        limits: ParseLimits = DEFAULT_LIMITS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self.session = session
        self.limits = limits
        self.account = account
        self.user_id = account.user_id
        self.secrets = secrets
        self.store = store
        # Without rules given, follow the active version: re-read at every batch,
        # so a version saved in the panel applies from the next batch on.
        self._follow_active = rules is None
        self.rules = rules or active_rules(session)
        self.max_messages = max_messages
        self.fetch_batch = fetch_batch
        self.timeout = timeout
        self.progress = progress or (lambda done, total: None)
        self.deadline = deadline  # time.monotonic() after which the run hands over
        self.uidvalidity_limit = uidvalidity_limit
        self.max_message_bytes = max_message_bytes
        self.own = self.rules.own_domains(account.host, account.account_email)
        self.own_addresses = {a.lower() for a in (account.account_email, account.user.email) if "@" in a}
        self.capture = privacy.capture_level(session, account)

    @functools.cached_property
    def _spool_dir(self) -> Path:
        """Where the parser writes big attachments: the store's spool folder (on disk its root: storing is a rename)."""
        self.store.spool_dir.mkdir(parents=True, exist_ok=True)
        return self.store.spool_dir

    # -- the run -------------------------------------------------------------

    def run(self) -> ImportResult:
        result = ImportResult()
        settings = settings_for(self.account, self.secrets, self.timeout)
        with MailboxSession(settings) as mailbox:
            folders = self._known_folders() or mailbox.find_folders()
            budget = self.max_messages
            done = total = 0
            for role in FOLDER_ROLES:
                name = folders.get(role)
                if name is None and role == "sent":
                    name = mailbox.find_folders().get("sent")  # it may have been created since
                counts = result.folders[role] = FolderCounts(name)
                if privacy.is_private_folder(self.account, name):
                    continue  # the consultant keeps this folder out of rolsync: never read
                if name is None:
                    self._note_missing_sent_folder()
                    continue
                state = self._folder_state(role, name)
                try:
                    status = mailbox.status(name)
                except FolderNotFound:
                    # Renamed or deleted on the server: find the folder again.
                    name = mailbox.find_folders().get(role)
                    counts.name = name
                    if name is None:
                        continue
                    state.name = name
                    status = mailbox.status(name)
                count_due = reconcile.note_poll(state, status)
                if status.uidvalidity == state.uidvalidity and status.uidnext == state.caught_up_uidnext:
                    self._count(mailbox, state, count_due)
                    continue  # the cheap poll: nothing arrived since we last read to the end
                uids, uidnext = self._uids_to_read(mailbox, state, role)
                take = uids[:budget]
                budget -= len(take)
                total += len(take)
                self.progress(done, total)
                direction = Direction.RECEIVED if role == "inbox" else Direction.SENT
                finished = len(take) == len(uids)
                batches = self._parsed(mailbox.fetch_batches(take, batch_size=self.fetch_batch,
                                                              max_message_bytes=self.max_message_bytes))
                for batch, messages in batches:
                    self._refresh_rules()
                    self._import_batch(batch, messages, state, direction, counts)
                    done += len(batch)
                    del batch, messages  # not held while the next batch arrives (a big one can be 30 MB)
                    self.progress(done, total)
                    if self.deadline is not None and time.monotonic() > self.deadline and done < total:
                        finished = False
                        break
                else:
                    if take and state.last_uid < take[-1]:
                        # UIDs expunged between SEARCH and FETCH: nothing to wait for.
                        state.last_uid = take[-1]
                if finished:
                    state.caught_up_uidnext = uidnext
                else:
                    result.more = True
                self.session.commit()
                self._count(mailbox, state, True)  # mail was read: the counts moved
        return result

    def _count(self, mailbox: MailboxSession, state: FolderState, due: bool) -> None:
        """Reconcile the folder against the server when its STATUS changed (never on an idle poll)."""
        if due:  # (otherwise the poll's STATUS commits with the run's row)
            reconcile.count_folder(self.session, mailbox, state, self.user_id)

    def import_fetched(self, fetched: FetchedMessage, state: FolderState, direction: Direction
                       ) -> MessageOutcome | None:
        """Import one message fetched by hand (the history's "Import this message") through the same rules
        and ledger as a run, without moving any watermark; None when the ledger has it already."""
        message = self._parse(fetched)
        try:
            for attempt in (1, 2):
                try:
                    self._decide([message], direction)
                    self._save([message], state)
                    self.session.commit()
                    return message.outcome
                except IntegrityError:
                    self.session.rollback()  # saved by a second press a moment ago: decide again
                    if attempt == 2:
                        raise
            return None
        finally:
            if message.parsed is not None:
                message.parsed.discard_spool()

    def _refresh_rules(self) -> None:
        if not self._follow_active:
            return
        version = self.session.scalar(select(RuleSetVersion.version).where(RuleSetVersion.active.is_(True)))
        if version != self.rules.version:
            self.rules = active_rules(self.session)
            self.own = self.rules.own_domains(self.account.host, self.account.account_email)

    def _known_folders(self) -> dict[str, str] | None:
        """The folder names found before, so a poll needs no LIST."""
        states = self.session.scalars(select(FolderState).where(FolderState.account_id == self.account.id))
        known = {state.role: state.name for state in states}
        return known if set(known) == set(FOLDER_ROLES) else None

    def _folder_state(self, role: str, name: str) -> FolderState:
        state = self.session.scalar(
            select(FolderState).where(FolderState.account_id == self.account.id, FolderState.role == role)
        )
        if state is None:
            state = FolderState(account_id=self.account.id, role=role, name=name, last_uid=0, floor_uid=0,
                                uidvalidity_changes=0)
            self.session.add(state)
        state.name = name
        return state

    def _uids_to_read(self, mailbox: MailboxSession, state: FolderState, role: str) -> tuple[list[int], int]:
        status = mailbox.examine(state.name)
        if state.uidvalidity is None:
            # First run: only the newest N, or what arrived since a day; everything older stays out for good.
            since = self.rules.first_run_since(role)
            if since is not None:
                found = mailbox.uids_since(since)
                state.floor_uid = found[0] if found else status.uidnext
            else:
                cap = self.rules.first_run_limit(role)
                newest = mailbox.newest_uids(cap) if cap else []
                state.floor_uid = newest[0] if newest else (0 if cap else status.uidnext)
            state.uidvalidity = status.uidvalidity
            state.last_uid = 0
        elif state.uidvalidity != status.uidvalidity:
            self._uidvalidity_changed(state)
            # The server renumbered the folder: read it again from the start.
            # The ledger keeps out what was imported, floor_date what is too old.
            log.info("UIDVALIDITY of %s changed for account %s; rescanning", state.name, self.account.id)
            state.uidvalidity = status.uidvalidity
            state.last_uid = 0
            state.floor_uid = 0
            state.caught_up_uidnext = None
        state.uidnext = status.uidnext
        self.session.commit()
        uids = [uid for uid in mailbox.uids_after(state.last_uid) if uid >= state.floor_uid]
        return uids, status.uidnext

    def _uidvalidity_changed(self, state: FolderState) -> None:
        """Count renumberings; a folder that keeps renumbering trips the breaker.

        Each change means reading the whole folder again, so a server that
        changes UIDVALIDITY on every session would have us re-fetch forever.
        """
        now = utcnow()
        recent = state.uidvalidity_changed_at and now - _aware(state.uidvalidity_changed_at) < UIDVALIDITY_WINDOW
        state.uidvalidity_changes = (state.uidvalidity_changes or 0) + 1 if recent else 1
        state.uidvalidity_changed_at = now
        if state.uidvalidity_changes > self.uidvalidity_limit:
            self.session.commit()
            raise UidValidityUnstable(state.name, state.uidvalidity_changes)

    def _note_missing_sent_folder(self) -> None:
        exists = self.session.scalar(
            select(ImportWarning.id).where(
                ImportWarning.user_id == self.user_id,
                ImportWarning.kind == WarningKind.NO_SENT_FOLDER.value,
                ImportWarning.status == WarningStatus.OPEN.value,
            )
        )
        if exists is None:
            self.session.add(ImportWarning(
                user_id=self.user_id,
                kind=WarningKind.NO_SENT_FOLDER.value,
                detail="No Sent folder was found in the mailbox, so sent mail is not imported. "
                       "The Inbox still imports.",
            ))
            self.session.commit()

    # -- one batch of messages ---------------------------------------------------

    def _parsed(self, batches: Iterator[list[FetchedMessage]]
                ) -> Iterator[tuple[list[FetchedMessage], list[_Message]]]:
        """Each fetched batch with its messages parsed, in order, in this process.

        With the compiled parser a message costs about 0.6 ms of CPU; the
        import with a pool of parser processes took the same time as without
        it (see the README's Performance section), so there is none.
        """
        for batch in batches:
            yield batch, [self._parse(fetched) for fetched in batch]
            batch = None  # not held while the next batch arrives

    def _parse(self, fetched: FetchedMessage) -> _Message:
        return _Message.of(fetched, parse_or_failure(fetched.raw, spool_dir=self._spool_dir, limits=self.limits))

    def _import_batch(self, batch: list[FetchedMessage], messages: list[_Message], state: FolderState,
                      direction: Direction, counts: FolderCounts) -> None:
        """Import one fetch batch in one transaction that also moves the watermark past it."""
        try:
            self._save_batch(messages, batch[-1].uid, state, direction, counts)
        finally:
            for message in messages:
                if message.parsed is not None:
                    message.parsed.discard_spool()

    def _save_batch(self, fetched: list[_Message], last_uid: int, state: FolderState, direction: Direction,
                    counts: FolderCounts) -> None:
        """Save messages, and the watermark at `last_uid`, in one transaction; split them if the database refuses.

        A refusal that is not transient (see `is_transient`) halves the
        messages, each half in its own transaction with the watermark at its
        last UID, until the refused message is alone: it is saved as failed.
        """
        try:
            messages = self._save_together(fetched, last_uid, state, direction)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(fetched) > 1:
                log.warning("the database refused a batch of %d messages of %s (%s); splitting it",
                            len(fetched), state.name, exc.__class__.__name__)
                middle = len(fetched) // 2
                self._save_batch(fetched[:middle], fetched[middle - 1].fetched.uid, state, direction, counts)
                self._save_batch(fetched[middle:], last_uid, state, direction, counts)
                return
            [message] = fetched
            log.error("the database refused UID %s of %s", message.fetched.uid, state.name, exc_info=exc)
            message.failure = exc
            message.refused = True
            messages = self._save_together(fetched, last_uid, state, direction)
        for message in messages:
            counts.count(message.outcome)

    def _save_together(self, fetched: list[_Message], last_uid: int, state: FolderState, direction: Direction
                       ) -> list[_Message]:
        """One transaction: decide and write the messages, move the watermark; rolled back if anything fails."""
        for attempt in (1, 2):
            try:
                messages = self._within_floor(fetched, state)
                # The watermark moves first, in the same transaction: it commits
                # with the batch or not at all. (On SQLite this UPDATE also opens
                # the transaction that the SAVEPOINTs of _save must nest in.)
                state.last_uid = last_uid
                self.session.flush()
                self._decide(messages, direction)
                self._save(messages, state)
                self.session.commit()
                return messages
            except IntegrityError:
                # Another consultant's import saved a note of the same message
                # a moment ago: decide the batch once more, now that it is visible.
                self.session.rollback()
                if attempt == 2:
                    raise
            except Exception:
                self.session.rollback()
                raise
        raise AssertionError("unreachable")

    def _within_floor(self, messages: list[_Message], state: FolderState) -> list[_Message]:
        """The messages not older than the first run's cap (older ones reappear after a UIDVALIDITY change)."""
        kept = []
        for message in messages:
            internaldate = message.fetched.internaldate
            if state.floor_date is None and state.floor_uid and internaldate:
                state.floor_date = internaldate
            elif state.floor_date and internaldate and _aware(internaldate) < _aware(state.floor_date):
                continue
            kept.append(message)
        return kept

    def _decide(self, messages: list[_Message], direction: Direction) -> None:
        """Ask the rules about every message of the batch; writes nothing.

        One query finds the messages already in the ledger, one lookup the
        records of every address; a message seen twice in the batch counts as
        already imported the second time.
        """
        for message in messages:
            message.decision = message.outcome = None
            message.recorded = False
            readable = message.parsed is not None and message.failure is None
            message.key = dedupe_key(message.parsed, message.fetched, message.raw_sha256) if readable \
                else message.raw_key
        seen = self._in_ledger({message.key for message in messages})
        lookups = find_records(self.session, {
            address for message in messages
            if message.key not in seen and message.parsed is not None and message.failure is None
            for address in addresses_to_match(message.parsed, direction, self.own_addresses)})
        erased = self._erased_addresses([m for m in messages if m.key not in seen and m.parsed is not None])
        for message in messages:
            if message.failure is not None:
                message.outcome = MessageOutcome(Outcome.FAILED, "error", None, warnings=1)
                message.recorded = message.key in seen
                seen.add(message.key)
                continue
            if message.key in seen:
                continue  # outcome None: already imported
            seen.add(message.key)
            if message.fetched.too_large is not None:
                message.outcome = MessageOutcome(Outcome.WARNED, "too_large", None, warnings=1)
                continue
            if message.unreadable is not None:
                message.outcome = MessageOutcome(Outcome.WARNED, "unreadable", None, warnings=1)
                continue
            if privacy.has_private_keyword(self.account, message.fetched.flags):
                self._skip_silently(message, direction, privacy.SKIP_PRIVATE)
                continue
            if erasure.involves(message.parsed, erased):
                self._skip_silently(message, direction, erasure.SKIP_REASON)
                continue
            try:
                decision = decide(self.session, self.rules, message.parsed, direction, own=self.own,
                                  own_addresses=self.own_addresses, lookups=lookups)
            except FATAL_DB_ERRORS:
                raise
            except Exception as exc:
                log.exception("deciding on UID %s failed", message.fetched.uid)
                self._fail(message, exc)
                continue
            message.decision = decision
            message.outcome = MessageOutcome(decision.outcome, decision.reason, decision.rule,
                                             warnings=len(decision.warnings))
            self._apply_capture_level(message)

    def _erased_addresses(self, messages: list[_Message]) -> set[str]:
        """The addresses of erased people among these messages' (one query)."""
        from rolsync import services

        return erasure.suppressed_among(self.session, services.get().suppression_key,
                                        (a for m in messages for a in erasure.message_addresses(m.parsed)))

    def _skip_silently(self, message: _Message, direction: Direction, reason: str) -> None:
        """Private mail, or mail naming an erased person: not imported, held or warned about; the ledger says nothing of it."""
        decision = Decision(direction)
        decision.skip(reason, None)
        message.decision = decision
        message.outcome = MessageOutcome(Outcome.SKIPPED, reason, None)

    def _apply_capture_level(self, message: _Message) -> None:
        """Keep of a decided message only what the mailbox's capture level allows (the rules saw all of it)."""
        if self.capture is CaptureLevel.FULL or message.parsed is None or message.decision is None:
            return
        message.parsed.discard_spool()
        message.parsed = privacy.reduce(message.parsed, self.capture)
        message.decision.kept, message.decision.dropped, message.decision.pending = [], [], []

    def _fail(self, message: _Message, exc: Exception) -> None:
        """Turn a message into a failure, kept as a warning so it can be retried."""
        message.failure = exc
        message.decision = None
        message.key = message.raw_key
        message.outcome = MessageOutcome(Outcome.FAILED, "error", None, warnings=1)
        message.recorded = bool(self._in_ledger({message.key}))

    def _in_ledger(self, keys: set[str]) -> set[str]:
        """Which of these dedupe keys this user's ledger has."""
        return {key for part in chunked(sorted(keys)) for key in self.session.scalars(
            select(ImportedMessage.dedupe_key).where(
                ImportedMessage.user_id == self.user_id, ImportedMessage.dedupe_key.in_(part)))}

    def _save(self, messages: list[_Message], state: FolderState) -> None:
        """Write the batch; if that fails, write it message by message so only the bad one fails."""
        try:
            with self.session.begin_nested():
                self._write(messages, state)
            return
        except (*FATAL_DB_ERRORS, IntegrityError):
            raise
        except Exception:
            log.warning("saving %d messages of %s at once failed; saving them one by one", len(messages),
                        state.name, exc_info=True)
        for message in messages:
            try:
                with self.session.begin_nested():
                    self._write([message], state)
            except (*FATAL_DB_ERRORS, IntegrityError):
                raise
            except Exception as exc:  # a message we cannot handle must not stop the mailbox
                log.exception("importing UID %s of folder %s failed", message.fetched.uid, state.name)
                self._fail(message, exc)
                with self.session.begin_nested():
                    self._write([message], state)

    def _write(self, messages: list[_Message], state: FolderState) -> None:
        """The rows of decided messages: notes and documents, warnings, held messages, ledger rows."""
        writer = notes.NoteWriter(self.session, self.store)
        writer.look_up((notes.message_key(m.parsed), record) for m in messages if m.decision is not None
                       for record in m.decision.records)
        raw_sha256: dict[int, str] = {}
        for message in messages:
            decision = message.decision
            if message.outcome is None or message.recorded:
                continue
            if decision is not None and decision.records:
                message.outcome.notes_created = writer.add(
                    message.parsed, user_id=self.user_id, folder=state.name, direction=decision.direction,
                    records=decision.records, kept=decision.kept, capture_level=self.capture)
            if (message.fetched.too_large is None and self.capture is CaptureLevel.FULL
                    and (decision is None or decision.warnings or decision.pending)):
                # The raw message, so resolving the warning needs no IMAP.
                raw_sha256[id(message)] = writer.store_bytes(message.fetched.raw, message.raw_sha256)
        writer.flush()
        warnings, ledger = [], []
        for message in messages:
            if message.outcome is None or message.recorded:
                continue
            raw_sha = raw_sha256.get(id(message))
            warnings += self._warning_rows(message, state, raw_sha)
            decision = message.decision
            for address in decision.pending if decision else ():
                notes.hold_for_record(self.session, user_id=self.user_id, address=address,
                                      message_key=notes.message_key(message.parsed), raw_sha256=raw_sha,
                                      folder=state.name, direction=decision.direction)
            ledger.append(self._ledger_row(message, state))
        if warnings:
            self.session.execute(insert(ImportWarning), warnings)
        if ledger:
            self.session.execute(insert(ImportedMessage.__table__), ledger)

    def _warning_rows(self, message: _Message, state: FolderState, raw_sha: str | None) -> list[dict]:
        fetched, parsed = message.fetched, message.parsed
        base = {"user_id": self.user_id, "status": WarningStatus.OPEN.value, "folder": state.name,
                "raw_sha256": raw_sha, "created_at": utcnow()}
        if fetched.too_large is not None:
            return [{**base, "kind": WarningKind.MESSAGE_TOO_LARGE.value, "message_key": message.key,
                     "detail": f"The message with UID {fetched.uid} in {state.name} was not imported: at "
                               f"{_megabytes(fetched.too_large)} it is larger than the "
                               f"{_megabytes(self.max_message_bytes)} limit. It is still in the mailbox."}]
        if message.failure is not None:
            # The error's own text may quote the message or a secret: the log has it, the person a sentence.
            why = "the database refused to save it" if message.refused else "an internal error (see the server log)"
            return [{**base, "kind": WarningKind.IMPORT_FAILED.value, "message_key": f"sha:{message.raw_sha256}",
                     "detail": f"Importing the message with UID {fetched.uid} in {state.name} failed: {why}; "
                               "it is kept here so it can be retried."}]
        if message.unreadable is not None:
            return [{**base, "kind": WarningKind.UNREADABLE_MESSAGE.value,
                     "message_key": f"sha:{message.raw_sha256}",
                     "detail": f"The message with UID {fetched.uid} in {state.name} could not be read: "
                               f"{message.unreadable.reason}"}]
        about = {"message_key": notes.message_key(parsed), "message_id": parsed.message_id,
                 "subject": parsed.subject, "from_addr": parsed.from_addr or "", "sent_at": parsed.date,
                 "snippet": snippet(parsed.text)}
        return [{**base, **about, **warning} for warning in message.decision.warnings]

    def _ledger_row(self, message: _Message, state: FolderState) -> dict:
        parsed = message.parsed if message.failure is None and message.unreadable is None else None
        outcome, decision = message.outcome, message.decision
        details = {"dropped": [d.as_json() for d in decision.dropped]} if decision and decision.dropped else None
        if outcome.reason in (erasure.SKIP_REASON, privacy.SKIP_PRIVATE):
            parsed = None  # nothing about private mail, or mail naming an erased person
        return {
            "user_id": self.user_id,
            "dedupe_key": message.key,
            "message_key": message.key if message.fetched.too_large is not None
            else message_key(parsed, message.raw_sha256),
            "message_id": parsed.message_id if parsed else None,
            "folder": state.name,
            "uidvalidity": state.uidvalidity,
            "uid": message.fetched.uid,
            "subject": parsed.subject if parsed else "",
            "from_addr": (parsed.from_addr or "") if parsed else "",
            "to_addrs": ", ".join([*parsed.to, *parsed.cc]) if parsed else "",
            "sent_at": parsed.date if parsed else None,
            "outcome": outcome.outcome.value,
            "reason": outcome.reason,
            "rule": outcome.rule,
            "ruleset_version": self.rules.version,
            "notes_created": outcome.notes_created,
            "details": details,
            "created_at": utcnow(),
        }


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


def import_account(
    session: Session,
    account: MailAccount,
    *,
    secrets: SecretBox,
    store: DocumentStore,
    max_messages: int = 500,
    fetch_batch: int = 200,
    timeout: float = 30.0,
    job_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
    uidvalidity_limit: int = 3,
    auth_failure_limit: int = 3,
    limits: ParseLimits = DEFAULT_LIMITS,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> ImportResult:
    """One bounded import run of an account, recorded as an ImportRun.

    A refused login is counted, and pauses the account at `auth_failure_limit`
    in a row; a folder that keeps renumbering pauses it too. Both re-raise.
    """
    run = ImportRun(account_id=account.id, job_id=job_id)
    session.add(run)
    session.commit()
    run_id = run.id
    try:
        with logs.import_context(mailbox=account.id, run=run_id):
            log.info("import run started")
            result = AccountImporter(
                session, account, secrets=secrets, store=store, max_messages=max_messages,
                fetch_batch=fetch_batch, timeout=timeout, progress=progress, deadline=deadline,
                uidvalidity_limit=uidvalidity_limit, limits=limits, max_message_bytes=max_message_bytes,
            ).run()
            log.info("import run finished: %s", result.as_json())
    except BaseException as exc:  # also RQ's job timeout (jobs.ImportTimedOut): the run ends, and says why
        session.rollback()
        run = session.get(ImportRun, run_id)
        run.finished_at = utcnow()
        run.error = _describe(exc)
        account.last_run_at = run.finished_at
        account.last_error = run.error
        account.last_error_code = getattr(exc, "code", None) or type(exc).__name__
        if isinstance(exc, AuthFailed):
            record_auth_failure(session, account, auth_failure_limit)
        elif isinstance(exc, UidValidityUnstable):
            pause_account(session, account, WarningKind.UIDVALIDITY_UNSTABLE, exc.message)
        session.commit()
        raise
    run = session.get(ImportRun, run_id)
    run.finished_at = utcnow()
    run.counts = result.as_json()
    account.last_run_at = account.last_success_at = run.finished_at
    account.last_error = account.last_error_code = None
    account.auth_failures = 0
    session.commit()
    return result


def _describe(exc: BaseException) -> str:
    """A user-facing line for an error; never the raw text that might hold a secret."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        hint = getattr(exc, "hint", None)
        return f"{message} {hint}" if hint else message
    if not isinstance(exc, Exception):
        return "The import was stopped before it finished; what it had saved is kept and the next run goes on."
    return f"The import stopped with an internal error ({type(exc).__name__})."
