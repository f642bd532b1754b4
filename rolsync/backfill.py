"""A record's past mail on demand: search the consultant's mailbox for the record's addresses and import it.

The first run imports only the newest messages of each folder; a candidate
added today has no history. ``backfill_record`` searches the server (IMAP
SEARCH FROM/TO/CC each of the record's addresses, in the Inbox and Sent,
optionally since a day) beyond that floor and imports what it finds through
the import's own machinery (`rolsync.importer.AccountImporter`: the same
rules, notes and ledger), one committed batch at a time, without moving the
folders' watermarks. A message the ledger has as imported is never imported
again, so pressing the button twice, or a worker killed half-way and run
again, imports each message once. A message the ledger has as skipped (it
came before the record existed) is decided again and, if it now matches,
its ledger row is replaced by the imported one.

It holds the mailbox's import lock (`rolsync.jobs.lock_key`) while it runs, so
it never writes the ledger at the same time as that mailbox's import.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from redis.exceptions import LockError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rolsync import privacy
from rolsync.crypto import SecretBox
from rolsync.documents import DocumentStore
from rolsync.importer.account import AccountImporter
from rolsync.importer.batch import FolderCounts, ImportResult, _Message
from rolsync.importer.folders import FOLDER_ROLES, known_folders
from rolsync.mail.hosts import HostPolicy
from rolsync.mail.imap import MailboxSession
from rolsync.mailbox_settings import settings_for
from rolsync.models import (
    Candidate,
    Contact,
    Direction,
    FolderState,
    ImportedMessage,
    MailAccount,
    Outcome,
)
from rolsync.oauth import OAuthProvider

log = logging.getLogger(__name__)

MAX_MESSAGES = 5000
"""Messages one backfill reads at most (newest first): a bound on what one press may cost."""
MAX_ADDRESSES = 20


class BackfillError(ValueError):
    """The backfill cannot start; the sentence says why."""

    code = "backfill_refused"

    def __init__(self, sentence: str, hint: str = ""):
        super().__init__(sentence)
        self.hint = hint


class MailboxBusy(BackfillError):
    code = "mailbox_busy"


@dataclass
class _Folder:
    """What the ledger needs of a folder the import has never read (no FolderState yet)."""

    name: str
    uidvalidity: int | None


class BackfillResult(ImportResult):
    """The counts `flask mail import` prints, and how many messages the search found."""

    def __init__(self) -> None:
        super().__init__()
        self.found = 0


class RecordBackfill(AccountImporter):
    """One backfill of one mailbox for a set of addresses."""

    def __init__(self, session: Session, account: MailAccount, *, addresses: list[str], since: date | None,
                 secrets: SecretBox, store: DocumentStore, fetch_batch: int = 50, timeout: float = 30.0,
                 progress: Callable[[int, int], None] | None = None, max_messages: int = MAX_MESSAGES,
                 providers: Mapping[str, OAuthProvider] | None = None, host_policy: HostPolicy | None = None):
        super().__init__(session, account, secrets=secrets, store=store, fetch_batch=fetch_batch, timeout=timeout,
                         progress=progress, max_messages=max_messages, providers=providers, host_policy=host_policy)
        self.addresses = sorted(set(addresses))[:MAX_ADDRESSES]
        self.since = since
        self._skipped: set[str] = set()

    def run(self) -> BackfillResult:
        result = BackfillResult()
        settings = settings_for(self.account, self.secrets, self.providers, self.timeout, host_policy=self.host_policy)
        with MailboxSession(settings) as mailbox:
            folders = known_folders(self.session, self.account.id) or mailbox.find_folders()
            plan = []
            for role in FOLDER_ROLES:
                name = folders.get(role)
                if name is None or privacy.is_private_folder(self.account, name):
                    continue  # a private folder is never read (rolsync.privacy)
                status = mailbox.examine(name)
                plan.append((role, name, status.uidvalidity, mailbox.uids_with_addresses(self.addresses, self.since)))
            result.found = sum(len(uids) for *_, uids in plan)
            budget = self.max_messages
            total = min(result.found, budget)
            done = 0
            self.progress(0, total)
            for role, name, uidvalidity, uids in plan:
                take = uids[-budget:] if budget > 0 else []  # the newest, when there are too many
                result.more = result.more or len(take) < len(uids)
                budget -= len(take)
                counts = result.folders[role] = FolderCounts(name)
                if not take:
                    continue
                mailbox.examine(name)
                state = self.session.scalar(select(FolderState).where(
                    FolderState.account_id == self.account.id, FolderState.role == role))
                folder = state if state is not None and state.name == name else _Folder(name, uidvalidity)
                direction = Direction.RECEIVED if role == "inbox" else Direction.SENT
                for batch, messages in self._parsed(mailbox.fetch_batches(
                        take, batch_size=self.fetch_batch, max_message_bytes=self.max_message_bytes)):
                    try:
                        self._backfill_batch(messages, folder, direction, counts)
                    finally:
                        for message in messages:
                            if message.parsed is not None:
                                message.parsed.discard_spool()
                    done += len(batch)
                    self.progress(done, total)
        return result

    def _backfill_batch(self, messages: list[_Message], folder, direction: Direction,
                        counts: FolderCounts) -> None:
        for attempt in (1, 2):
            try:
                self._refresh_rules()
                self._decide(messages, direction)
                self._replace_skipped(messages)
                self._save(messages, folder)
                self.session.commit()
                break
            except IntegrityError:
                # A note of the same message saved a moment ago by another mailbox's import: decide again.
                self.session.rollback()
                if attempt == 2:
                    raise
            except Exception:
                self.session.rollback()
                raise
        for message in messages:
            counts.count(message.outcome)

    def _in_ledger(self, keys: set[str]) -> set[str]:
        """The keys whose ledger row settles them; a skipped message is decided again (its record may be new)."""
        if not keys:
            return set()
        rows = self.session.execute(select(ImportedMessage.dedupe_key, ImportedMessage.outcome).where(
            ImportedMessage.user_id == self.user_id, ImportedMessage.dedupe_key.in_(sorted(keys)))).all()
        self._skipped = {key for key, outcome in rows if outcome == Outcome.SKIPPED.value}
        return {key for key, outcome in rows if outcome != Outcome.SKIPPED.value}

    def _replace_skipped(self, messages: list[_Message]) -> None:
        """A message skipped before that now imports gets a new ledger row; one still skipped keeps its old one."""
        replace = []
        for message in messages:
            if message.key not in self._skipped or message.outcome is None:
                continue
            if message.outcome.outcome is Outcome.IMPORTED:
                replace.append(message.key)
            else:
                message.outcome = None  # nothing new to say about it
                message.decision = None
        if replace:
            self.session.execute(delete(ImportedMessage).where(
                ImportedMessage.user_id == self.user_id, ImportedMessage.dedupe_key.in_(sorted(replace))))


def record_addresses(record: Contact | Candidate) -> list[str]:
    """The addresses the mailbox is searched for."""
    return sorted(e.address for e in record.emails)


def backfill_record(session: Session, account: MailAccount, record: Contact | Candidate, *, since: date | None,
                    secrets: SecretBox, store: DocumentStore, redis, queue_name: str, lock_seconds: int,
                    lock_wait: float | None = None, fetch_batch: int = 50, timeout: float = 30.0,
                    progress: Callable[[int, int], None] | None = None,
                    providers: Mapping[str, OAuthProvider] | None = None,
                    host_policy: HostPolicy | None = None) -> BackfillResult:
    """Search `account`'s mailbox for `record`'s addresses and import what is found; holds the mailbox's lock."""
    from rolsync.jobs import lock_key

    addresses = record_addresses(record)
    if not addresses:
        raise BackfillError(f"{record.name} has no e-mail address to search for.",
                            "Add an address to the record first.")
    wait = lock_seconds * 2 if lock_wait is None else lock_wait
    lock = redis.lock(lock_key(account.id, queue_name), timeout=lock_seconds, blocking=wait > 0,
                      blocking_timeout=wait or None)
    if not lock.acquire():
        raise MailboxBusy("The mailbox is being imported right now.", "Try again in a minute.")
    renew_every = max(lock_seconds / 3, 1)
    last = time.monotonic()
    report = progress or (lambda done, total: None)

    def renewing(done: int, total: int) -> None:
        nonlocal last
        if time.monotonic() - last >= renew_every:
            lock.reacquire()
            last = time.monotonic()
        report(done, total)

    try:
        return RecordBackfill(session, account, addresses=addresses, since=since, secrets=secrets, store=store,
                              fetch_batch=fetch_batch, timeout=timeout, progress=renewing, providers=providers,
                              host_policy=host_policy).run()
    finally:
        try:
            lock.release()
        except LockError:  # it expired: nothing of ours to release
            log.warning("the import lock of account %s had expired during a backfill", account.id)


