"""Benchmarks 1 and 4: the real import against a bare imapclient fetch, and peak memory with big attachments.

    python bench/import_bench.py [--messages 2000] [--databases sqlite,postgresql]

runs these two through `bench/run.py` (which starts Dovecot and prints the table).
"""
from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_module  # noqa: E402
from support import ROOT, Mailbox, add_account, create_database, drop_database, load_people, make_app, \
    run_import_job  # noqa: E402

FETCH_BATCH = 200
FETCH_REPEATS = 3
EVERYTHING = {"first_run": {"inbox": 100_000, "sent": 100_000}}


def bare_fetch(mailbox: Mailbox, folders=("INBOX", "Sent"), quiet: bool = False) -> tuple[float, int, int]:
    """(seconds, messages, bytes) of fetching every message with imapclient alone, login included.

    `quiet` turns off imaplib's debug formatting as rolsync does
    (`rolsync.mail.imap.quiet_imaplib`); stock imapclient leaves it on.
    """
    count = size = 0
    start = time.perf_counter()
    with mailbox.client() as client:
        if quiet:
            client._imap.debug = 0
        for folder in folders:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            for first in range(0, len(uids), FETCH_BATCH):
                for data in client.fetch(uids[first:first + FETCH_BATCH], ["BODY.PEEK[]"]).values():
                    count += 1
                    size += len(data[b"BODY[]"])
    return time.perf_counter() - start, count, size


def note_pairs(session) -> Counter:
    """(Message-ID, record address) -> number of notes, over every note in the database."""
    from sqlalchemy import select

    from rolsync.models import EmailAddress, Note

    pairs: Counter = Counter()
    for owner, column in ((EmailAddress.contact_id, Note.contact_id), (EmailAddress.candidate_id, Note.candidate_id)):
        rows = session.execute(select(Note.message_id, EmailAddress.address).join(EmailAddress, owner == column))
        pairs.update((message_id, address) for message_id, address in rows)
    return pairs


def cli_startup() -> float:
    """Wall time of `flask --app wsgi --help`, the start-up every `flask mail import` pays before importing."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "--help"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_import(setup: dict, database: str, work: Path) -> dict:
    """Item 1: the bare fetch (median of a few) and the import of the same messages via the real job."""
    from rolsync.extensions import db

    url = create_database(database, work)
    try:
        app = make_app(url, work)
        with app.app_context():
            load_people(db.session, corpus_module.crm_people(setup["records"]))
        account_id = add_account(app, setup["corpus_mailbox"], EVERYTHING)
        fetches = [bare_fetch(setup["corpus_mailbox"]) for _ in range(FETCH_REPEATS)]
        fetch_s = statistics.median(f[0] for f in fetches)
        quiet_s = statistics.median(bare_fetch(setup["corpus_mailbox"], quiet=True)[0] for _ in range(FETCH_REPEATS))
        cpu_start = time.process_time()
        bare_fetch(setup["corpus_mailbox"], quiet=True)
        quiet_cpu_s = time.process_time() - cpu_start
        startup_s = cli_startup()
        start = time.perf_counter()
        cpu_before = time.process_time()
        with _profiled(work / f"profile-import-{database}.txt"):
            result = run_import_job(app, account_id)
        import_s = time.perf_counter() - start
        import_cpu_s = time.process_time() - cpu_before
        with app.app_context():
            found = note_pairs(db.session)
        expected = {(message_id, address) for message_id, addresses in setup["expected"].items()
                    for address in addresses}
        missing = len(expected - set(found))
        extra = sum(n for pair, n in found.items() if pair not in expected)
        duplicated = sum(n - 1 for pair, n in found.items() if n > 1)
        return {
            "messages": fetches[0][1], "bytes": fetches[0][2], "fetch_s": fetch_s, "quiet_fetch_s": quiet_s,
            "import_s": import_s, "import_cpu_s": import_cpu_s, "quiet_fetch_cpu_s": quiet_cpu_s, "startup_s": startup_s,
            "imported": result.get("imported"), "expected_notes": len(expected), "notes": sum(found.values()),
            "missing": missing, "extra": extra, "duplicated": duplicated,
            "correct": missing == extra == duplicated == 0 and not result.get("more"),
        }
    finally:
        drop_database(url)


def measure_memory(setup: dict, database: str, work: Path) -> dict:
    """Item 4: peak RSS of `python worker.py --burst` importing messages with big attachments.

    The worker runs the job in its own process (RQ's SimpleWorker), so its
    peak is the import's; a burst with nothing queued gives the baseline.
    """
    from sqlalchemy import func, select

    from rolsync import jobs, services
    from rolsync.extensions import db
    from rolsync.models import Document, Note

    url = create_database(database, work)
    try:
        app = make_app(url, work)
        with app.app_context():
            load_people(db.session, [corpus_module.Person("candidate", "Big Sender", setup["big_sender"])])
        account_id = add_account(app, setup["big_mailbox"], EVERYTHING)
        baseline, _ = _burst_worker()
        with app.app_context():
            jobs.enqueue_import(services.get().queue, account_id)
        peak, import_s = _burst_worker()
        with app.app_context():
            notes = db.session.scalar(select(func.count()).select_from(Note))
            big = db.session.scalar(select(func.count()).select_from(Document)
                                    .where(Document.size == setup["big_mb"] * 1024 * 1024))
        return {"baseline_mb": baseline, "peak_mb": peak, "import_s": import_s, "messages": setup["big_count"],
                "correct": notes == big == setup["big_count"]}
    finally:
        drop_database(url)


@contextlib.contextmanager
def _profiled(report: Path):
    """With ROLSYNC_BENCH_PROFILE set (`run.py --profile`), profile the block with pyinstrument into that folder."""
    folder = os.environ.get("ROLSYNC_BENCH_PROFILE")
    if not folder:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    with profiler:
        yield
    path = Path(folder) / report.name
    path.write_text(profiler.output_text(unicode=True, show_all=False))
    print(f"bench: profile written to {path}", file=sys.stderr, flush=True)


def _burst_worker() -> tuple[float, float]:
    """(peak RSS in MB of every worker run so far, seconds) of one `python worker.py --burst`."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=os.environ, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, elapsed


if __name__ == "__main__":
    import run

    sys.exit(run.main(["--only", "import,memory", *sys.argv[1:]]))
