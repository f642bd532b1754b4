"""Benchmark: the real import path against a bare IMAP fetch of the same messages.

    python bench/import_bench.py [--messages 2000] [--database sqlite|postgresql]

Starts its own Dovecot (tests/support/dovecot.py), generates a recruitment
corpus, loads a CRM, and prints a table of timings. Also checks that every
expected note exists exactly once.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from tests.mail.builders import build_message, minimal_docx, minimal_pdf, tiny_png  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402


def corpus(n: int, consultant: str, people: list[str], rng: random.Random) -> tuple[list[bytes], int]:
    """n messages: plain and HTML, CVs as PDF/DOCX, signature logos; returns (messages, expected notes)."""
    messages = []
    padding = "We discussed the role and next steps in detail. " * 40
    for i in range(n):
        person = people[i % len(people)]
        attachments = []
        if i % 5 == 0:
            attachments.append((f"CV {i}.pdf", "application/pdf", minimal_pdf(f"CV {i}") + os.urandom(15000)))
        if i % 7 == 0:
            attachments.append((f"CV {i}.docx", "application/vnd.openxmlformats-officedocument."
                                "wordprocessingml.document", minimal_docx(f"CV {i}")))
        if i % 3 == 0:
            attachments.append(("logo.png", "image/png", tiny_png()))
        html = f"<html><body><p>Hello,</p><p>{padding}</p><p>Message {i}</p></body></html>" if i % 2 else None
        messages.append(build_message(
            from_=person, to=consultant, subject=f"Role discussion {i}",
            text=None if html else f"Hello,\n{padding}\nMessage {i}", html=html, attachments=attachments,
        ))
    return messages, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="rolsync-bench-"))

    server = DovecotServer(work / "dovecot")
    server.start()
    try:
        user, password = "consultant@agency.example", "bench-password"
        server.add_user(user, password)
        people = [f"person{i}@client{i % 50}.example" for i in range(300)]
        messages, expected = corpus(args.messages, user, people, rng)
        size = sum(len(m) for m in messages)
        t = time.perf_counter()
        for start in range(0, len(messages), 500):
            server.append_many(user, password, "INBOX", messages[start:start + 500])
        print(f"corpus: {len(messages)} messages, {size / 1e6:.1f} MB, appended in {time.perf_counter() - t:.1f}s")

        # The bare fetch: imapclient, same server, same messages.
        t = time.perf_counter()
        import ssl

        ctx = ssl.create_default_context(cadata=server.ca_pem)
        with IMAPClient(server.host, port=server.ssl_port, ssl_context=ctx) as client:
            client.login(user, password)
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["ALL"])
            fetched = 0
            for start in range(0, len(uids), 200):
                for _, data in client.fetch(uids[start:start + 200], ["BODY.PEEK[]"]).items():
                    fetched += len(data[b"BODY[]"])
        bare = time.perf_counter() - t

        if args.database == "postgresql":
            import psycopg

            name = f"rolsync_bench_{uuid.uuid4().hex[:6]}"
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        else:
            database_url = f"sqlite:///{work / 'bench.db'}"
        os.environ.update({
            "DATABASE_URL": database_url,
            "ROLSYNC_INSTANCE_PATH": str(work / "instance"),
            "ROLSYNC_DOCUMENT_ROOT": str(work / "documents"),
        })
        from flask_migrate import upgrade

        from rolsync import create_app, services
        from rolsync.accounts import MailboxForm, configure_mailbox, create_user
        from rolsync.crm import CrmRow, load_rows
        from rolsync.extensions import db
        from rolsync.importer import import_account
        from rolsync.models import RecordKind
        from rolsync.rules.store import save_version
        from rolsync.rules import default_rules

        app = create_app()
        with app.app_context():
            upgrade()
            rules = default_rules()
            rules["first_run"] = {"inbox": args.messages, "sent": args.messages}
            save_version(db.session, rules, author="bench")
            owner = create_user(db.session, user, "bench-password-1")
            configure_mailbox(db.session, services.get().secrets, owner, MailboxForm(
                host=server.host, port=server.ssl_port, security="ssl", username=user,
                password=password, ca_pem=server.ca_pem))
            load_rows(db.session, [CrmRow(RecordKind.CANDIDATE if i % 2 else RecordKind.CONTACT,
                                          f"Person {i}", p, "") for i, p in enumerate(people)])
            db.session.commit()
            account = owner.mail_account
            t = time.perf_counter()
            totals = {"imported": 0}
            while True:
                result = import_account(db.session, account, secrets=services.get().secrets,
                                        store=services.get().documents, max_messages=app.config["IMPORT_RUN_MESSAGES"],
                                        fetch_batch=app.config["IMPORT_FETCH_BATCH"])
                totals["imported"] += result.total("imported")
                if not result.more:
                    break
            imported = time.perf_counter() - t
            from sqlalchemy import func, select
            from rolsync.models import Note

            notes = db.session.scalar(select(func.count()).select_from(Note))
            distinct = db.session.scalar(select(func.count(func.distinct(Note.message_key))))
        ok = notes == expected and distinct == expected
        print()
        print(f"| measure ({args.database}) | value |")
        print("| --- | --- |")
        print(f"| bare imapclient fetch of {len(uids)} messages | {bare:.2f} s |")
        print(f"| rolsync import of the same messages | {imported:.2f} s ({len(uids) / imported:.0f} msg/s) |")
        print(f"| ratio import / fetch | {imported / bare:.1f}x |")
        print(f"| notes: expected {expected}, found {notes}, distinct messages {distinct} | {'OK' if ok else 'WRONG'} |")
        print(json.dumps({"fetch_s": round(bare, 3), "import_s": round(imported, 3)}))
        return 0 if ok else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
