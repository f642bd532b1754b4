"""Run the demo: a sample mailbox on a local Dovecot, a sample CRM, two users, the panel and a worker.

Everything lives in a fresh temporary folder (SQLite database, keys,
documents, Dovecot's mail) and on an RQ queue of its own, and is removed when
the demo stops, so every run starts clean and leaves nothing behind.

The web server and the worker run in sessions of their own: a Ctrl-C in the
terminal reaches only this process, which then stops them in order (the
worker's scheduler children with it) and checks that none is left.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

try:
    from devkit import dovecot
    from devkit import sample_crm as sample
    from devkit import sample_mail as corpus
except ImportError as exc:  # rolsync without its checkout
    raise ImportError("the demo runs from a checkout of rolsync, whose devkit/ (the test Dovecot, the sample "
                      "mailbox and CRM) it uses; run `make demo` there") from exc

ROOT = Path(__file__).resolve().parents[2]
"""The checkout: the demo runs `wsgi` and `worker.py` from here, and uses devkit's Dovecot."""

START_TIMEOUT = 30.0
"""Seconds for the web server to answer."""

STOP_TIMEOUT = 8.0
"""Seconds a process gets to stop after SIGTERM before it is killed."""

# Settings the demo decides itself; a value in the caller's environment
# (a production key, another database) must not leak into it.
_OWN_SETTINGS = ("DATABASE_URL", "SECRET_KEY", "FLASK_APP")
_CLI_SETTINGS = ("FLASK_APP", "DATABASE_URL", "REDIS_URL", "ROLSYNC_QUEUE", "ROLSYNC_INSTANCE_PATH",
                 "ROLSYNC_DOCUMENT_ROOT")
"""What a `flask` command in another terminal needs to work on the demo's data."""


class DemoError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 5000
    redis_url: str = "redis://127.0.0.1:6379/0"
    seed: int = corpus.DEFAULT_SEED
    import_timeout: float = 300.0


@dataclass
class _Child:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        return dovecot.file_tail(self.log_path, lines)


@dataclass
class Credentials:
    """The panel passwords, generated for this run; only their hashes reach the database."""

    admin: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    consultant: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    mailbox: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)


