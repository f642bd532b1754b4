"""RQ jobs: the import of one mailbox, and the dispatcher that schedules imports.

Jobs take ids only and open their own app context and database session, so
nothing secret goes into a job's arguments and nothing is shared across the
fork between a worker and its work horse.

One import per mailbox at a time, on any number of workers and machines:

* the job id is fixed per account (`<queue>-import-account-<id>`), and enqueueing
  while that job is queued, scheduled or running is a no-op;
* the job holds a Redis lock with a token (`rolsync:<queue>:import-lock:<id>`) while it
  imports. A thread started with the job (`LockKeeper`) renews it every third of
  `IMPORT_LOCK_SECONDS`, however long one message takes, so it expires only
  when the process running the job is gone. Renewing and releasing check the
  token in one Redis script: only its owner extends or frees it. A job that
  finds the lock taken does nothing; a job that finds it lost stops;
* a job RQ still lists as started is abandoned only when the worker running it
  has stopped beating (its heartbeat, which the keeper sends with each renewal,
  is older than half of `IMPORT_LOCK_SECONDS`, or its key expired) and nobody
  holds the lock: a slow job is not abandoned. Only then may it be replaced; the import is
  idempotent, so the retry is harmless.

RQ's job timeout raises `ImportTimedOut`, a `BaseException` like
`KeyboardInterrupt` (`ImportDeathPenalty`, set on the worker classes below), so
that no `except Exception` of the import can turn it into a failed message: the
job fails in RQ, visibly.

Failures: transient IMAP trouble (timeouts, dropped connections, throttling)
returns an RQ `Retry` with a growing delay that honours the server's
suggested back-off, a bounded number of times; then the job fails and the
next scheduled run tries again. Authentication failures are not retried:
after `AUTH_FAILURES_BEFORE_PAUSE` in a row the account is paused with an
`auth_failed` warning until the user saves new credentials. Anything else is
re-raised so RQ records it (and, for a job whose worker died, retries it).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from redis import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.lock import Lock
from rq import Queue, Retry, SimpleWorker, Worker, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.timeouts import UnixSignalDeathPenalty
from rq.utils import now, utcformat, utcparse
from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync import logs
from rolsync.mail.parse.limits import ParseLimits
from rolsync.models import MailAccount, utcnow

log = logging.getLogger(__name__)

ACTIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
LOCK_KEY = "rolsync:{queue}:import-lock:{account_id}"
JOB_PREFIX = "import-account-"
# A job whose worker died is retried this many times by RQ (see module doc).
ABANDONED_RETRIES = 3

_app: Flask | None = None


class ImportTimedOut(BaseException):
    """RQ's job timeout. Not an `Exception`: no catch-all of the import may swallow it."""

    def __init__(self, detail: str = "") -> None:
        self.message = ("The import ran longer than its time limit and was stopped; "
                        "the mail it had saved is kept and the next run goes on from there.")
        self.hint = None
        super().__init__(detail or self.message)


class ImportDeathPenalty(UnixSignalDeathPenalty):
    """RQ's SIGALRM job timeout, raising `ImportTimedOut` instead of RQ's `JobTimeoutException`."""

    def __init__(self, timeout: int, exception: Any = None, **kwargs: Any) -> None:
        super().__init__(timeout, ImportTimedOut, **kwargs)


class ImportWorker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in the worker's process) whose job timeout cannot be swallowed."""

    death_penalty_class = ImportDeathPenalty


class ForkingImportWorker(Worker):
    """RQ's forking Worker (a work horse per job) whose job timeout cannot be swallowed."""

    death_penalty_class = ImportDeathPenalty


class ImportLockLost(Exception):
    """The mailbox lock expired or was taken over while this job imported: it stops at once."""

    code = "import_lock_lost"

    def __init__(self, account_id: int) -> None:
        self.message = (f"The import of account {account_id} stopped because it lost the mailbox's lock; "
                        "another import may be running and will carry on.")
        self.hint = None
        super().__init__(self.message)


# Sets a worker's last heartbeat, and lengthens (never shortens) its key's
# expiry; a key that has expired (the worker is gone) is not brought back.
_WORKER_HEARTBEAT = """
local ttl = redis.call('ttl', KEYS[1])
if ttl == -2 then return 0 end
redis.call('hset', KEYS[1], 'last_heartbeat', ARGV[1])
if ttl >= 0 and ttl < tonumber(ARGV[2]) then redis.call('expire', KEYS[1], ARGV[2]) end
return 1
"""


def worker_key(worker_name: str) -> str:
    return f"{Worker.redis_worker_namespace_prefix}{worker_name}"


