"""The benchmark (`make bench`): builds the mailboxes once, measures on SQLite and PostgreSQL, prints the table.

    python bench/run.py [--messages 2000] [--records 10000] [--databases sqlite,postgresql]
                        [--only import,poll,matching,memory] [--profile DIR]

1. import of N messages of a generated recruitment mailbox via the real job,
   against a bare imapclient fetch of the same messages in the same process;
2. a poll with nothing new on mailboxes of 200 and 20,000 messages;
3. matching addresses with a CRM of 10k and of 1M records;
4. peak memory of a fresh process importing 20 messages with a 25 MB attachment each;
5. parse CPU per message on the fast and the careful path, and the share of
   messages that take the careful path, on the bench's, the demo's and the
   odd real-world corpus.

It starts its own Dovecot (tests/support/dovecot.py) and creates its own
databases (SQLite files, PostgreSQL databases at ROLSYNC_BENCH_POSTGRES, by
default postgresql://postgres@127.0.0.1:5432/test) and uses Redis database
12 (ROLSYNC_BENCH_REDIS) for the import lock. Each measurement runs in a
process of its own. Targets are printed next to the figures, never asserted;
the exit status is non-zero only when an import was wrong (a note missing,
extra or duplicated).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
from support import ROOT, add_mailbox, load_setup, save_setup  # noqa: E402

CONSULTANT = f"consultant@{corpus.CONSULTANT_DOMAIN}"
MEASURES = ("import", "poll", "matching", "memory", "parse")
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
TARGETS = {"import": 1.5, "poll": 1.2, "matching": 1.2, "memory": 200}


def _measure(name: str, setup_path: Path, database: str, work: Path) -> dict:
    setup = load_setup(setup_path)
    if name == "import":
        from import_bench import measure_import
        return measure_import(setup, database, work)
    if name == "memory":
        from import_bench import measure_memory
        return measure_memory(setup, database, work)
    if name == "parse":
        from parse_bench import measure_parse
        return measure_parse(setup, database, work)
    if name == "poll":
        from poll_bench import measure_polls
        return measure_polls(setup, database, work)
    from match_bench import measure_matching
    return measure_matching(setup, database, work)


def build_mailboxes(server, args, work: Path) -> Path:
    """Fill the Dovecot's mailboxes for the chosen measurements; returns the setup file for the measurements."""
    setup: dict = {"records": args.records, "messages": args.messages, "match_small": 10_000, "match_large": 1_000_000,
                   "big_count": args.big_count, "big_mb": args.big_mb, "expected": {},
                   "big_sender": "portfolio@candidates.example", "filler_sender": "filler@client.example"}
    if "import" in args.only:
        started = time.perf_counter()
        mail = corpus.recruitment_corpus(args.messages, CONSULTANT, corpus.crm_people(args.records))
        setup["corpus_mailbox"] = add_mailbox(server, CONSULTANT, {"INBOX": mail.inbox, "Sent": mail.sent})
        setup["expected"] = {k: sorted(v) for k, v in mail.expected.items()}
        _progress(f"corpus: {mail.count} messages, {mail.size / 1e6:.1f} MB, {mail.expected_notes} notes expected "
                  f"({time.perf_counter() - started:.0f} s to build and append)")
    if "poll" in args.only:
        started = time.perf_counter()
        for name, size in (("small_mailbox", 200), ("large_mailbox", 20_000)):
            user = f"poll{size}@{corpus.CONSULTANT_DOMAIN}"
            setup[name] = add_mailbox(server, user, {"INBOX": corpus.filler(size, user, setup["filler_sender"]),
                                                     "Sent": []})
        _progress(f"poll mailboxes: 200 and 20,000 messages ({time.perf_counter() - started:.0f} s)")
    if "memory" in args.only:
        started = time.perf_counter()
        user = f"bigmail@{corpus.CONSULTANT_DOMAIN}"
        big = corpus.big_attachment_messages(args.big_count, args.big_mb, user, setup["big_sender"])
        setup["big_mailbox"] = add_mailbox(server, user, {"INBOX": big, "Sent": []})
        del big
        _progress(f"big mailbox: {args.big_count} messages with {args.big_mb} MB each "
                  f"({time.perf_counter() - started:.0f} s)")
    path = work / "setup.json"
    save_setup(path, **setup)
    return path


