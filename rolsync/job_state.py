"""Where a mailbox's import stands right now: its RQ job's state and progress, read for the panel."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from rolsync import jobs
from rolsync.models import MailAccount

log = logging.getLogger(__name__)

_STATES = {
    JobStatus.CREATED: "queued",
    JobStatus.QUEUED: "queued",
    JobStatus.DEFERRED: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.STARTED: "running",
    JobStatus.FINISHED: "finished",
    JobStatus.FAILED: "failed",
    JobStatus.STOPPED: "failed",
    JobStatus.CANCELED: "failed",
}

STATE_LABELS = {
    "idle": "Not running",
    "queued": "Waiting for a worker",
    "running": "Importing",
    "finished": "Finished",
    "failed": "Stopped with an error",
    "unknown": "Unknown (the job queue cannot be reached)",
}


@dataclass
class JobState:
    """`state` is idle, queued, running, finished, failed or unknown; done/total while running."""

    state: str
    done: int | None = None
    total: int | None = None

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    def as_json(self) -> dict:
        return {**asdict(self), "active": self.active, "label": self.label}


def job_state(redis: Redis, account_id: int) -> JobState:
    """The state of the account's import job (its id is `jobs.job_id_for`), with job.meta["progress"]."""
    try:
        job = Job.fetch(jobs.job_id_for(account_id), connection=redis)
        status = job.get_status(refresh=False)
        progress = (job.meta or {}).get("progress") or {}
    except NoSuchJobError:
        return JobState("idle")
    except RedisError:
        log.warning("cannot read the import job of account %s from Redis", account_id, exc_info=True)
        return JobState("unknown")
    state = _STATES.get(status, "idle") if status else "idle"
    if state in ("queued", "running"):
        return JobState(state, progress.get("done"), progress.get("total"))
    return JobState(state)


def schedule_interval(account: MailAccount, config: dict) -> timedelta:
    """How often the account is imported on the schedule: its own interval, else the deployment's."""
    seconds = getattr(account, "poll_interval_seconds", None) or config.get("POLL_INTERVAL_SECONDS")
    if seconds:
        return timedelta(seconds=seconds)
    return timedelta(minutes=config.get("POLL_INTERVAL_MINUTES") or 5)


def describe_interval(interval: timedelta) -> str:
    """"every 5 minutes", "every minute", "every 30 seconds"."""
    seconds = int(interval.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        hours = seconds // 3600
        return "every hour" if hours == 1 else f"every {hours} hours"
    if seconds % 60 == 0 and seconds >= 60:
        minutes = seconds // 60
        return "every minute" if minutes == 1 else f"every {minutes} minutes"
    return f"every {seconds} seconds"


def next_scheduled_run(account: MailAccount, config: dict, now: datetime) -> datetime | None:
    """Roughly when the schedule takes the account next; None when it is switched off or paused."""
    if not account.enabled or getattr(account, "paused", False):
        return None
    interval = schedule_interval(account, config)
    if account.last_run_at is None:
        return now
    last = account.last_run_at
    if last.tzinfo is None:
        last = last.replace(tzinfo=now.tzinfo)
    return max(now, last + interval)
