"""Run an RQ worker for rolsync's import jobs, and the schedule of imports.

    python worker.py                   work for ever; also run the import schedule
    python worker.py --burst           work through what is queued, then exit
    python worker.py --no-scheduler    work for ever, without the schedule (it runs elsewhere)
    python worker.py --scheduler-only  run only the schedule (one such process per deployment is enough)
    python worker.py --watch           run the IDLE watcher (push): queue a mailbox's import when mail arrives

The schedule is RQ's CronScheduler, in a child process of its own (it installs
signal handlers and blocks), enqueueing `jobs.dispatch_due_imports` every
`SCHEDULE_TICK_SECONDS`; that job queues an import for every mailbox whose
interval has passed. Any number of workers may run this on any number of
machines: the dispatcher's enqueues are no-ops for mailboxes already queued.
The worker itself also runs RQ's scheduler, which starts delayed retries.
In production the schedule runs as a service of its own (deploy/), and the
workers with `--no-scheduler`.

Log lines go to stderr, one per event, as JSON with `ROLSYNC_LOG_FORMAT=json`.

Jobs run in the worker's own process by default (`ROLSYNC_WORKER_CLASS=simple`,
RQ's SimpleWorker): forking a work horse per job costs ~200 ms, four times an
idle poll. `ROLSYNC_WORKER_CLASS=fork` isolates each job in a forked horse.
Both raise `jobs.ImportTimedOut`, which no catch-all can swallow, when a job
outlives its timeout (`ROLSYNC_IMPORT_JOB_TIMEOUT`).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from rq.cron import CronScheduler

from rolsync import create_app, jobs, logs, services
from rolsync.mail.imap import build_ssl_context


def run_schedule() -> int:
    """The CronScheduler loop (the child process)."""
    app = create_app()
    with app.app_context():
        svc = services.get()
        scheduler = CronScheduler(connection=svc.redis, logging_level="INFO")
        scheduler.register(jobs.dispatch_due_imports, queue_name=svc.queue.name,
                           interval=app.config["SCHEDULE_TICK_SECONDS"], result_ttl=600,
                           name="rolsync.dispatch_due_imports")
        # Retention (Privacy page): once a day, in the small hours.
        scheduler.register(jobs.apply_retention_job, queue_name=svc.queue.name, cron="17 3 * * *",
                           result_ttl=86400, name="rolsync.apply_retention")
        scheduler.start()
    return 0


def start_schedule_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--scheduler-only"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", action="store_true", help="work through what is queued, then exit")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--scheduler-only", action="store_true",
                      help="run only the import schedule, no worker")
    role.add_argument("--no-scheduler", action="store_true",
                      help="run the worker without the import schedule (a scheduler runs elsewhere)")
    role.add_argument("--watch", action="store_true",
                      help="run the IDLE watcher (push) instead of a worker (rolsync/watcher.py)")
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("ROLSYNC_LOG_FORMAT") or "text")
    if args.scheduler_only:
        return run_schedule()

    app = create_app()
    if args.watch:
        from rolsync.watcher import run_watcher

        build_ssl_context(None)
        return run_watcher(app)
    jobs.use_app(app)
    # Load the system trust store once here; every forked work horse inherits it.
    build_ssl_context(None)
    schedule = None if args.burst or args.no_scheduler else start_schedule_process()
    try:
        with app.app_context():
            svc = services.get()
            worker_class = jobs.ImportWorker if app.config["WORKER_CLASS"] == "simple" else jobs.ForkingImportWorker
            worker = worker_class([svc.queue], connection=svc.redis)
            worker.work(burst=args.burst, with_scheduler=True)
    finally:
        if schedule is not None and schedule.poll() is None:
            schedule.send_signal(signal.SIGTERM)
            try:
                schedule.wait(timeout=10)
            except subprocess.TimeoutExpired:
                schedule.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
