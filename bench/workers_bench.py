"""Benchmark: imports and polls per second with 1, 2 and 4 workers over 200 mailboxes on PostgreSQL.

    python bench/workers_bench.py [--mailboxes 200] [--messages 10] [--workers 1,2,4]

For each number of workers: a fresh PostgreSQL database, the mailboxes'
accounts, that many `python worker.py --no-scheduler` processes (started and
registered before the clock starts), then

1. import: every mailbox's import job queued at once; messages per second
   until every run has finished;
2. poll: the same again with nothing new; polls (finished runs) per second.

It starts its own Dovecot (devkit/dovecot.py), uses Redis database 12
(ROLSYNC_BENCH_REDIS) and PostgreSQL at ROLSYNC_BENCH_POSTGRES. Figures are
printed, never asserted; the exit status is non-zero only when an import was
wrong (a note missing or doubled).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
from support import (  # noqa: E402
    REDIS_URL,
    ROOT,
    add_account,
    add_mailbox,
    create_database,
    drop_database,
    load_people,
    make_app,
)

SENDER = "filler@client.example"


def _finished_runs(session) -> int:
    from sqlalchemy import func, select

    from rolsync.models import ImportRun

    session.rollback()  # see the workers' commits
    return session.scalar(select(func.count()).select_from(ImportRun).where(ImportRun.finished_at.is_not(None)))


def _start_workers(app, count: int, work: Path) -> list[subprocess.Popen]:
    from rq import Worker

    from rolsync import resources

    env = {**os.environ, "ROLSYNC_LOG_FORMAT": "text"}
    processes = []
    for n in range(count):
        log = open(work / f"worker-{count}-{n}.log", "w")
        processes.append(subprocess.Popen([sys.executable, "worker.py", "--no-scheduler"], cwd=ROOT, env=env,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    with app.app_context():
        svc = resources.get()
        deadline = time.monotonic() + 120
        while len(Worker.all(connection=svc.redis, queue=svc.queue)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start; see their logs in " + str(work))
            time.sleep(0.2)
    return processes


def _stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _round(app, account_ids: list[int], expected_runs: int) -> float:
    """Queue every account's import; seconds until `expected_runs` runs in all have finished."""
    from rolsync import jobs, resources
    from rolsync.extensions import db

    with app.app_context():
        queue = resources.get().queue
        start = time.perf_counter()
        for account_id in account_ids:
            jobs.enqueue_import(queue, account_id)
        while _finished_runs(db.session) < expected_runs:
            time.sleep(0.05)
        return time.perf_counter() - start


def measure(mailboxes: list, workers: int, messages: int, work: Path) -> dict:
    from corpus import Person
    from sqlalchemy import func, select

    from rolsync.extensions import db
    from rolsync.models import Note

    url = create_database("postgresql", work)
    try:
        app = make_app(url, work / f"w{workers}")
        with app.app_context():
            load_people(db.session, [Person("contact", "Filler Sender", SENDER)])
            db.engine.dispose()
        rules = {"first_run": {"inbox": messages, "sent": messages}}
        account_ids = [add_account(app, mailbox, rules if i == 0 else None) for i, mailbox in enumerate(mailboxes)]
        processes = _start_workers(app, workers, work)
        try:
            imported_s = _round(app, account_ids, len(account_ids))
            polled_s = _round(app, account_ids, 2 * len(account_ids))
        finally:
            _stop_workers(processes)
        with app.app_context():
            notes = db.session.scalar(select(func.count()).select_from(Note))
            distinct = db.session.scalar(select(func.count(func.distinct(Note.message_id))))
            db.engine.dispose()
        total = len(mailboxes) * messages
        return {"workers": workers, "messages": total, "import_s": imported_s, "poll_s": polled_s,
                "messages_per_s": total / imported_s, "polls_per_s": len(mailboxes) / polled_s,
                "correct": notes == total and distinct == total}
    finally:
        drop_database(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="new messages in each mailbox's Inbox")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]

    from devkit.dovecot import DovecotServer

    work = Path(tempfile.mkdtemp(prefix="rolsync-workers-bench-"))
    os.environ.setdefault("ROLSYNC_BENCH_REDIS", REDIS_URL)
    server = DovecotServer(work / "dovecot")
    server.start()
    results = []
    try:
        started = time.perf_counter()
        mailboxes = []
        for i in range(args.mailboxes):
            user = f"worker-bench-{i}@{corpus.CONSULTANT_DOMAIN}"
            # Distinct Message-IDs per mailbox: each message is its own note.
            mail = [raw.replace(b"@bench.example>", f".{i}@bench.example>".encode())
                    for raw in corpus.filler(args.messages, user, SENDER)]
            mailboxes.append(add_mailbox(server, user, {"INBOX": mail, "Sent": []}))
        print(f"{args.mailboxes} mailboxes of {args.messages} messages on the test Dovecot "
              f"({time.perf_counter() - started:.0f} s to build)", file=sys.stderr, flush=True)
        for count in counts:
            result = measure(mailboxes, count, args.messages, work)
            results.append(result)
            print(f"  {count} worker(s) done: {result}", file=sys.stderr, flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    cores = os.cpu_count()
    print()
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"Workers over {args.mailboxes} mailboxes on PostgreSQL; this machine has {cores} cores, shared by the "
          f"workers, PostgreSQL, Redis, Dovecot and this script (load average at the end: {load})")
    print(f"{'workers':>8} {'messages/s':>11} {'import (s)':>11} {'polls/s':>8} {'poll round (s)':>15} {'correct':>8}")
    for r in results:
        print(f"{r['workers']:>8} {r['messages_per_s']:>11.1f} {r['import_s']:>11.1f} {r['polls_per_s']:>8.1f} "
              f"{r['poll_s']:>15.1f} {'yes' if r['correct'] else 'NO':>8}")
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
