"""Where an RQ job stands, read from Redis in one place: an import's state and progress, a preview's result."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

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
    """`state` is idle, queued, running, finished, failed or unknown; done/total while running.

    `job` is the RQ job read (None when there is none or Redis could not be
    reached), for its result or its error.
    """

    state: str
    done: int | None = None
    total: int | None = None
    job: Job | None = field(default=None, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def error(self) -> str | None:
        """The last line of a failed job's traceback: the exception, without the frames."""
        return last_error(self.job) if self.job is not None and self.state == "failed" else None

    def as_json(self) -> dict:
        return {"state": self.state, "done": self.done, "total": self.total, "active": self.active,
                "label": self.label}


def read_job(redis: Redis, job_id: str) -> JobState:
    """The state of any job by id, with its job.meta["progress"] while queued or running."""
    try:
        job = Job.fetch(job_id, connection=redis)
        status = job.get_status(refresh=False)
        progress = (job.meta or {}).get("progress") or {}
    except NoSuchJobError:
        return JobState("idle")
    except RedisError:
        log.warning("cannot read the job %s from Redis", job_id, exc_info=True)
        return JobState("unknown")
    state = _STATES.get(status, "idle") if status else "idle"
    if state in ("queued", "running"):
        return JobState(state, progress.get("done"), progress.get("total"), job=job)
    return JobState(state, job=job)


def job_state(redis: Redis, account_id: int) -> JobState:
    """The state of the account's import job (its id is `jobs.job_id_for`)."""
    from rolsync import jobs

    return read_job(redis, jobs.job_id_for(account_id))


def last_error(job: Job) -> str | None:
    """The last line of the job's latest failure (the exception and its message), if it failed."""
    latest = job.latest_result()
    lines = (latest.exc_string or "").strip().splitlines()[-1:] if latest else []
    return lines[0] if lines else None
