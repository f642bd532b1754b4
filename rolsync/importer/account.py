"""One account's import: bounded runs over its folders, until caught up; each run recorded as an ImportRun.

A run reads the Inbox and the Sent folder (`folders`), hands what is new to
the batch importer one fetch batch at a time (`batch`), and stops at its
budget of messages or time; `import_until_caught_up` runs again until the
mailbox is caught up. A refused login or a folder that keeps renumbering
pauses the account.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync import logs, privacy, reconcile
from rolsync.accounts import pause_account, record_auth_failure
from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.importer.batch import BatchImporter, FolderCounts, ImportResult
from rolsync.importer.folders import (
    FOLDER_ROLES,
    UidValidityUnstable,
    folder_state,
    known_folders,
    note_missing_sent_folder,
    uids_to_read,
)
from rolsync.mail.errors import AuthFailed, FolderNotFound
from rolsync.mail.hosts import HostPolicy
from rolsync.mail.imap import MailboxSession
from rolsync.mail.parse.limits import DEFAULT_LIMITS, ParseLimits
from rolsync.mailbox_settings import settings_for
from rolsync.models import Direction, FolderState, ImportRun, MailAccount, RuleSetVersion, WarningKind, utcnow
from rolsync.oauth import OAuthProvider
from rolsync.rules import CompiledRules
from rolsync.rules.store import active_rules

MAX_MESSAGE_BYTES = 50 * 1024 * 1024  # ROLSYNC_LIMIT_MESSAGE_BYTES's default

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportLimits:
    """What an import may take: messages and seconds per run, batch size, timeouts, when to pause."""

    max_messages: int = 500  # per run (IMPORT_RUN_MESSAGES); the next run goes on
    fetch_batch: int = 200  # messages per FETCH and per transaction (IMPORT_FETCH_BATCH)
    timeout: float = 30.0  # seconds per IMAP command (IMAP_TIMEOUT)
    run_seconds: float | None = None  # runs until caught up, or this long (IMPORT_RUN_SECONDS); None: no end
    uidvalidity_limit: int = 3  # renumberings a day before the account pauses (UIDVALIDITY_CHANGES_BEFORE_PAUSE)
    auth_failure_limit: int = 3  # refused logins in a row before it pauses (AUTH_FAILURES_BEFORE_PAUSE)
    max_message_bytes: int = MAX_MESSAGE_BYTES  # larger messages are not downloaded (LIMIT_MESSAGE_BYTES)
    parse: ParseLimits = DEFAULT_LIMITS  # what one message may cost to read (ROLSYNC_LIMIT_*)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImportLimits:
        return cls(
            max_messages=config["IMPORT_RUN_MESSAGES"],
            fetch_batch=config["IMPORT_FETCH_BATCH"],
            timeout=config["IMAP_TIMEOUT"],
            run_seconds=config["IMPORT_RUN_SECONDS"],
            uidvalidity_limit=config["UIDVALIDITY_CHANGES_BEFORE_PAUSE"],
            auth_failure_limit=config["AUTH_FAILURES_BEFORE_PAUSE"],
            max_message_bytes=config["LIMIT_MESSAGE_BYTES"],
            parse=ParseLimits.from_config(config),
        )


class AccountImporter(BatchImporter):
    """Imports one account's new mail, folder by folder, batch by batch; one instance per run."""

    def __init__(
        self,
        session: Session,
        account: MailAccount,
        *,
        secrets: SecretBox,
        store: DocumentStore,
        providers: Mapping[str, OAuthProvider] | None = None,
        rules: CompiledRules | None = None,
        max_messages: int = 500,
        fetch_batch: int = 200,
        timeout: float = 30.0,
        progress: Callable[[int, int], None] | None = None,
        deadline: float | None = None,
        uidvalidity_limit: int = 3,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        parse_limits: ParseLimits = DEFAULT_LIMITS,
        host_policy: HostPolicy | None = None,
    ):
        # Without rules given, follow the active version: re-read at every batch,
        # so a version saved in the panel applies from the next batch on.
        super().__init__(session, account, store=store, rules=rules or active_rules(session),
                         max_message_bytes=max_message_bytes, limits=parse_limits)
        self._follow_active = rules is None
        self.secrets = secrets
        self.providers = providers or {}
        self.max_messages = max_messages
        self.fetch_batch = fetch_batch
        self.timeout = timeout
        self.progress = progress or (lambda done, total: None)
        self.deadline = deadline  # time.monotonic() after which the run hands over
        self.uidvalidity_limit = uidvalidity_limit
        self.host_policy = host_policy

    def run(self) -> ImportResult:
        result = ImportResult()
        settings = settings_for(self.account, self.secrets, self.providers, self.timeout, host_policy=self.host_policy)
        with MailboxSession(settings) as mailbox:
            folders = known_folders(self.session, self.account.id) or mailbox.find_folders()
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
                    note_missing_sent_folder(self.session, self.user_id)
                    continue
                state = folder_state(self.session, self.account.id, role, name)
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
                uids, uidnext = uids_to_read(self.session, mailbox, state, first_run_limit=self.rules.first_run_limit(role),
                                             first_run_since=self.rules.first_run_since(role),
                                             uidvalidity_limit=self.uidvalidity_limit)
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

    def _refresh_rules(self) -> None:
        if not self._follow_active:
            return
        version = self.session.scalar(select(RuleSetVersion.version).where(RuleSetVersion.active.is_(True)))
        if version != self.rules.version:
            self.rules = active_rules(self.session)
            self.own = self.rules.own_domains(self.account.host, self.account.account_email)


