"""RQ jobs: the import of one mailbox, run by `worker.py`.

Jobs take ids only and open their own app context and database session, so
nothing secret goes into a job's arguments and nothing is shared across the
fork between a worker and its work horse.
"""
from __future__ import annotations

import logging
import time

from flask import Flask
from redis import Redis
from rq import Queue, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.orm import Session

from rolsync.models import MailAccount

log = logging.getLogger(__name__)

ACTIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
LOCK_KEY = "rolsync:import-lock:{account_id}"
# A run hands over to a new job after this long, well inside RQ's job timeout.
RUN_TIME_BUDGET_SECONDS = 600

_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Let jobs run inside this app (the worker's), instead of building one."""
    global _app
    _app = app


def _get_app() -> Flask:
    global _app
    if _app is None:
        from rolsync import create_app

        _app = create_app()
    return _app


def job_id_for(account_id: int) -> str:
    return f"import-account-{account_id}"


def enabled_accounts(session: Session) -> list[MailAccount]:
    return list(session.scalars(select(MailAccount).where(MailAccount.enabled.is_(True)).order_by(MailAccount.id)))


def enqueue_import(queue: Queue, account_id: int) -> tuple[Job, bool]:
    """Queue an import of the account unless one is queued or running; (job, created)."""
    job_id = job_id_for(account_id)
    try:
        existing = Job.fetch(job_id, connection=queue.connection)
        if existing.get_status(refresh=True) in ACTIVE_STATUSES:
            return existing, False
        existing.delete()
    except NoSuchJobError:
        pass
    try:
        job = queue.enqueue(
            import_account_job, account_id, job_id=job_id, unique=True,
            description=f"import mailbox of account {account_id}",
            result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
        )
    except DuplicateJobError:
        # Someone else queued it between our check and our enqueue.
        return Job.fetch(job_id, connection=queue.connection), False
    return job, True


def import_account_job(account_id: int) -> dict:
    """Import an account's new mail; bounded runs until it is caught up or out of time."""
    from rolsync import services
    from rolsync.extensions import db
    from rolsync.importer import ImportResult, import_account

    app = _get_app()
    with app.app_context():
        # A forked work horse must not reuse the parent's database connections.
        db.engine.dispose(close=False)
        svc = services.get()
        job = get_current_job()
        lock = svc.redis.lock(LOCK_KEY.format(account_id=account_id), timeout=RUN_TIME_BUDGET_SECONDS * 3,
                              blocking=False)
        if not lock.acquire():
            log.info("account %s is being imported by another worker; nothing to do", account_id)
            return {"skipped": "another import of this mailbox is running"}
        try:
            account = db.session.get(MailAccount, account_id)
            if account is None or not account.enabled:
                return {"skipped": "the mailbox is gone or switched off"}
            started = time.monotonic()
            total = ImportResult()

            def progress(done: int, count: int) -> None:
                if job is not None:
                    job.meta["progress"] = {"done": done, "total": count}
                    job.save_meta()

            while True:
                result = import_account(
                    db.session, account, secrets=svc.secrets, store=svc.documents,
                    max_messages=app.config["IMPORT_RUN_MESSAGES"], fetch_batch=app.config["IMPORT_FETCH_BATCH"],
                    timeout=app.config["IMAP_TIMEOUT"], job_id=job.id if job else None, progress=progress,
                )
                total.add(result)
                lock.reacquire()
                if not result.more or time.monotonic() - started > RUN_TIME_BUDGET_SECONDS:
                    break
            return {**total.as_json(), "more": total.more}
        finally:
            try:
                lock.release()
            except Exception:  # the lock expired; nothing of ours to release
                log.warning("import lock of account %s had expired", account_id)
            db.session.remove()


def redis_from_url(url: str) -> Redis:
    return Redis.from_url(url)