class Demo:
    """One run of the demo; `run()` returns the exit status."""

    def __init__(self, options: Options, out: TextIO = sys.stdout):
        self.options = options
        self.out = out
        self.queue_name = f"rolsync-demo-{uuid.uuid4().hex[:10]}"
        self.base_dir: Path | None = None
        self.dovecot: dovecot.DovecotServer | None = None
        self.children: list[_Child] = []
        self.credentials = Credentials()
        self.account_id: int | None = None
        self._defer_signals = False
        self._stop_requested = False

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}/"

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            self._check_machine()
            self.base_dir = Path(tempfile.mkdtemp(prefix="rolsync-demo-"))
            env = self._environment()
            self._start_mailbox()
            self._check_stop()
            app = self._prepare_app(env)
            self._check_stop()
            self._start_children(env)
            self._first_import(app)
            self._print_ready(env)
            self._wait_for_ctrl_c()
        except KeyboardInterrupt:
            self.say("\nStopping the demo…")
            return 0
        except DemoError as exc:
            print(f"\nThe demo cannot go on: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            # A second Ctrl-C must not cut the clean-up short and leave processes behind.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            self._stop_everything()
        return 0

    def _on_signal(self, _signum, _frame) -> None:
        """Ctrl-C, SIGTERM and a closed terminal all stop the demo the same way.

        The flag is what counts: an exception raised while Python runs a
        finaliser (SQLAlchemy has weakref callbacks) is printed and dropped, so
        every step and wait loop also checks the flag (`_check_stop`).
        """
        self._stop_requested = True
        if not self._defer_signals:
            raise KeyboardInterrupt

    def _check_stop(self) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def _uninterrupted(self):
        """Hold a Ctrl-C until a process is started and recorded, so none can escape the clean-up."""
        self._defer_signals = True
        try:
            yield
        finally:
            self._defer_signals = False
        self._check_stop()

    def _check_machine(self) -> None:
        """Fail before starting anything, with what to do about it."""
        if not Path(dovecot.DOVECOT_BINARY).exists():
            raise DemoError("Dovecot is not installed; `make demo` installs it (scripts/system-deps.sh)")
        if os.geteuid() != 0:
            raise DemoError("the demo's Dovecot needs root to hand the mailbox to Debian's `mail` user; "
                            "run it as root (e.g. `sudo make demo`)")
        from redis import Redis
        from redis.exceptions import RedisError

        try:
            Redis.from_url(self.options.redis_url, socket_connect_timeout=3).ping()
        except RedisError as exc:
            raise DemoError(f"Redis at {self.options.redis_url} does not answer ({exc}); start Redis or set "
                            "REDIS_URL") from exc
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((self.options.host, self.options.port))
            except OSError as exc:
                raise DemoError(f"port {self.options.port} on {self.options.host} is taken ({exc.strerror}); "
                                "pick another, e.g. `make demo PORT=5050`") from exc

    def _environment(self) -> dict[str, str]:
        """The settings this process, the web server and the worker share: all pointing into base_dir."""
        assert self.base_dir is not None, "made by run()"
        instance = self.base_dir / "instance"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("ROLSYNC_") and key not in _OWN_SETTINGS}
        env.update({
            "DATABASE_URL": f"sqlite:///{instance / 'rolsync.db'}",
            "REDIS_URL": self.options.redis_url,
            "ROLSYNC_QUEUE": self.queue_name,
            "ROLSYNC_INSTANCE_PATH": str(instance),
            "ROLSYNC_DOCUMENT_ROOT": str(instance / "documents"),
            "FLASK_APP": "wsgi",
            # `flask run` would otherwise read a developer's .env into the demo.
            "FLASK_SKIP_DOTENV": "1",
            "PYTHONUNBUFFERED": "1",
        })
        # The secret key and the encryption key are generated into the instance
        # folder (0600) on first use, as on any fresh installation.
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
        return env

    # -- the mailbox -----------------------------------------------------------------------

    def _start_mailbox(self) -> None:
        """A Dovecot on loopback holding the consultant's Inbox and Sent folder."""
        self.say("Starting a local IMAP server (Dovecot) with a sample mailbox…")
        assert self.base_dir is not None, "made by run()"
        server = self.dovecot = dovecot.DovecotServer(self.base_dir / "dovecot")
        try:
            with self._uninterrupted():
                server.start()
        except dovecot.DovecotError as exc:
            raise DemoError(f"the local Dovecot did not start: {exc}") from exc
        user, password = sample.CONSULTANT.email, self.credentials.mailbox
        server.add_user(user, password)
        server.create_folder(user, password, corpus.SENT, special_use="\\Sent")
        end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        messages = corpus.build_mailbox(end, seed=self.options.seed)
        with server.client(user, password) as client:
            for folder in (corpus.INBOX, corpus.SENT):
                client.multiappend(folder, [
                    {"msg": m.raw, "flags": [b"\\Seen"] if m.seen else [], "date": m.date}
                    for m in messages if m.folder == folder])
        inbox = sum(1 for m in messages if m.folder == corpus.INBOX)
        self.say(f"  {inbox} messages in the Inbox and {len(messages) - inbox} in Sent, "
                 f"{messages[0].date:%d %b %Y} to {messages[-1].date:%d %b %Y}")

    # -- the database: schema, CRM, users, the consultant's mailbox ------------------------

    def _prepare_app(self, env: dict[str, str]):
        from rolsync import accounts, create_app, resources
        from rolsync.extensions import db
        from rolsync.mail.imap import test_connection
        from rolsync.models import Role

        assert self.dovecot is not None, "started by _start_mailbox()"

        self._run_to_log("database", [sys.executable, "-m", "flask", "db", "upgrade"], env)
        app = create_app()
        with app.app_context():
            svc = resources.get()
            added = sample.load(db.session, svc.documents)
            self.say(f"Loaded a sample CRM: {added} contacts and candidates at {len(sample.COMPANIES)} companies")
            accounts.create_user(db.session, sample.ADMIN.email, self.credentials.admin, name=sample.ADMIN.name,
                                 role=Role.ADMIN)
            consultant = accounts.create_user(db.session, sample.CONSULTANT.email, self.credentials.consultant,
                                              name=sample.CONSULTANT.name, role=Role.USER)
            # 127.0.0.1 names no domain, so the own domain comes from the mailbox's
            # address (harbour-talent.test), as it does in the tests.
            account = accounts.configure_mailbox(db.session, svc.secrets, consultant, accounts.MailboxForm(
                host=self.dovecot.host, port=self.dovecot.ssl_port, security="ssl",
                username=sample.CONSULTANT.email, password=self.credentials.mailbox, ca_pem=self.dovecot.ca_pem))
            db.session.commit()
            report = test_connection(svc.imap_settings(account, 15))
            if not report.ok:
                raise DemoError(f"the connection test of the sample mailbox failed: {report.code}: {report.message}")
            self.say(f"Configured {sample.CONSULTANT.name}'s mailbox; connection test: {report.message}")
            self.account_id = account.id
        return app

    # -- the web server and the worker -------------------------------------------------------

    def _start_children(self, env: dict[str, str]) -> None:
        self.say("Starting the web panel and an import worker…")
        python = sys.executable
        self._spawn("worker", [python, "worker.py"], env)
        self._spawn("web server", [python, "-m", "flask", "run", "--host", self.options.host,
                                   "--port", str(self.options.port), "--no-reload", "--no-debugger"], env)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._check_children()
            try:
                with urllib.request.urlopen(self.url + "login", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"the web server did not answer on {self.url} within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)

    def _run_to_log(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """Run a command to completion with its output in the demo's log folder."""
        log_path = self._log_path(name)
        with open(log_path, "ab") as log:
            result = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise DemoError(f"`{' '.join(argv[1:])}` failed (exit status {result.returncode}):\n{tail}")

    def _log_path(self, name: str) -> Path:
        assert self.base_dir is not None, "made by run()"
        log_dir = self.base_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        return log_dir / f"{name.replace(' ', '-')}.log"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self._log_path(name)
        with open(log_path, "ab") as log, self._uninterrupted():
            # A session of its own: a terminal's Ctrl-C reaches only the demo, which
            # stops this process (and whatever it started) itself.
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            self.children.append(_Child(name, process, log_path))

    def _check_children(self) -> None:
        """Called by every wait loop: stop on Ctrl-C, and when a child has died."""
        self._check_stop()
        for child in self.children:
            if child.process.poll() is not None:
                raise DemoError(f"the {child.name} stopped (exit status {child.process.returncode}); "
                                f"the end of its log:\n{child.log_tail()}")

    # -- the first import ----------------------------------------------------------------------

    def _first_import(self, app) -> None:
        """Queue the first import the way Import now does, and wait until the worker has done it."""
        from rq.job import JobStatus

        from rolsync import jobs, resources
        from rolsync.extensions import db
        from rolsync.rules.store import active_rules

        assert self.account_id is not None, "set by _prepare_app()"
        account_id = self.account_id
        started = time.monotonic()
        with app.app_context():
            first_run = active_rules(db.session).definition["first_run"]
            self.say(f"Importing the mailbox; a first run reads the newest {first_run['inbox']} messages of the "
                     f"Inbox and {first_run['sent']} of Sent (an Import rules setting)…")
            queue = resources.get().queue
            job, _created = jobs.enqueue_import(queue, account_id)
            deadline = started + self.options.import_timeout
            shown = None
            while True:
                self._check_children()
                status = job.get_status(refresh=True)
                if status == JobStatus.FINISHED:
                    result = job.return_value(refresh=True) or {}
                    if not result.get("more"):
                        break
                    # The run handed over to a new job (ROLSYNC_IMPORT_RUN_MESSAGES); wait for that one.
                    time.sleep(1)
                    job = jobs.enqueue_import(queue, account_id)[0]
                    continue
                if status == JobStatus.FAILED:
                    latest = job.latest_result()
                    error = (latest.exc_string or "").strip().splitlines()[-1:] if latest else []
                    raise DemoError(f"the first import failed: {error[0] if error else 'see the worker log'}")
                progress = (job.get_meta(refresh=True) or {}).get("progress") or {}
                if progress.get("total") and (progress["done"], progress["total"]) != shown:
                    shown = (progress["done"], progress["total"])
                    self.say(f"  {shown[0]} of {shown[1]} messages")
                if time.monotonic() > deadline:
                    raise DemoError(f"the first import did not finish within {self.options.import_timeout:.0f} s; "
                                    f"the end of the worker's log:\n{self.children[0].log_tail()}")
                time.sleep(0.5)
            self._print_summary(time.monotonic() - started)

    def _print_summary(self, seconds: float) -> None:
        from sqlalchemy import func, select

        from rolsync.extensions import db
        from rolsync.history import outcomes
        from rolsync.labels import warning_kind_label
        from rolsync.models import Document, ImportWarning, Note, User, WarningKind, WarningStatus

        session = db.session
        admin = session.scalar(select(User).where(User.email == sample.ADMIN.email))
        notes = session.scalar(select(func.count(Note.id)))
        documents = session.scalar(select(func.count(Document.id)))
        records = ((session.scalar(select(func.count(func.distinct(Note.contact_id)))) or 0)
                   + (session.scalar(select(func.count(func.distinct(Note.candidate_id)))) or 0))
        open_warnings: list[tuple[str, int]] = [(kind, n) for kind, n in session.execute(
            select(ImportWarning.kind, func.count(ImportWarning.id))
            .where(ImportWarning.status == WarningStatus.OPEN.value).group_by(ImportWarning.kind)).all()]
        assert admin is not None, "created by _prepare_app()"
        decided = outcomes(session, admin)
        self.say(f"First import done in {seconds:.0f} s: {sum(c.count for c in decided)} messages decided")
        self.say(f"  notes: {notes} on {records} records; documents: {documents}")
        for count in decided:
            self.say(f"  {count.count:>4}  {count.label}")
        # Applications from new people have their own page and line.
        new_people = sum(n for kind, n in open_warnings if kind == WarningKind.INTAKE.value)
        open_warnings = [(kind, n) for kind, n in open_warnings if kind != WarningKind.INTAKE.value]
        warnings = sum(n for _kind, n in open_warnings)
        kinds = ", ".join(f"{n} {warning_kind_label(kind).lower()}" for kind, n in open_warnings)
        self.say(f"  warnings to resolve: {warnings}" + (f" ({kinds})" if kinds else ""))
        if new_people:
            self.say(f"  new people who sent an application: {new_people}")

    # -- ready --------------------------------------------------------------------------------

    def _print_ready(self, env: dict[str, str]) -> None:
        """The URL and the passwords, shown this once (nothing else keeps them in clear); the CLI's settings."""
        width = max(len(sample.ADMIN.email), len(sample.CONSULTANT.email))
        self.say()
        self.say(f"rolsync demo is ready: {self.url}")
        self.say("Sign in as")
        self.say(f"  consultant  {sample.CONSULTANT.email:<{width}}  password: {self.credentials.consultant}"
                 "   (notes, documents, warnings, import history)")
        self.say(f"  admin       {sample.ADMIN.email:<{width}}  password: {self.credentials.admin}"
                 "   (also Import rules and Users)")
        self.say("The passwords are shown only now; the database keeps only their hashes.")
        self.say("To use the `flask` commands on the demo's data, in another terminal (while the demo runs):")
        settings = " ".join(f"{key}={shlex.quote(env[key])}" for key in _CLI_SETTINGS if key in env)
        activate = shlex.quote(os.path.join(sys.prefix, "bin", "activate"))
        self.say(f"  cd {shlex.quote(os.getcwd())} && . {activate} && export {settings}")
        self.say(f"  flask warnings export   (or: flask mail reconcile {sample.CONSULTANT.email})")
        self.say("Press Ctrl-C to stop the demo; it removes everything it made.")

    def _wait_for_ctrl_c(self) -> None:
        while True:
            self._check_children()
            time.sleep(1)

    # -- stopping ---------------------------------------------------------------------------------

    def _stop_everything(self) -> None:
        """Stop the web server, the worker (and its scheduler children), Dovecot; forget all state."""
        for child in reversed(self.children):
            dovecot.stop_process_group(child.process, STOP_TIMEOUT)
        self.children.clear()
        if self.dovecot is not None:
            self.dovecot.stop()
            self.dovecot = None
        self._forget_queue()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
            self.say("The demo has stopped everything it started and removed its files.")

    def _forget_queue(self) -> None:
        """Delete this run's state from Redis: its queue, its jobs and their results, locks, sign-in counters.

        Left to expire by themselves (within minutes): the worker's and the cron
        scheduler's own registrations, which RQ keeps a little after they stop.
        """
        from redis import Redis
        from redis.exceptions import RedisError
        from rq import Queue
        from rq.job import Job
        from rq.results import Result

        try:
            redis = Redis.from_url(self.options.redis_url, socket_connect_timeout=3)
            queue = Queue(self.queue_name, connection=redis)
            job_ids = set(queue.get_job_ids())
            for registry in (queue.started_job_registry, queue.finished_job_registry, queue.failed_job_registry,
                             queue.scheduled_job_registry, queue.deferred_job_registry,
                             queue.canceled_job_registry):
                job_ids.update(registry.get_job_ids())
            for job in Job.fetch_many(sorted(job_ids), connection=redis):
                if job is not None:
                    Result.delete_all(job)
                    job.delete()
            keys = list(redis.scan_iter(match=f"*{self.queue_name}*", count=1000))
            if keys:
                redis.delete(*keys)
        except RedisError:
            pass  # everything here carries this run's unique queue name; no later run reads it