# -- in the background: an RQ job per (mailbox, record) ----------------------------------------

JOB_PREFIX = "backfill-"


def job_id_for(queue_name: str, account_id: int, kind: str, record_id: int) -> str:
    """One backfill per mailbox and record at a time (RQ job ids are global to a Redis database)."""
    return f"{queue_name}-{JOB_PREFIX}{account_id}-{kind}-{record_id}"


def enqueue_backfill(queue, account_id: int, kind: str, record_id: int, since: date | None):
    """Queue the backfill unless the same one is queued or running; (job, created).

    A job RQ lists as started while nobody holds the mailbox's lock was
    abandoned by a worker that died: it is replaced (the backfill is idempotent).
    """
    from rq import Retry
    from rq.exceptions import DuplicateJobError, NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.registry import StartedJobRegistry

    from rolsync.jobs import ACTIVE_STATUSES, lock_key

    job_id = job_id_for(queue.name, account_id, kind, record_id)
    try:
        existing = Job.fetch(job_id, connection=queue.connection)
        status = existing.get_status(refresh=True)
        abandoned = status == JobStatus.STARTED and not queue.connection.exists(lock_key(account_id, queue.name))
        if status in ACTIVE_STATUSES and not abandoned:
            return existing, False
        if abandoned:
            StartedJobRegistry(queue=queue).remove_executions(existing)
        existing.delete()
    except NoSuchJobError:
        pass
    try:
        job = queue.enqueue(backfill_job, account_id, kind, record_id, since.isoformat() if since else None,
                            job_id=job_id, unique=True, description=f"past mail of {kind} {record_id}",
                            result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600, retry=Retry(max=3, interval=[1, 5, 30]))
    except DuplicateJobError:
        return Job.fetch(job_id, connection=queue.connection), False
    return job, True


