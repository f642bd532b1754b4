"""Benchmark 2: a poll with nothing new, on a mailbox of 200 messages and on one of 20,000; and one that finds
a new message, which also counts the folder against the ledger.

    python bench/poll_bench.py [--databases sqlite,postgresql]

runs it through `bench/run.py`. A poll is the real scheduled job
(`rolsync.jobs.import_account_job`: Redis lock, login, STATUS per folder,
the run's row in the database), timed in this process after each mailbox's
first run (which takes the newest 100 of each folder, the seed's cap) and
after the owner's client has opened the folders (see _owner_opens_folders).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import add_account, create_database, drop_database, load_people, make_app, run_import_job  # noqa: E402

POLLS = 40
WARM_UP = 3
NEW_MAIL_POLLS = 7


def measure_polls(setup: dict, database: str, work: Path) -> dict:
    from corpus import Person
    from rolsync.extensions import db

    url = create_database(database, work)
    try:
        app = make_app(url, work)
        with app.app_context():
            load_people(db.session, [Person("contact", "Filler Sender", setup["filler_sender"])])
        accounts = {name: add_account(app, setup[name]) for name in ("small_mailbox", "large_mailbox")}
        for account_id in accounts.values():
            first = run_import_job(app, account_id)
            assert first["imported"] == 100, first
        _owner_opens_folders(setup["small_mailbox"], setup["large_mailbox"])
        timings: dict[str, list[float]] = {name: [] for name in accounts}
        cpu: dict[str, list[float]] = {name: [] for name in accounts}
        for round_ in range(WARM_UP + POLLS):
            for name, account_id in accounts.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                result = run_import_job(app, account_id)
                elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
                assert result["imported"] == 0 and not result["more"], result
                if round_ >= WARM_UP:
                    timings[name].append(elapsed)
                    cpu[name].append(elapsed_cpu)
        counted = {name: _polls_with_new_mail(app, setup[name], account_id) for name, account_id in accounts.items()}
        small, large = (statistics.median(timings[n]) for n in ("small_mailbox", "large_mailbox"))
        small_cpu, large_cpu = (statistics.median(cpu[n]) for n in ("small_mailbox", "large_mailbox"))
        bare = {name: statistics.median(_bare_status(setup[name]) for _ in range(POLLS))
                for name in ("small_mailbox", "large_mailbox")}
        return {"small_s": small, "large_s": large, "small_cpu_s": small_cpu, "large_cpu_s": large_cpu,
                "bare_small_s": bare["small_mailbox"], "bare_large_s": bare["large_mailbox"], "polls": POLLS,
                "new_small_s": counted["small_mailbox"], "new_large_s": counted["large_mailbox"]}
    finally:
        drop_database(url)


def _polls_with_new_mail(app, mailbox, account_id: int) -> float:
    """Median seconds of a poll that finds one new message: it reads it, then counts the whole folder
    against the ledger (UID SEARCH ALL and one ledger query; rolsync/reconcile.py)."""
    from corpus import build_message

    from rolsync import reconcile
    from rolsync.extensions import db
    from rolsync.models import MailAccount

    seconds = []
    for n in range(NEW_MAIL_POLLS):
        with mailbox.client() as client:
            client.append("INBOX", build_message(from_="someone-new@nowhere.example", to=mailbox.username,
                                                 subject=f"New {n}", text="x"))
        start = time.perf_counter()
        run_import_job(app, account_id)
        seconds.append(time.perf_counter() - start)
    with app.app_context():
        counts = reconcile.report(db.session, db.session.get(MailAccount, account_id))
        assert reconcile.adds_up(counts) and counts["unaccounted"] == 0, counts
    with mailbox.client() as client:  # the next database's run starts from the same mailbox
        client.select_folder("INBOX")
        client.delete_messages(client.search(["FROM", "someone-new@nowhere.example"]))
        client.expunge()
    return statistics.median(seconds)


def _bare_status(mailbox) -> float:
    """Seconds for imapclient alone to log in and ask STATUS of both folders: the server's share of a poll."""
    start = time.perf_counter()
    with mailbox.client() as client:
        for folder in ("INBOX", "Sent"):
            client.folder_status(folder, ["MESSAGES", "UIDNEXT", "UIDVALIDITY"])
    return time.perf_counter() - start


def _owner_opens_folders(*mailboxes) -> None:
    """The mailbox owner's own client opening each folder (read-write, the Inbox last) after the import.

    That is the state of a mailbox in use, rather than of one only ever read
    by EXAMINE. Dovecot (Maildir, mailbox list index) still sometimes answers
    a STATUS of the 20,000-message folder only after re-reading its uidlist
    (~25 ms): server time that rolsync's single STATUS per folder cannot
    avoid, which is why the table also shows rolsync's own CPU per poll.
    """
    time.sleep(2)
    for mailbox in mailboxes:
        with mailbox.client() as client:
            for folder in ("Sent", "INBOX"):  # the Inbox last, where a mail client stays
                client.select_folder(folder)
                client.unselect_folder()


if __name__ == "__main__":
    import run

    sys.exit(run.main(["--only", "poll", *sys.argv[1:]]))
