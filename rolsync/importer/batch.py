"""One fetch batch of a folder, saved in one transaction: parsed, decided, written, the watermark last.

Also the counts a run reports (`FolderCounts`, `ImportResult`).

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

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from rolsync import erasure, notes, privacy
from rolsync.documents import DocumentStore
from rolsync.importer import ledger
from rolsync.importer.folders import below_floor
from rolsync.mail.imap import FetchedMessage
from rolsync.mail.parse.limits import DEFAULT_LIMITS, ParseLimits
from rolsync.mail.parse.message import parse_or_failure
from rolsync.mail.parse.model import MessageUnreadable, ParsedMessage
from rolsync.mail.parse.text import snippet
from rolsync.matching import find_records
from rolsync.models import (
    CaptureLevel,
    Direction,
    FolderState,
    ImportedMessage,
    ImportWarning,
    MailAccount,
    Outcome,
    WarningKind,
    WarningStatus,
    utcnow,
)
from rolsync.rules import CompiledRules, Decision, addresses_to_match, decide

log = logging.getLogger(__name__)


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
class MessageOutcome:
    outcome: Outcome
    reason: str | None = None
    rule: str | None = None
    notes_created: int = 0
    warnings: int = 0


@dataclass
class FolderCounts:
    name: str | None
    imported: int = 0
    skipped: int = 0
    warnings: int = 0
    failed: int = 0
    already: int = 0

    def count(self, outcome: MessageOutcome | None) -> None:
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

    def add(self, other: ImportResult) -> None:
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
        return ledger.raw_key(self.fetched, self.raw_sha256)

    @property
    def raw_sha256(self) -> str:
        return self.parsed.content_hash if self.parsed else ledger.raw_sha256(self.fetched.raw)


class BatchImporter:
    """Saves the fetch batches of one account's folders; the run (`AccountImporter`) hands them over.

    `rules` may change between batches (the run follows the active version).
    """

    def __init__(self, session: Session, account: MailAccount, *, store: DocumentStore, rules: CompiledRules,
                 max_message_bytes: int, limits: ParseLimits = DEFAULT_LIMITS):
        self.session = session
        self.limits = limits
        self.account = account
        self.user_id = account.user_id
        self.store = store
        self.rules = rules
        self.max_message_bytes = max_message_bytes
        self.own = self.rules.own_domains(account.host, account.account_email)
        self.own_addresses = {a.lower() for a in (account.account_email, account.user.email) if "@" in a}
        self.capture = privacy.capture_level(session, account)

    @functools.cached_property
    def _spool_dir(self) -> Path:
        """Where the parser writes big attachments: the store's spool folder (on disk its root: storing is a rename)."""
        self.store.spool_dir.mkdir(parents=True, exist_ok=True)
        return self.store.spool_dir

    # -- one message fetched by hand ---------------------------------------------

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
            del batch  # not held while the next batch arrives

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
        return [message for message in messages if not below_floor(state, message.fetched.internaldate)]

    def _in_ledger(self, keys: set[str]) -> set[str]:
        """The keys the ledger has settled already (a backfill decides skipped ones again)."""
        return ledger.in_ledger(self.session, self.user_id, keys)

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
            message.key = ledger.dedupe_key(message.parsed, message.fetched, message.raw_sha256) if readable \
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
            if message.unreadable is not None or message.parsed is None:
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
        from rolsync import resources

        return erasure.suppressed_among(self.session, resources.get().suppression_key,
                                        (a for m in messages if m.parsed is not None
                                         for a in erasure.message_addresses(m.parsed)))

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
        message.recorded = bool(ledger.in_ledger(self.session, self.user_id, {message.key}))

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
        writer.look_up((ledger.message_key(m.parsed), record) for m in messages if m.decision is not None
                       for record in m.decision.records)
        raw_sha256: dict[int, str] = {}
        for message in messages:
            decision = message.decision
            if message.outcome is None or message.recorded:
                continue
            if decision is not None and decision.records and message.parsed is not None:
                message.outcome.notes_created = writer.add(
                    message.parsed, user_id=self.user_id, folder=state.name, direction=decision.direction,
                    records=decision.records, kept=decision.kept, capture_level=self.capture)
            if (message.fetched.too_large is None and self.capture is CaptureLevel.FULL
                    and (decision is None or decision.warnings or decision.pending)):
                # The raw message, so resolving the warning needs no IMAP.
                raw_sha256[id(message)] = writer.store_bytes(message.fetched.raw, message.raw_sha256)
        writer.flush()
        warnings, ledger_rows = [], []
        for message in messages:
            if message.outcome is None or message.recorded:
                continue
            raw_sha = raw_sha256.get(id(message))
            warnings += self._warning_rows(message, state, raw_sha)
            decision = message.decision
            if decision is not None and raw_sha is not None:  # kept: its raw message is stored
                for address in decision.pending:
                    notes.hold_for_record(self.session, user_id=self.user_id, address=address,
                                          message_key=ledger.message_key(message.parsed), raw_sha256=raw_sha,
                                          folder=state.name, direction=decision.direction)
            ledger_rows.append(self._ledger_row(message, state))
        if warnings:
            self.session.execute(insert(ImportWarning), warnings)
        if ledger_rows:
            self.session.execute(insert(cast(Table, ImportedMessage.__table__)), ledger_rows)

    def _warning_rows(self, message: _Message, state: FolderState, raw_sha: str | None) -> list[dict]:
        fetched, parsed = message.fetched, message.parsed
        base = {"user_id": self.user_id, "status": WarningStatus.OPEN.value, "folder": state.name,
                "raw_sha256": raw_sha, "created_at": utcnow(), "details": None}
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
        decision = message.decision
        if decision is None or parsed is None:  # not decided: nothing the rules asked for
            return []
        about = {"message_key": ledger.message_key(parsed), "message_id": parsed.message_id,
                 "subject": parsed.subject, "from_addr": parsed.from_addr or "", "sent_at": parsed.date,
                 "snippet": snippet(parsed.text)}
        return [{**base, **about, "kind": warning.kind.value, "address": warning.address, "records": warning.records,
                 "detail": warning.detail, "rule": warning.rule, "details": warning.details}
                for warning in decision.warnings]

    def _ledger_row(self, message: _Message, state: FolderState) -> dict:
        parsed = message.parsed if message.failure is None and message.unreadable is None else None
        outcome, decision = message.outcome, message.decision
        if outcome is None:
            raise ValueError("a message already in the ledger gets no second row")
        details = {"dropped": [d.as_json() for d in decision.dropped]} if decision and decision.dropped else None
        if outcome.reason in (erasure.SKIP_REASON, privacy.SKIP_PRIVATE):
            parsed = None  # nothing about private mail, or mail naming an erased person
        return {
            "user_id": self.user_id,
            "dedupe_key": message.key,
            "message_key": message.key if message.fetched.too_large is not None
            else ledger.message_key(parsed, message.raw_sha256),
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


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"
