"""RQ jobs: the import of one mailbox, the dispatcher that schedules imports, and the rules preview.

Jobs take ids only and open their own app context and database session, so
nothing secret goes into a job's arguments and nothing is shared across the
fork between a worker and its work horse.

One import per mailbox at a time, on any number of workers and machines:

* the job id is fixed per account (`<queue>-import-account-<id>`), and enqueueing
  while that job is queued, scheduled or running is a no-op;
* the job holds a Redis lock with a token (`rolsync:<queue>:import-lock:<id>`) while it
  imports, renewed as messages are saved and expiring `IMPORT_LOCK_SECONDS`
  after a crash; a job that finds the lock taken does nothing;
* a job RQ still lists as started while nobody holds the lock is abandoned (its
  worker died), and may be replaced; the import is idempotent, so the retry is
  harmless.

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
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app, has_app_context
from rq import Queue, Retry, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from rolsync.job_state import last_error
from rolsync.models import MailAccount
from rolsync.schedule import due_accounts

log = logging.getLogger(__name__)

ACTIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
LOCK_KEY = "rolsync:{queue}:import-lock:{account_id}"
JOB_PREFIX = "import-account-"
# A job whose worker died is retried this many times by RQ (see module doc).
ABANDONED_RETRIES = 3

_app: Flask | None = None


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


def enqueue_import(queue: Queue, account_id: int) -> tuple[Job, bool]:
    """Queue an import of the account unless one is queued or running; (job, created)."""
    job_id = job_id_for(account_id, queue.name)
    try:
        existing = Job.fetch(job_id, connection=queue.connection)
        status = existing.get_status(refresh=True)
        abandoned = status == JobStatus.STARTED and not queue.connection.exists(lock_key(account_id, queue.name))
        if status in ACTIVE_STATUSES and not abandoned:
            return existing, False
        if abandoned:
            # Its worker died (the lock expired); RQ would notice only later.
            StartedJobRegistry(queue=queue).remove_executions(existing)
        existing.delete()
    except NoSuchJobError:
        pass
    delays = current_app.config["IMPORT_RETRY_DELAYS"] if has_app_context() else [30, 120, 600]
    try:
        job = queue.enqueue(
            import_account_job, account_id, job_id=job_id, unique=True,
            description=f"import mailbox of account {account_id}",
            result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
            retry=Retry(max=ABANDONED_RETRIES, interval=delays),
        )
    except DuplicateJobError:
        # Someone else queued it between our check and our enqueue.
        return Job.fetch(job_id, connection=queue.connection), False
    return job, True


def import_account_job(account_id: int) -> dict | Retry:
    """Import an account's new mail: bounded runs until caught up or out of time."""
    from rolsync import resources
    from rolsync.extensions import db

    app = _get_app()
    with app.app_context():
        _after_fork(db)
        svc = resources.get()
        job = get_current_job()
        lock = svc.redis.lock(lock_key(account_id, svc.queue.name), timeout=app.config["IMPORT_LOCK_SECONDS"],
                              blocking=False)
        if not lock.acquire():
            log.info("account %s is being imported by another worker; nothing to do", account_id)
            return {"skipped": "another import of this mailbox is running"}
        try:
            return _import_with_lock(app, db.session, svc, job, account_id, lock)
        finally:
            try:
                lock.release()
            except Exception:  # it expired: a renewal came too late, nothing of ours to release
                log.warning("import lock of account %s had expired", account_id)
            db.session.remove()


def _import_with_lock(app, session, svc, job, account_id: int, lock) -> dict | Retry:
    from rolsync.importer import ImportResult, UidValidityUnstable, import_account
    from rolsync.mail.errors import AuthFailed, MailError

    account = session.get(MailAccount, account_id)
    if account is None or not account.enabled:
        return {"skipped": "the mailbox is gone or switched off"}
    if account.paused:
        return {"skipped": f"the mailbox is paused: {account.paused_reason}"}
    config = app.config
    renew_every = max(config["IMPORT_LOCK_SECONDS"] / 3, 1)
    last_renewal = time.monotonic()

    def progress(done: int, total: int) -> None:
        nonlocal last_renewal
        if time.monotonic() - last_renewal >= renew_every:
            lock.reacquire()  # raises LockNotOwnedError if it expired: stop, another may own it now
            last_renewal = time.monotonic()
        if job is not None:
            job.meta["progress"] = {"done": done, "total": total}
            job.save_meta()

    deadline = time.monotonic() + config["IMPORT_RUN_SECONDS"]
    total = ImportResult()
    try:
        while True:
            result = import_account(
                session, account, secrets=svc.secrets, store=svc.documents, providers=svc.oauth_providers,
                max_messages=config["IMPORT_RUN_MESSAGES"], fetch_batch=config["IMPORT_FETCH_BATCH"],
                timeout=config["IMAP_TIMEOUT"], job_id=job.id if job else None, progress=progress,
                deadline=deadline, uidvalidity_limit=config["UIDVALIDITY_CHANGES_BEFORE_PAUSE"],
                auth_failure_limit=config["AUTH_FAILURES_BEFORE_PAUSE"],
            )
            total.add(result)
            progress(0, 0)
            if not result.more or time.monotonic() > deadline:
                break
    except (AuthFailed, UidValidityUnstable):
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
    from rolsync import resources

    app = _get_app()
    with app.app_context():
        job, _created = enqueue_import(resources.get().queue, account_id)
        return job.id


def _no_rq_retry(job: Job | None) -> None:
    """This failure is not the worker's: do not let RQ's crash retries repeat it."""
    if job is not None:
        job.retries_left = 0


def preview_job(account_id: int, draft_definition: dict, count: int) -> list[dict]:
    """Preview the newest messages of a mailbox with the draft rules (the rules page's "Preview")."""
    from rolsync import preview, resources
    from rolsync.extensions import db
    from rolsync.rules import CompiledRules
    from rolsync.rules.store import active_rules

    app = _get_app()
    with app.app_context():
        try:
            account = db.session.get(MailAccount, account_id)
            if account is None:
                raise LookupError(f"no mailbox with id {account_id}")
            svc = resources.get()
            messages = preview.fetch_recent(account, svc.secrets, count, timeout=app.config["IMAP_TIMEOUT"],
                                            providers=svc.oauth_providers)
            rows = preview.preview(db.session, account, messages, active_rules(db.session),
                                   CompiledRules(draft_definition))
            return [row.as_json() for row in rows]
        finally:
            db.session.remove()


def dispatch_due_imports() -> list[str]:
    """The scheduled job: queue an import for every account that is due.

    Every worker's scheduler may run this; enqueue_import makes repeats no-ops.
    """
    from rolsync import resources
    from rolsync.extensions import db

    app = _get_app()
    with app.app_context():
        _after_fork(db)
        try:
            queued = []
            for account in due_accounts(db.session, app.config["POLL_INTERVAL_SECONDS"]):
                job, created = enqueue_import(resources.get().queue, account.id)
                if created:
                    queued.append(job.id)
            return queued
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
            error = last_error(job) if name == "failed" else None
            entries.append(QueueEntry(job.id, int(tail) if tail.isdigit() else None, name, job.enqueued_at,
                                      job.started_at, job.ended_at, job.meta.get("progress"), error))
        overview[name] = entries
    return overview
