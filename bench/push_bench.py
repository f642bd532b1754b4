"""The push benchmark: mail-to-note latency with the IDLE watcher, and 1,000 idle mailboxes in one watcher.

    python bench/push_bench.py [--mailboxes 50] [--deliveries 200] [--idle 1000] [--only latency,idle]
                               [--database postgresql|sqlite]

1. latency: its own Dovecot with `--mailboxes` logins, each with a first run done;
   one `python worker.py --watch` and two `python worker.py`; then `--deliveries`
   messages APPENDed to random mailboxes (one every 0.3 s); for each, the time from
   the APPEND's completion to its note's row (both clocks are this machine's).
   Printed beside what the schedule alone gives.
2. idle: `--idle` mailboxes on a minimal IDLE-only server (bench/idle_imap.py: 1,000
   Dovecot IMAP processes would not fit this machine), one watcher process holding
   them all: how long until all are in IDLE, its CPU over 30 s with nothing arriving,
   its RSS, and how long from the server's `* 1 EXISTS` to the import job in Redis.

Figures are printed, never asserted. Uses Redis database 12 (ROLSYNC_BENCH_REDIS)
and PostgreSQL at ROLSYNC_BENCH_POSTGRES like bench/run.py.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import (  # noqa: E402
    ROOT,
    add_account,
    add_mailbox,
    create_database,
    drop_database,
    load_people,
    make_app,
)

SENDER = "applicant@candidates.example"


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def _start(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "worker.py", *args], cwd=ROOT, env=dict(os.environ),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, 15)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def _live_count(app, ids: list[int]) -> int:
    from rolsync import push, resources

    with app.app_context():
        svc = resources.get()
        return len(push.live_states(svc.redis, svc.queue.name, ids))


def _wait_live(app, ids: list[int], timeout: float) -> float:
    started = time.monotonic()
    while _live_count(app, ids) < len(ids):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {_live_count(app, ids)} of {len(ids)} mailboxes in IDLE after {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - started


def measure_latency(work: Path, database: str, mailboxes: int, deliveries: int) -> None:
    from corpus import Person

    from devkit.builders import build_message
    from devkit.dovecot import DovecotServer
    from rolsync import jobs
    from rolsync.extensions import db
    from rolsync.models import Note

    server = DovecotServer(work / "dovecot")
    server.start()
    url = create_database(database, work)
    processes: list[subprocess.Popen] = []
    try:
        app = make_app(url, work, ROLSYNC_PUSH_REFRESH_SECONDS="5", ROLSYNC_SCHEDULE_TICK_SECONDS="30")
        poll_minutes = app.config["POLL_INTERVAL_SECONDS"] / 60
        with app.app_context():
            load_people(db.session, [Person("candidate", "Ann Applicant", SENDER)])
        boxes = [add_mailbox(server, f"push{i}@agency.example", {"INBOX": [], "Sent": []})
                 for i in range(mailboxes)]
        ids = [add_account(app, box) for box in boxes]
        jobs.use_app(app)
        for account_id in ids:
            jobs.import_account_job(account_id)  # the first run: the schedule then waits its interval
        processes = [_start("--watch", log=work / "watcher.log"), _start(log=work / "worker1.log"),
                     _start(log=work / "worker2.log")]
        took = _wait_live(app, ids, 120)
        print(f"latency: {mailboxes} mailboxes in IDLE after {took:.1f}s; delivering {deliveries} messages")
        arrived: dict[str, float] = {}
        for n in range(deliveries):
            box = random.choice(boxes)
            subject = f"Push bench {n:04}"
            with box.client() as client:
                client.append("INBOX", build_message(from_=SENDER, to=box.username, subject=subject, text="CV"))
                arrived[subject] = time.time()
            time.sleep(0.3)
        deadline = time.monotonic() + 300
        with app.app_context():
            while time.monotonic() < deadline:
                db.session.rollback()
                rows = dict(db.session.execute(db.select(Note.subject, Note.created_at)).tuples().all())
                if len(rows) >= deliveries:
                    break
                time.sleep(0.5)
        latencies = [(created.replace(tzinfo=created.tzinfo or timezone.utc).timestamp() - arrived[subject])
                     for subject, created in rows.items() if subject in arrived]
        missing = deliveries - len(latencies)
        print(f"  mail-to-note with push: p50 {_percentile(latencies, 50):.2f}s  p99 {_percentile(latencies, 99):.2f}s"
              f"  max {max(latencies):.2f}s  mean {statistics.mean(latencies):.2f}s"
              f"  ({len(latencies)} notes{f', {missing} MISSING' if missing else ''}; target p50 <= 3s, p99 <= 10s)")
        print(f"  mail-to-note with polling every {poll_minutes:g} minutes: about {poll_minutes * 30:.0f}s on"
              f" average, up to {poll_minutes * 60:.0f}s, plus the import")
    finally:
        _stop(processes)
        server.stop()
        drop_database(url)


def measure_idle(work: Path, database: str, count: int) -> None:
    from idle_imap import IdleServer

    from rolsync import jobs, resources
    from rolsync.accounts import MailboxForm, configure_mailbox, create_user
    from rolsync.extensions import db
    from rolsync.models import FolderState, User

    server = IdleServer()
    server.start()
    url = create_database(database, work)
    processes: list[subprocess.Popen] = []
    try:
        app = make_app(url, work, ROLSYNC_PUSH_MAX_MAILBOXES=str(count), ROLSYNC_PUSH_REFRESH_SECONDS="5")
        ids = []
        with app.app_context():
            secrets = resources.get().secrets
            template = create_user(db.session, "idle-template@agency.example", "bench-password-1")
            for i in range(count):
                # The sign-in password's hash is copied: hashing it 1,000 times takes minutes.
                user = User(email=f"idle{i}@agency.example", password_hash=template.password_hash)
                db.session.add(user)
                account = configure_mailbox(db.session, secrets, user, MailboxForm(
                    host=server.host, port=server.port, security="ssl", username=f"idle{i}", password="x",
                    ca_pem=server.ca_pem))
                db.session.flush()
                # As if each had been imported once: the watcher then queues nothing when it connects.
                db.session.add(FolderState(account_id=account.id, role="inbox", name="INBOX", uidvalidity=1,
                                           uidnext=1, caught_up_uidnext=1))
                ids.append(account.id)
            db.session.commit()
            queue = resources.get().queue
        watcher = _start("--watch", log=work / "idle-watcher.log")
        processes = [watcher]
        took = _wait_live(app, ids, 600)
        time.sleep(5)  # let the start-up settle
        rss_kb = _status_kb(watcher.pid, "VmRSS")
        threads = _status_kb(watcher.pid, "Threads")
        before, wall = _cpu_seconds(watcher.pid), time.monotonic()
        time.sleep(30)
        cpu = (_cpu_seconds(watcher.pid) - before) / (time.monotonic() - wall) * 100
        notice = []
        for i in random.sample(range(count), 20):
            job_id = jobs.job_id_for(ids[i], queue.name)
            sent = server.notify(f"idle{i}")
            while not queue.connection.exists(f"rq:job:{job_id}"):
                if time.monotonic() - sent > 30:
                    break
                time.sleep(0.0005)
            notice.append(time.monotonic() - sent)
            time.sleep(0.2)
        print(f"idle: {count} mailboxes in IDLE in one watcher after {took:.1f}s ({threads} threads)")
        print(f"  CPU with nothing arriving: {cpu:.2f}% of one core (over 30 s)   RSS: {rss_kb / 1024:.0f} MB")
        print(f"  time from the server's EXISTS to the import job queued: p50 {_percentile(notice, 50) * 1000:.1f} ms"
              f"  max {max(notice) * 1000:.1f} ms (20 mailboxes)")
    finally:
        _stop(processes)
        server.stop()
        drop_database(url)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--only", default="latency,idle")
    parser.add_argument("--database", default="postgresql", choices=("postgresql", "sqlite"))
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="rolsync-push-bench-"))
    try:
        if "latency" in args.only:
            measure_latency(work, args.database, args.mailboxes, args.deliveries)
        if "idle" in args.only:
            measure_idle(work, args.database, args.idle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
