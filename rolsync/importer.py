"""The import of one mailbox: new messages become notes and documents, once.

Safety rests on two rules. Each message is decided in one database
transaction together with its ledger row and the folder's watermark, so a
crash at any point leaves either all of a message or none of it. And the
watermark (`FolderState.last_uid`) only moves past committed messages, so a
message is never skipped because a later one was saved first.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from rolsync import notes
from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.accounts import pause_account, record_auth_failure
from rolsync.mail.errors import AuthFailed, FolderNotFound
from rolsync.mail.imap import FetchedMessage, ImapSettings, MailboxSession, Security
from rolsync.mail.parse import MessageUnreadable, ParsedMessage, parse_message, snippet
from rolsync.decisions import decide
from rolsync.models import (
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


@dataclass
class FolderCounts:
    name: str | None
    imported: int = 0
    skipped: int = 0
    warnings: int = 0
    failed: int = 0
    already: int = 0

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


def settings_for(account: MailAccount, secrets: SecretBox, timeout: float = 30.0) -> ImapSettings:
    """The IMAP settings of an account, with its password decrypted (or OAuth token fetched) for this use only."""
    if account.uses_oauth:
        from rolsync import oauth, services

        return oauth.imap_settings(account, secrets, services.get().oauth_providers, timeout)
    return ImapSettings(
        host=account.host,
        port=account.port,
        security=Security(account.security),
        username=account.username,
        password=secrets.decrypt(account.password_encrypted),
        ca_pem=account.ca_pem,
        timeout=timeout,
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
        fetch_batch: int = 50,
        timeout: float = 30.0,
        progress: Callable[[int, int], None] | None = None,
        deadline: float | None = None,
        uidvalidity_limit: int = 3,
    ):
        self.session = session
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
        self.own = self.rules.own_domains(account.host, account.account_email)
        self.own_addresses = {a.lower() for a in (account.account_email, account.user.email) if "@" in a}

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
                if status.uidvalidity == state.uidvalidity and status.uidnext == state.caught_up_uidnext:
                    continue  # the cheap poll: nothing arrived since we last read to the end
                uids, uidnext = self._uids_to_read(mailbox, state, role)
                take = uids[:budget]
                budget -= len(take)
                total += len(take)
                self.progress(done, total)
                direction = Direction.RECEIVED if role == "inbox" else Direction.SENT
                finished = len(take) == len(uids)
                for fetched in mailbox.fetch(take, batch_size=self.fetch_batch):
                    if done % self.fetch_batch == 0:
                        self._refresh_rules()
                    self._import_fetched(fetched, state, direction, counts)
                    done += 1
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
        return result

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
            # First run: only the newest N; everything older stays out for good.
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

    # -- one message ------------------------------------------------------------

    def _import_fetched(self, fetched: FetchedMessage, state: FolderState, direction: Direction,
                        counts: FolderCounts) -> None:
        if state.floor_date is None and state.floor_uid and fetched.internaldate:
            state.floor_date = fetched.internaldate
        elif state.floor_date and fetched.internaldate and _aware(fetched.internaldate) < _aware(state.floor_date):
            # Older than the first run's cap (seen again after a UIDVALIDITY change).
            state.last_uid = fetched.uid
            self.session.commit()
            return
        for attempt in (1, 2):
            try:
                outcome = self.import_message(fetched, state, direction)
                state.last_uid = fetched.uid
                self.session.commit()
                break
            except FATAL_DB_ERRORS:
                self.session.rollback()
                raise
            except IntegrityError:
                # Another consultant's import saved the same note a moment ago:
                # try once more, now that it is visible.
                self.session.rollback()
                if attempt == 2:
                    raise
            except Exception as exc:  # a message we cannot handle must not stop the mailbox
                self.session.rollback()
                log.exception("importing UID %s of folder %s failed", fetched.uid, state.name)
                outcome = self._record_failure(fetched, state, direction, exc)
                state.last_uid = fetched.uid
                self.session.commit()
                break
        if outcome is None:
            counts.already += 1
        elif outcome.outcome is Outcome.IMPORTED:
            counts.imported += 1
        elif outcome.outcome is Outcome.FAILED:
            counts.failed += 1
        else:
            counts.skipped += outcome.outcome is Outcome.SKIPPED
        if outcome is not None:
            counts.warnings += outcome.warnings

    def import_message(self, fetched: FetchedMessage, state: FolderState,
                       direction: Direction) -> MessageOutcome | None:
        """Decide and save one message inside the caller's transaction.

        Returns None when this user's ledger already has the message.
        """
        try:
            parsed = parse_message(fetched.raw)
        except MessageUnreadable as exc:
            return self._record_unreadable(fetched, state, exc)
        key = dedupe_key(parsed, fetched, parsed.content_hash)
        if self._in_ledger(key):
            return None
        decision = decide(self.session, self.rules, parsed, direction, own=self.own,
                          own_addresses=self.own_addresses)
        outcome = MessageOutcome(decision.outcome, decision.reason, decision.rule)
        if decision.records:
            outcome.notes_created = notes.save_message_as_notes(
                self.session, self.store, self.rules, parsed, user_id=self.user_id, folder=state.name,
                direction=decision.direction, records=decision.records, kept=decision.kept)
        raw_sha = None
        if decision.warnings or decision.pending:
            raw_sha = self._store_bytes(fetched.raw)
        for warning in decision.warnings:
            self.session.add(ImportWarning(
                user_id=self.user_id,
                message_key=message_key(parsed, parsed.content_hash),
                message_id=parsed.message_id,
                folder=state.name,
                subject=parsed.subject,
                from_addr=parsed.from_addr or "",
                sent_at=parsed.date,
                snippet=snippet(parsed.text),
                raw_sha256=raw_sha,
                **warning,
            ))
            outcome.warnings += 1
        for address in decision.pending:
            notes.hold_for_record(self.session, user_id=self.user_id, address=address,
                                  message_key=message_key(parsed, parsed.content_hash), raw_sha256=raw_sha,
                                  folder=state.name, direction=decision.direction)
        details = {"dropped": [d.as_json() for d in decision.dropped]} if decision.dropped else None
        self._add_ledger(key, parsed, fetched, state, outcome, details)
        return outcome

    def _in_ledger(self, key: str) -> bool:
        return self.session.scalar(
            select(ImportedMessage.id).where(
                ImportedMessage.user_id == self.user_id, ImportedMessage.dedupe_key == key
            )
        ) is not None

    def _store_bytes(self, data: bytes, sha256: str | None = None) -> str:
        return notes.store_bytes(self.session, self.store, data, sha256)

    def _add_ledger(self, key: str, parsed: ParsedMessage | None, fetched: FetchedMessage,
                    state: FolderState, outcome: MessageOutcome, details: dict | None = None) -> None:
        self.session.add(ImportedMessage(
            user_id=self.user_id,
            dedupe_key=key,
            message_key=message_key(parsed, parsed.content_hash if parsed else _sha(fetched.raw)),
            message_id=parsed.message_id if parsed else None,
            folder=state.name,
            uidvalidity=state.uidvalidity,
            uid=fetched.uid,
            subject=parsed.subject if parsed else "",
            from_addr=(parsed.from_addr or "") if parsed else "",
            sent_at=parsed.date if parsed else None,
            outcome=outcome.outcome.value,
            reason=outcome.reason,
            rule=outcome.rule,
            ruleset_version=self.rules.version,
            notes_created=outcome.notes_created,
            details=details,
        ))

    def _record_unreadable(self, fetched: FetchedMessage, state: FolderState,
                           exc: MessageUnreadable) -> MessageOutcome | None:
        key = f"gm:{fetched.gm_msgid}" if fetched.gm_msgid else f"sha:{_sha(fetched.raw)}"
        if self._in_ledger(key):
            return None
        outcome = MessageOutcome(Outcome.WARNED, "unreadable", None, warnings=1)
        self.session.add(ImportWarning(
            user_id=self.user_id,
            kind=WarningKind.UNREADABLE_MESSAGE.value,
            message_key=f"sha:{_sha(fetched.raw)}",
            folder=state.name,
            detail=f"The message with UID {fetched.uid} in {state.name} could not be read: {exc.reason}",
            raw_sha256=self._store_bytes(fetched.raw),
        ))
        self._add_ledger(key, None, fetched, state, outcome)
        return outcome

    def _record_failure(self, fetched: FetchedMessage, state: FolderState, direction: Direction,
                        exc: Exception) -> MessageOutcome:
        """Keep a message that broke the import as a warning, so it can be retried."""
        key = f"gm:{fetched.gm_msgid}" if fetched.gm_msgid else f"sha:{_sha(fetched.raw)}"
        outcome = MessageOutcome(Outcome.FAILED, "error", None, warnings=1)
        if self._in_ledger(key):
            return outcome
        self.session.add(ImportWarning(
            user_id=self.user_id,
            kind=WarningKind.IMPORT_FAILED.value,
            message_key=f"sha:{_sha(fetched.raw)}",
            folder=state.name,
            detail=f"Importing the message with UID {fetched.uid} in {state.name} failed "
                   f"({type(exc).__name__}); it is kept here so it can be retried.",
            raw_sha256=self._store_bytes(fetched.raw),
        ))
        self._add_ledger(key, None, fetched, state, outcome)
        return outcome


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def import_account(
    session: Session,
    account: MailAccount,
    *,
    secrets: SecretBox,
    store: DocumentStore,
    max_messages: int = 500,
    fetch_batch: int = 50,
    timeout: float = 30.0,
    job_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
    uidvalidity_limit: int = 3,
    auth_failure_limit: int = 3,
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
        result = AccountImporter(
            session, account, secrets=secrets, store=store, max_messages=max_messages,
            fetch_batch=fetch_batch, timeout=timeout, progress=progress, deadline=deadline,
            uidvalidity_limit=uidvalidity_limit,
        ).run()
    except Exception as exc:
        session.rollback()
        run = session.get(ImportRun, run_id)
        run.finished_at = utcnow()
        run.error = _describe(exc)
        account.last_run_at = run.finished_at
        account.last_error = run.error
        if isinstance(exc, AuthFailed):
            record_auth_failure(session, account, auth_failure_limit)
        elif isinstance(exc, UidValidityUnstable):
            pause_account(session, account, WarningKind.UIDVALIDITY_UNSTABLE, exc.message)
        session.commit()
        raise
    run = session.get(ImportRun, run_id)
    run.finished_at = utcnow()
    run.counts = result.as_json()
    account.last_run_at = run.finished_at
    account.last_error = None
    account.auth_failures = 0
    session.commit()
    return result


def _describe(exc: Exception) -> str:
    """A user-facing line for an error; never the raw text that might hold a secret."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        hint = getattr(exc, "hint", None)
        return f"{message} {hint}" if hint else message
    return f"The import stopped with an internal error ({type(exc).__name__})."