class LockKeeper:
    """Keeps an import's mailbox lock alive from a thread, for as long as the job runs.

    The import's own pace does not matter: a message that takes ten minutes
    to parse does not let the lock expire. Each renewal checks the token in
    one Redis script (redis-py's `reacquire`), so a lock that expired and was
    taken by another job is never extended; the keeper then marks itself lost
    and `check()` stops the import. It also beats the heart of the RQ worker
    running the job, which is what the dispatcher reads to tell a dead worker
    from a slow one.
    """

    def __init__(self, lock: Lock, seconds: float, redis: Redis, worker_name: str | None = None) -> None:
        self.lock = lock
        self.seconds = seconds
        self.interval = max(seconds / 3, 0.2)
        self.redis = redis
        self.worker_name = worker_name
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-lock-keeper", daemon=True)

    def start(self) -> LockKeeper:
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, account_id: int) -> None:
        if self.lost.is_set():
            raise ImportLockLost(account_id)

    def progress_check(self, account_id: int) -> Callable[[int, int], None]:
        """An import's `progress` callback that only stops it once the lock is lost."""
        return lambda _done, _total: self.check(account_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lock.reacquire()
            except LockNotOwnedError:
                log.error("the import lock %s was lost; stopping the import", self.lock.name)
                self.lost.set()
                return
            except RedisError:
                # Redis hiccup: try again at the next tick, well before the lock expires.
                log.warning("renewing the import lock %s failed", self.lock.name, exc_info=True)
                continue
            self._beat()

    def _beat(self) -> None:
        if self.worker_name is None:
            return
        try:
            self.redis.eval(_WORKER_HEARTBEAT, 1, worker_key(self.worker_name), utcformat(now()),
                            int(self.seconds) + 1)
        except RedisError:
            log.warning("the worker heartbeat of %s failed", self.worker_name, exc_info=True)


def is_abandoned(job: Job, connection: Redis, lock_name: str, stale_after: float) -> bool:
    """A started job whose worker has stopped beating while nobody holds the mailbox's lock.

    A slow job is not abandoned: its keeper renews the lock and the heartbeat.
    """
    if connection.exists(lock_name):
        return False
    if not job.worker_name:
        return True
    beat = connection.hget(worker_key(job.worker_name), "last_heartbeat")
    if beat is None:
        return True  # the worker's key expired: its heartbeat stopped
    return (now() - utcparse(beat.decode() if isinstance(beat, bytes) else beat)).total_seconds() > stale_after


def use_app(app: Flask) -> None:
    """Let jobs run inside this app (the worker's), instead of building one."""
    global _app, _engine_pid
    _app = app
    _engine_pid = os.getpid()


def _get_app() -> Flask:
    global _app
    if _app is None:
        from rolsync import create_app

        _app = create_app()
    return _app


_engine_pid: int | None = None


def _after_fork(db) -> None:
    """A forked work horse must not reuse its parent's database connections."""
    global _engine_pid
    if _engine_pid is not None and _engine_pid != os.getpid():
        db.engine.dispose(close=False)
    _engine_pid = os.getpid()


def _queue_name(queue_name: str | None) -> str:
    return queue_name or (current_app.config["RQ_QUEUE"] if has_app_context() else "rolsync")


def job_id_for(account_id: int, queue_name: str | None = None) -> str:
    """The fixed job id of an account's import. RQ job ids are global to a Redis
    database, so the queue's name is part of it: two deployments (or test runs)
    sharing a Redis never touch each other's jobs."""
    return f"{_queue_name(queue_name)}-{JOB_PREFIX}{account_id}"


def lock_key(account_id: int, queue_name: str | None = None) -> str:
    return LOCK_KEY.format(queue=_queue_name(queue_name), account_id=account_id)


def enabled_accounts(session: Session) -> list[MailAccount]:
    return list(session.scalars(
        select(MailAccount)
        .where(MailAccount.enabled.is_(True), MailAccount.paused.is_(False))
        .order_by(MailAccount.id)
    ))


def enqueue_import(queue: Queue, account_id: int, *, manual: bool = False) -> tuple[Job, bool]:
    """Queue an import of the account unless one is queued or running; (job, created).

    `manual` (Import now): the import runs even when automatic sync is off, which is
    how a "manual only" mailbox is ever imported.
    """
    job_id = job_id_for(account_id, queue.name)
    try:
        existing = Job.fetch(job_id, connection=queue.connection)
        status = existing.get_status(refresh=True)
        # The keeper beats every third of the lock's life: half of it without a beat is a missed beat.
        stale_after = (current_app.config["IMPORT_LOCK_SECONDS"] if has_app_context() else 60) / 2
        abandoned = status == JobStatus.STARTED and is_abandoned(
            existing, queue.connection, lock_key(account_id, queue.name), stale_after)
        if status in ACTIVE_STATUSES and not abandoned:
            return existing, False
        if abandoned:
            # Its worker died (no heartbeat, no lock); RQ would notice only later.
            StartedJobRegistry(queue=queue).remove_executions(existing)
        existing.delete()
    except NoSuchJobError:
        pass
    delays = current_app.config["IMPORT_RETRY_DELAYS"] if has_app_context() else [30, 120, 600]
    try:
        job = queue.enqueue(
            import_account_job, *((account_id, True) if manual else (account_id,)), job_id=job_id, unique=True,
            description=f"import mailbox of account {account_id}",
            result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
            retry=Retry(max=ABANDONED_RETRIES, interval=delays),
        )
    except DuplicateJobError:
        # Someone else queued it between our check and our enqueue.
        return Job.fetch(job_id, connection=queue.connection), False
    return job, True


def import_account_job(account_id: int, manual: bool = False) -> dict | Retry:
    """Import an account's new mail: bounded runs until caught up or out of time (`manual`: asked for by a person)."""
    from rolsync import services
    from rolsync.extensions import db

    app = _get_app()
    with app.app_context(), logs.import_context(mailbox=account_id):
        _after_fork(db)
        svc = services.get()
        job = get_current_job()
        seconds = app.config["IMPORT_LOCK_SECONDS"]
        # Not thread-local: the keeper's thread renews the token this thread took.
        lock = svc.redis.lock(lock_key(account_id, svc.queue.name), timeout=seconds, blocking=False,
                              thread_local=False)
        if not lock.acquire():
            log.info("account %s is being imported by another worker; nothing to do", account_id)
            return {"skipped": "another import of this mailbox is running"}
        keeper = LockKeeper(lock, seconds, svc.redis, job.worker_name if job is not None else None).start()
        try:
            return _import_with_lock(app, db.session, svc, job, account_id, keeper, manual)
        finally:
            keeper.stop()
            try:
                lock.release()  # only if the token is still ours (one Redis script)
            except LockError:
                log.warning("import lock of account %s had expired or was taken over", account_id)
            db.session.remove()


def _import_with_lock(app, session, svc, job, account_id: int, keeper: LockKeeper,
                      manual: bool = False) -> dict | Retry:
    from rolsync import metrics
    from rolsync.importer import ImportResult, UidValidityUnstable, import_account
    from rolsync.mail.errors import AuthFailed, MailError

    account = session.get(MailAccount, account_id)
    if account is None or not (account.enabled or manual):
        return {"skipped": "the mailbox is gone or switched off"}
    if account.paused:
        return {"skipped": f"the mailbox is paused: {account.paused_reason}"}
    config = app.config

    def progress(done: int, total: int) -> None:
        keeper.check(account_id)  # the lock was lost: stop, another import may own the mailbox now
        if job is not None:
            job.meta["progress"] = {"done": done, "total": total}
            job.save_meta()

    deadline = time.monotonic() + config["IMPORT_RUN_SECONDS"]
    total = ImportResult()
    try:
        while True:
            result = metrics.observed(svc.redis, svc.queue.name, lambda: import_account(
                session, account, secrets=svc.secrets, store=svc.documents,
                max_messages=config["IMPORT_RUN_MESSAGES"], fetch_batch=config["IMPORT_FETCH_BATCH"],
                timeout=config["IMAP_TIMEOUT"], job_id=job.id if job else None, progress=progress,
                deadline=deadline, uidvalidity_limit=config["UIDVALIDITY_CHANGES_BEFORE_PAUSE"],
                auth_failure_limit=config["AUTH_FAILURES_BEFORE_PAUSE"], limits=ParseLimits.from_config(config),
                max_message_bytes=config["LIMIT_MESSAGE_BYTES"],
            ))
            total.add(result)
            progress(0, 0)
            if not result.more or time.monotonic() > deadline:
                break
    except (AuthFailed, UidValidityUnstable, ImportLockLost):
        # Counted (and the account paused) by the importer; retrying would only repeat it.
        _no_rq_retry(job)
        raise
    except MailError as exc:
        if not exc.transient:
            _no_rq_retry(job)
            raise
        delays = config["IMPORT_RETRY_DELAYS"]
        attempt = (job.number_of_retries or 0) if job is not None else 0
        delay = max(delays[min(attempt, len(delays) - 1)], getattr(exc, "retry_after", None) or 0)
        log.warning("account %s: %s; retrying in %ss", account_id, exc.code, delay)
        return Retry(max=len(delays), interval=delay)
    if total.more:
        # Out of time with mail left: continue in a fresh job once this one has ended.
        queue = svc.queue
        queue.enqueue_in(timedelta(seconds=1), continue_import_job, account_id,
                         job_id=f"{job_id_for(account_id, queue.name)}-next", result_ttl=600)
    return {**total.as_json(), "more": total.more}


def continue_import_job(account_id: int) -> str:
    """Hand an unfinished import over to a new import job."""
    from rolsync import services

    app = _get_app()
    with app.app_context():
        job, _created = enqueue_import(services.get().queue, account_id)
        return job.id


def _no_rq_retry(job: Job | None) -> None:
    """This failure is not the worker's: do not let RQ's crash retries repeat it."""
    if job is not None:
        job.retries_left = 0


def due_accounts(session: Session, default_interval: int, watched: frozenset[int] | set[int] = frozenset(),
                 safety_interval: int = 0) -> list[MailAccount]:
    """Enabled, unpaused accounts whose last run is at least their interval ago.

    `watched` accounts (a watcher holds them in IDLE: rolsync.push) are polled
    only every `safety_interval`, in case a notification went missing.
    """
    now = utcnow()
    due = []
    for account in enabled_accounts(session):
        seconds = account.poll_interval_seconds or default_interval
        if account.id in watched:
            seconds = max(seconds, safety_interval)
        interval = timedelta(seconds=seconds)
        last = account.last_run_at
        if last is None or now - (last if last.tzinfo else last.replace(tzinfo=now.tzinfo)) >= interval:
            due.append(account)
    return due


def dispatch_due_imports() -> list[str]:
    """The scheduled job: queue an import for every account that is due, and raise or clear stall alarms.

    Every worker's scheduler may run this; enqueue_import makes repeats no-ops,
    and check_stalls keeps one open alarm per mailbox owner.
    """
    from rolsync import push, services
    from rolsync.extensions import db

    app = _get_app()
    with app.app_context():
        _after_fork(db)
        try:
            queued = []
            queue = services.get().queue
            ids = db.session.scalars(select(MailAccount.id).where(MailAccount.enabled.is_(True))).all()
            live = push.live_states(queue.connection, queue.name, ids)
            # Only a mailbox whose Sent folder is watched too waits for the safety interval.
            watched = {account_id for account_id, what in live.items() if what == push.LIVE_ALL}
            for account in due_accounts(db.session, app.config["POLL_INTERVAL_SECONDS"], watched,
                                        app.config["PUSH_SAFETY_POLL_SECONDS"]):
                job, created = enqueue_import(queue, account.id)
                if created:
                    queued.append(job.id)
            # After the enqueues, so a failing check never holds up an import; then re-raised like any failure.
            from rolsync.mailboxes import check_stalls

            check_stalls(db.session, app.config)
            return queued
        finally:
            db.session.remove()


def apply_retention_job() -> dict | None:
    """The daily job: delete imported notes and documents older than the admins' retention limit.

    Returns the counts (None when there is no limit or nothing was old enough); re-raises failures.
    """
    from rolsync import retention, services
    from rolsync.extensions import db

    app = _get_app()
    with app.app_context():
        _after_fork(db)
        try:
            audit = retention.apply_retention(db.session, services.get().documents)
            return dict(audit.counts) if audit else None
        finally:
            db.session.remove()


@dataclass
class QueueEntry:
    job_id: str
    account_id: int | None
    status: str
    enqueued_at: object
    started_at: object
    ended_at: object
    progress: dict | None
    error: str | None


def queue_overview(queue: Queue) -> dict[str, list[QueueEntry]]:
    """Queued, scheduled, running and failed import jobs, for the admin panel."""
    groups = {
        "queued": queue.get_job_ids(),
        "scheduled": ScheduledJobRegistry(queue=queue).get_job_ids(),
        "running": StartedJobRegistry(queue=queue).get_job_ids(),
        "failed": FailedJobRegistry(queue=queue).get_job_ids(),
    }
    overview: dict[str, list[QueueEntry]] = {}
    for name, ids in groups.items():
        entries = []
        prefix = f"{queue.name}-{JOB_PREFIX}"
        for job in Job.fetch_many([i for i in ids if i.startswith(prefix)], connection=queue.connection):
            if job is None:
                continue
            tail = job.id.removeprefix(prefix).split("-")[0]
            error = None
            if name == "failed":
                latest = job.latest_result()
                error = (latest.exc_string or "").strip().splitlines()[-1:] if latest else None
                error = error[0] if error else None
            entries.append(QueueEntry(job.id, int(tail) if tail.isdigit() else None, name, job.enqueued_at,
                                      job.started_at, job.ended_at, job.meta.get("progress"), error))
        overview[name] = entries
    return overview
