"""Run an RQ worker for rolsync's import jobs, and the schedule of imports.

    python worker.py            work for ever; also run the import schedule
    python worker.py --burst    work through what is queued, then exit

The schedule is RQ's CronScheduler, in a child process of its own (it installs
signal handlers and blocks), enqueueing `jobs.dispatch_due_imports` every
`SCHEDULE_TICK_SECONDS`; that job queues an import for every mailbox whose
interval has passed. Any number of workers may run this on any number of
machines: the dispatcher's enqueues are no-ops for mailboxes already queued.
The worker itself also runs RQ's scheduler, which starts delayed retries.

Jobs run in the worker's own process by default (`ROLSYNC_WORKER_CLASS=simple`,
RQ's SimpleWorker): forking a work horse per job costs ~200 ms, four times an
idle poll. `ROLSYNC_WORKER_CLASS=fork` isolates each job in a forked horse.
Both raise `jobs.ImportTimedOut`, which no catch-all can swallow, when a job
outlives its timeout (`ROLSYNC_IMPORT_JOB_TIMEOUT`).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys

from rq.cron import CronScheduler

from rolsync import create_app, jobs, resources
from rolsync.mail.imap import build_ssl_context


def run_schedule() -> int:
    """The CronScheduler loop (the child process)."""
    app = create_app()
    with app.app_context():
        svc = resources.get()
        scheduler = CronScheduler(connection=svc.redis, logging_level="INFO")
        scheduler.register(jobs.dispatch_due_imports, queue_name=svc.queue.name,
                           interval=app.config["SCHEDULE_TICK_SECONDS"], result_ttl=600,
                           name="rolsync.dispatch_due_imports")
        scheduler.start()
    return 0


def start_schedule_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--schedule-only"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", action="store_true", help="work through what is queued, then exit")
    parser.add_argument("--schedule-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.schedule_only:
        return run_schedule()

    app = create_app()
    jobs.use_app(app)
    # Load the system trust store once here; every forked work horse inherits it.
    build_ssl_context(None)
    schedule = None if args.burst else start_schedule_process()
    try:
        with app.app_context():
            svc = resources.get()
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
