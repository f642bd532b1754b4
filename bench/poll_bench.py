"""Benchmark: how many idle-mailbox polls per second one RQ worker sustains.

    python bench/poll_bench.py [--mailboxes 200] [--database sqlite|postgresql]

Starts its own Dovecot, creates the mailboxes (each with a few messages, all
imported once first), then enqueues one import job per mailbox and times a
single `python worker.py --burst` working through them with nothing new.
Needs the Redis at REDIS_URL (default redis://127.0.0.1:6379/14).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mail.builders import build_message  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rolsync-poll-bench-"))
    server = DovecotServer(work / "dovecot")
    server.start()
    try:
        if args.database == "postgresql":
            import psycopg

            name = f"rolsync_bench_{uuid.uuid4().hex[:6]}"
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        else:
            database_url = f"sqlite:///{work / 'bench.db'}"
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
            "ROLSYNC_QUEUE": f"poll-bench-{uuid.uuid4().hex[:6]}",
            "ROLSYNC_INSTANCE_PATH": str(work / "instance"),
        }
        os.environ.update(env)
        from flask_migrate import upgrade

        from rolsync import create_app, jobs, services
        from rolsync.accounts import MailboxForm, configure_mailbox, create_user
        from rolsync.crm import CrmRow, load_rows
        from rolsync.extensions import db
        from rolsync.importer import import_account
        from rolsync.models import RecordKind

        app = create_app()
        with app.app_context():
            upgrade()
            load_rows(db.session, [CrmRow(RecordKind.CONTACT, "Carol", "carol@client.example", "Client")])
            accounts = []
            for i in range(args.mailboxes):
                user, password = f"user{i}@agency.example", f"pw-{i}-bench"
                server.add_user(user, password)
                server.create_folder(user, password, "Sent")
                server.append_many(user, password, "INBOX", [
                    build_message(from_="carol@client.example", to=user, subject=f"Hello {i}.{n}", text="x")
                    for n in range(3)])
                owner = create_user(db.session, user, "bench-password-1")
                accounts.append(configure_mailbox(db.session, services.get().secrets, owner, MailboxForm(
                    host=server.host, port=server.ssl_port, security="ssl", username=user, password=password,
                    ca_pem=server.ca_pem)))
            db.session.commit()
            t = time.perf_counter()
            for account in accounts:
                import_account(db.session, account, secrets=services.get().secrets, store=services.get().documents)
            first = time.perf_counter() - t
            queue = services.get().queue
            for account in accounts:
                jobs.enqueue_import(queue, account.id)
        t = time.perf_counter()
        subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env={**os.environ, **env}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        idle = time.perf_counter() - t
        print(f"| measure ({args.database}, {args.mailboxes} mailboxes) | value |")
        print("| --- | --- |")
        print(f"| first import, in process | {first:.1f} s |")
        print(f"| one burst worker polling every idle mailbox | {idle:.1f} s |")
        print(f"| idle polls per second, one worker | {args.mailboxes / idle:.1f} |")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