def import_account(
    session: Session,
    account: MailAccount,
    *,
    secrets: SecretBox,
    store: DocumentStore,
    providers: Mapping[str, OAuthProvider] | None = None,
    limits: ImportLimits | None = None,
    job_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
    host_policy: HostPolicy | None = None,
) -> ImportResult:
    """One bounded import run of an account, recorded as an ImportRun.

    A refused login is counted, and pauses the account at `auth_failure_limit`
    in a row; a folder that keeps renumbering pauses it too. Both re-raise.
    """
    limits = limits or ImportLimits()
    run = ImportRun(account_id=account.id, job_id=job_id)
    session.add(run)
    session.commit()
    run_id = run.id
    try:
        with logs.import_context(mailbox=account.id, run=run_id):
            log.info("import run started")
            result = AccountImporter(
                session, account, secrets=secrets, store=store, providers=providers,
                max_messages=limits.max_messages, fetch_batch=limits.fetch_batch, timeout=limits.timeout,
                progress=progress, deadline=deadline, uidvalidity_limit=limits.uidvalidity_limit,
                max_message_bytes=limits.max_message_bytes, parse_limits=limits.parse, host_policy=host_policy,
            ).run()
            log.info("import run finished: %s", result.as_json())
    except BaseException as exc:  # also RQ's job timeout (jobs.ImportTimedOut): the run ends, and says why
        session.rollback()
        run = session.get_one(ImportRun, run_id)
        run.finished_at = utcnow()
        run.error = _describe(exc)
        account.last_run_at = run.finished_at
        account.last_error = run.error
        account.last_error_code = getattr(exc, "code", None) or type(exc).__name__
        if isinstance(exc, AuthFailed):
            record_auth_failure(session, account, limits.auth_failure_limit)
        elif isinstance(exc, UidValidityUnstable):
            pause_account(session, account, WarningKind.UIDVALIDITY_UNSTABLE, exc.message)
        session.commit()
        raise
    run = session.get_one(ImportRun, run_id)
    run.finished_at = utcnow()
    run.counts = result.as_json()
    account.last_run_at = account.last_success_at = run.finished_at
    account.last_error = account.last_error_code = None
    account.auth_failures = 0
    session.commit()
    return result


def import_until_caught_up(
    session: Session,
    account: MailAccount,
    *,
    secrets: SecretBox,
    store: DocumentStore,
    providers: Mapping[str, OAuthProvider] | None = None,
    limits: ImportLimits,
    job_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    host_policy: HostPolicy | None = None,
    observe: Callable[[Callable[[], ImportResult]], ImportResult] | None = None,
) -> ImportResult:
    """Bounded runs of `import_account` until the mailbox is caught up or `limits.run_seconds` are spent.

    The RQ job, `flask mail import` and the benchmark import through this.
    `progress(0, 0)` is called after each run, so a caller that watches its
    lock there stops between runs too. `result.more` says mail is left.
    `observe` wraps each run (the metrics time it).
    """
    deadline = time.monotonic() + limits.run_seconds if limits.run_seconds is not None else None
    total = ImportResult()
    while True:
        def one_run() -> ImportResult:
            return import_account(session, account, secrets=secrets, store=store, providers=providers,
                                  limits=limits, job_id=job_id, progress=progress, deadline=deadline,
                                  host_policy=host_policy)

        result = observe(one_run) if observe is not None else one_run()
        total.add(result)
        if progress is not None:
            progress(0, 0)
        if not result.more or (deadline is not None and time.monotonic() > deadline):
            return total


def _describe(exc: BaseException) -> str:
    """A user-facing line for an error; never the raw text that might hold a secret."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        hint = getattr(exc, "hint", None)
        return f"{message} {hint}" if hint else message
    if not isinstance(exc, Exception):
        return "The import was stopped before it finished; what it had saved is kept and the next run goes on."
    return f"The import stopped with an internal error ({type(exc).__name__})."