def run_measure(name: str, database: str, setup_path: Path, work: Path) -> dict:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--measure", name, "--database", database, "--setup", str(setup_path),
         "--work", str(work)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"the {name} measurement on {database} failed (exit {completed.returncode})")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    _progress(f"{name} on {DATABASES[database]}: {time.perf_counter() - started:.0f} s")
    return result


def table(results: dict[str, dict[str, dict]], databases: list[str]) -> str:
    """The results as a Markdown table: one row per figure, one column per database."""
    header = ["measure", *(DATABASES[d] for d in databases), "target"]
    rows: list[list[str]] = []

    def row(label: str, cell, target: str = "", measure: str | None = None) -> None:
        values = results.get(measure) if measure else None
        if measure and not values:
            return
        rows.append([label, *(cell(values[d]) for d in databases), target])

    def ratio_met(value: float, target: float) -> str:
        return f"{value:.2f}\u00d7 {'(met)' if value <= target else '(not met)'}"

    first = next(iter(results.get("import", {}).values()), None)
    if first:
        row(f"1. bare imapclient fetch of {first['messages']:,} messages ({first['bytes'] / 1e6:.1f} MB)",
            lambda r: f"{r['fetch_s']:.2f} s", measure="import")
        row("1. the same fetch without imaplib's debug formatting (as rolsync fetches)",
            lambda r: f"{r['quiet_fetch_s']:.2f} s", measure="import")
        row("1. rolsync import of the same messages (real job)",
            lambda r: f"{r['import_s']:.2f} s ({r['messages'] / r['import_s']:.0f} msg/s)", measure="import")
        row("1. ratio import / bare imapclient fetch", lambda r: ratio_met(r["import_s"] / r["fetch_s"],
                                                                        TARGETS["import"]),
            f"\u2264 {TARGETS['import']}\u00d7", measure="import")
        row("1. CLI start-up (Python, app, libraries), not in the import's time", lambda r: f"{r['startup_s']:.2f} s",
            measure="import")
        row("1. processor time of the import / of the fetch without debug formatting (steadier than wall time "
            "on a loaded machine)", lambda r: f"{r['import_cpu_s']:.2f} s / {r['quiet_fetch_cpu_s']:.2f} s = "
                                              f"{r['import_cpu_s'] / r['quiet_fetch_cpu_s']:.2f}\u00d7", measure="import")
        row("1. ratio import / fetch without debug formatting", lambda r: f"{r['import_s'] / r['quiet_fetch_s']:.2f}\u00d7",
            measure="import")
        row(f"1. every expected note ({first['expected_notes']:,}) exactly once",
            lambda r: "OK" if r["correct"] else f"WRONG: {r['missing']} missing, {r['extra']} extra, "
                                                 f"{r['duplicated']} duplicated", "exact", measure="import")
    row("2. poll with nothing new, 200-message mailbox (median)", lambda r: f"{r['small_s'] * 1000:.1f} ms",
        measure="poll")
    row("2. poll with nothing new, 20,000-message mailbox (median)", lambda r: f"{r['large_s'] * 1000:.1f} ms",
        measure="poll")
    row("2. ratio 20,000 / 200", lambda r: ratio_met(r["large_s"] / r["small_s"], TARGETS["poll"]),
        f"\u2264 {TARGETS['poll']}\u00d7", measure="poll")
    row("2. bare imapclient login + STATUS of both folders, 200 / 20,000 messages (the server's floor)",
        lambda r: f"{r['bare_small_s'] * 1000:.1f} / {r['bare_large_s'] * 1000:.1f} ms "
                  f"({r['bare_large_s'] / r['bare_small_s']:.2f}\u00d7)", measure="poll")
    row("2. rolsync's own CPU per poll, 200 / 20,000 messages (the rest is waiting for Dovecot)",
        lambda r: f"{r['small_cpu_s'] * 1000:.1f} / {r['large_cpu_s'] * 1000:.1f} ms "
                  f"({r['large_cpu_s'] / r['small_cpu_s']:.2f}\u00d7)", measure="poll")
    row("2. poll finding one new message: reads it and counts the folder, 200 / 20,000 messages (median)",
        lambda r: f"{r['new_small_s'] * 1000:.1f} / {r['new_large_s'] * 1000:.1f} ms", measure="poll")
    row("3. matching 2,000 addresses (batches of 50), CRM of 10k records",
        lambda r: f"{r['small_s'] * 1000:.1f} ms", measure="matching")
    row("3. the same with a CRM of 1M records", lambda r: f"{r['large_s'] * 1000:.1f} ms", measure="matching")
    row("3. ratio 1M / 10k", lambda r: ratio_met(r["large_s"] / r["small_s"], TARGETS["matching"]),
        f"\u2264 {TARGETS['matching']}\u00d7", measure="matching")
    big = next(iter(results.get("memory", {}).values()), None)
    if big:
        row(f"4. peak RSS of a worker importing {big['messages']} messages with a 25 MB attachment each",
            lambda r: f"{r['peak_mb']:.0f} MB {'(met)' if r['peak_mb'] < TARGETS['memory'] else '(not met)'}"
                      + ("" if r["correct"] else " WRONG notes"),
            f"< {TARGETS['memory']} MB", measure="memory")
        row("4. of which a burst worker with nothing to do (Python, app, libraries)",
            lambda r: f"{r['baseline_mb']:.0f} MB", measure="memory")
        row("4. time of that burst worker run", lambda r: f"{r['import_s']:.1f} s", measure="memory")
    parsed = next(iter(results.get("parse", {}).values()), None)
    if parsed:
        for name, label in (("bench", "the bench's mailbox"), ("demo", "the demo's mailbox"),
                            ("odd", "real-world odd mail (tests/mail/corpus)")):
            row(f"5. parse CPU per message, fast path / careful path only, {label} "
                f"({parsed[name]['messages']:,} messages)",
                lambda r, n=name: f"{r[n]['fast_ms']:.3f} / {r[n]['careful_ms']:.3f} ms", measure="parse")
            row(f"5. share of {label} taking the careful path",
                lambda r, n=name: f"{r[n]['careful_share']:.1%}", measure="parse")
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages in the imported mailbox")
    parser.add_argument("--records", type=int, default=10_000, help="CRM records for the import")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--only", default=",".join(MEASURES), help="which measurements, comma-separated")
    parser.add_argument("--big-count", type=int, default=20)
    parser.add_argument("--big-mb", type=int, default=25)
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile the import with pyinstrument and write the reports into DIR")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement, in its own process
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(_measure(args.measure, Path(args.setup), args.database, Path(args.work))))
        return 0
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        os.environ["ROLSYNC_BENCH_PROFILE"] = str(Path(args.profile).resolve())
    args.only = [m for m in args.only.split(",") if m]
    databases = [d for d in args.databases.split(",") if d]
    unknown = set(args.only) - set(MEASURES) | set(databases) - set(DATABASES)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")

    from tests.support.dovecot import DovecotServer

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="rolsync-bench-"))
    server = DovecotServer(work / "dovecot")
    server.start()
    try:
        setup_path = build_mailboxes(server, args, work)
        results = {name: {db: run_measure(name, db, setup_path, work) for db in databases} for name in args.only}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results, databases))
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")
    if args.json:
        print(json.dumps(results))
    wrong = [f"{n} on {d}" for n, by_db in results.items() for d, r in by_db.items() if r.get("correct") is False]
    if wrong:
        print(f"WRONG RESULTS: {', '.join(wrong)}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