def backfill_job(account_id: int, kind: str, record_id: int, since: str | None = None):
    """Import a record's past mail from one mailbox (ids only: nothing secret in the job's arguments)."""
    from rq import Retry, get_current_job

    from rolsync import resources
    from rolsync.extensions import db
    from rolsync.jobs import _after_fork, _get_app
    from rolsync.records import RecordNotFound, get_record

    app = _get_app()
    with app.app_context():
        _after_fork(db)
        svc = resources.get()
        job = get_current_job()
        try:
            account = db.session.get(MailAccount, account_id)
            try:
                record = get_record(db.session, kind, record_id)
            except RecordNotFound:
                return {"skipped": "the record is gone"}
            if account is None:
                return {"skipped": "the mailbox is gone"}

            def progress(done: int, total: int) -> None:
                if job is not None:
                    job.meta["progress"] = {"done": done, "total": total}
                    job.save_meta()

            config = app.config
            try:
                result = backfill_record(
                    db.session, account, record, since=date.fromisoformat(since) if since else None,
                    secrets=svc.secrets, store=svc.documents, redis=svc.redis, queue_name=svc.queue.name,
                    lock_seconds=config["IMPORT_LOCK_SECONDS"], lock_wait=0,
                    fetch_batch=config["IMPORT_FETCH_BATCH"], timeout=config["IMAP_TIMEOUT"], progress=progress,
                    providers=svc.oauth_providers, host_policy=svc.host_policy)
            except MailboxBusy:
                log.info("account %s is being imported; the backfill waits for it", account_id)
                return Retry(max=10, interval=5)
            return {**result.as_json(), "found": result.found}
        finally:
            db.session.remove()


@dataclass
class BackfillState:
    """`state` as `rolsync.job_state.JobState` says it; `counts` of the last finished run."""

    state: str
    done: int | None = None
    total: int | None = None
    counts: dict | None = None
    error: bool = False

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def label(self) -> str:
        from rolsync.job_state import STATE_LABELS

        return {"running": "Importing past e-mails"}.get(self.state, STATE_LABELS.get(self.state, self.state))

    def as_json(self) -> dict:
        return {"state": self.state, "active": self.active, "label": self.label, "done": self.done,
                "total": self.total}


def backfill_state(redis, queue_name: str, account_id: int, kind: str, record_id: int) -> BackfillState:
    """Where the record's backfill from this mailbox stands, for the record page's progress bar."""
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from rolsync.job_state import _STATES

    try:
        job = Job.fetch(job_id_for(queue_name, account_id, kind, record_id), connection=redis)
        status = job.get_status(refresh=False)
        progress = (job.meta or {}).get("progress") or {}
        state = _STATES.get(status, "idle") if status else "idle"
        counts = job.return_value() if state == "finished" else None
    except NoSuchJobError:
        return BackfillState("idle")
    except RedisError:
        log.warning("cannot read the backfill job of account %s from Redis", account_id, exc_info=True)
        return BackfillState("unknown")
    if state in ("queued", "running"):
        return BackfillState(state, progress.get("done"), progress.get("total"))
    return BackfillState(state, counts=counts if isinstance(counts, dict) else None, error=state == "failed")


# -- how far back the first import reaches ---------------------------------------------------


def first_run_plan(session: Session, account: MailAccount | None) -> list[str]:
    """What the mailbox's first import will take, folder by folder, in words; [] once it has started.

    "Inbox: the newest 100 messages", "Sent: every message since 1 March 2024".
    """
    from rolsync.labels import day_label
    from rolsync.rules.store import active_rules

    if account is None:
        return []
    started = session.scalar(select(FolderState.id).where(FolderState.account_id == account.id,
                                                          FolderState.uidvalidity.is_not(None)).limit(1))
    if started is not None:
        return []
    rules = active_rules(session)
    plan = []
    for role, label in (("inbox", "Inbox"), ("sent", "Sent")):
        since = rules.first_run_since(role)
        if since is not None:
            plan.append(f"{label}: every message since {day_label(since.isoformat())}")
            continue
        limit = rules.first_run_limit(role)
        plan.append(f"{label}: " + ("nothing" if limit == 0 else "the newest message" if limit == 1
                                    else f"the newest {limit} messages"))
    return plan
