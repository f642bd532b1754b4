"""The IDLE watcher (`python worker.py --watch`): mail is queued for import the moment the server reports it.

One watcher process holds many mailboxes (up to PUSH_MAX_MAILBOXES, 1,000 by
default) with one thread: each mailbox is one IMAP connection in IDLE on its
Inbox, and every such socket sits in one `selectors` selector. The blocking
steps (connect, TLS, login, EXAMINE, re-issuing IDLE, logout) run in a small
thread pool (PUSH_CONNECT_THREADS), so a slow server never holds up the others;
a mailbox in IDLE costs its socket and a few objects, and nothing at all while
no mail arrives.

What a watcher does with a mailbox:

* it holds it with a Redis lease (rolsync.push), renewed every third of
  PUSH_LEASE_SECONDS; several watchers share the mailboxes without two holding
  the same one, and the mailboxes of a watcher that dies are taken over by the
  others once its leases lapse (within PUSH_LEASE_SECONDS + PUSH_REFRESH_SECONDS);
* it connects through rolsync.mail.imap (password or XOAUTH2, from the same
  settings as the import), EXAMINEs the Inbox, asks for NOTIFY on the Sent folder
  where the server offers it (RFC 5465), and enters IDLE (RFC 2177), re-issued every
  PUSH_IDLE_RENEW_SECONDS (at most 29 minutes);
* on EXISTS or RECENT (or a NOTIFY STATUS for Sent) it queues the mailbox's import
  with `jobs.enqueue_import`: the same fixed job id and Redis lock as the schedule,
  so push and poll never import a message twice nor run two imports at once. While
  the import is already running, it queues another once that one is done (the
  running one may have listed the folder before the new mail came);
* on (re)connecting it queues an import if the Inbox's UIDNEXT moved since the
  last import read it to the end, so mail that came while nobody watched is taken in;
* BYE and dropped connections are transient: it reconnects after 1, 2, 4...
  seconds (jittered, at most PUSH_BACKOFF_MAX_SECONDS). A refused login counts
  towards the same pause as the import's (`accounts.record_auth_failure`) and is
  not retried until the settings change or a poll interval passes; paused
  mailboxes (refused logins, the UIDVALIDITY breaker) are let go;
* every PUSH_REFRESH_SECONDS it re-reads the mailboxes from the database: new ones,
  ones switched off (per mailbox or for all), and changed credentials or OAuth
  consent (a fingerprint of the stored settings), which it reconnects with;
* a server without IDLE is left to the schedule (asked again hourly or when the
  settings change).
"""
from __future__ import annotations

import hashlib
import imaplib
import logging
import random
import selectors
import signal
import socket
import ssl
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from flask import Flask
from imapclient import imap_utf7
from redis import Redis
from redis.exceptions import RedisError
from rq.job import JobStatus
from sqlalchemy import select

from rolsync import jobs, push, resources
from rolsync.accounts import record_auth_failure
from rolsync.crypto import SecretUnreadable
from rolsync.extensions import db
from rolsync.mail.errors import AuthFailed, ConnectionLost, MailError
from rolsync.mail.imap import MailboxSession
from rolsync.models import FolderState, MailAccount

log = logging.getLogger(__name__)

# imaplib refuses commands it does not know; IMAPClient registers IDLE the same way.
imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))

NO_IDLE_RECHECK_SECONDS = 3600
"""A server without IDLE is asked again this often (it may have been upgraded)."""

TICK_SECONDS = 1.0
"""The longest the loop sleeps: timers (renewals, back-off, a pending enqueue) are this precise."""

_RENEW_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class NoIdle(Exception):
    """The server does not offer IDLE: the mailbox is left to the schedule."""


class Gone(Exception):
    """The mailbox was deleted, switched off or paused meanwhile."""


class IdleSession(MailboxSession):
    """A MailboxSession that sits in IDLE on the examined folder, read without blocking."""

    def start_idle(self) -> None:
        with self._translating() as client:
            client.idle()
            # From here on only the watcher's loop reads, and never waits.
            client._imap.sock.setblocking(False)

    def fileno(self) -> int:
        with self._translating() as client:
            return client._imap.sock.fileno()

    def read_pending(self) -> list[bytes]:
        """The response lines the server has sent so far; ConnectionLost when it has hung up."""
        with self._translating() as client:
            imap = client._imap
            lines = []
            try:
                while True:
                    lines.append(imap._get_line())
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, TimeoutError):
                return lines  # nothing more for now
            except imaplib.IMAP4.abort as exc:
                raise ConnectionLost(message="The mail server closed the connection.") from exc

    def stop_idle(self) -> list[bytes]:
        """End IDLE (waiting for the server's answer); the untagged lines that came before it."""
        with self._translating() as client:
            client._imap.sock.settimeout(self.settings.timeout)
            _text, responses = client.idle_done()
        # Parsed by IMAPClient, e.g. (12, b"EXISTS"): back to the line they came from.
        return [b"* " + b" ".join(_as_bytes(part) for part in (response if isinstance(response, tuple)
                                                                 else (response,)))
                for response in responses]

    def notify_sent(self, folder: str) -> bool:
        """Ask for new mail in `folder` to be reported too (NOTIFY, RFC 5465); False if the server declines."""
        name = imap_utf7.encode(folder).replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        with self._translating() as client:
            try:
                typ, _data = client._imap._simple_command(
                    "NOTIFY", "SET", "(SELECTED (MessageNew MessageExpunge))",
                    b'(MAILBOXES "' + name + b'" (MessageNew MessageExpunge))')
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error:
                return False
        return typ == "OK"


def is_new_mail(line: bytes) -> bool:
    """`* 12 EXISTS`, `* 1 RECENT`, or a NOTIFY `* STATUS "Sent" (...)` for another folder."""
    parts = line.split(None, 3)
    if len(parts) < 2 or parts[0] != b"*":
        return False
    if parts[1].upper() == b"STATUS":
        return True
    return len(parts) >= 3 and parts[1].isdigit() and parts[2].upper() in (b"EXISTS", b"RECENT")


def is_bye(line: bytes) -> bool:
    return line[:5].upper() == b"* BYE"


def fingerprint(account: MailAccount) -> str:
    """What a connection depends on: a change (new password, new consent, another server) means reconnecting.

    The access token is left out: it is renewed hourly, and an open connection stays signed in.
    """
    parts = (account.host, account.port, account.security, account.username, account.auth_method,
             account.password_encrypted, account.oauth_provider, account.oauth_refresh_token_encrypted,
             account.ca_pem)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class State(str, Enum):
    WAITING = "waiting"
    """Not connected; connects at `next_attempt`."""
    BUSY = "busy"
    """A pool task (connect, renew, close) is working on it."""
    IDLE = "idle"
    """In IDLE, its socket in the selector."""
    PARKED = "parked"
    """Not watched (no IDLE, refused login, unreadable secret) until its settings change or `next_attempt`."""


@dataclass
class Watch:
    """One mailbox this watcher holds."""

    account_id: int
    fingerprint: str
    sent_folder: str | None
    state: State = State.WAITING
    session: IdleSession | None = None
    generation: int = 0
    next_attempt: float = 0.0
    failures: int = 0
    idle_since: float = 0.0
    live: str | None = None
    enqueue_due: bool = False


@dataclass
class Connected:
    session: IdleSession
    live: str
    behind: bool
    """The Inbox has mail the last import did not read to the end."""


@dataclass
class Wanted:
    fingerprint: str
    sent_folder: str | None


@dataclass
class Watcher:
    """The loop; `run()` until `stop()` (or SIGTERM / SIGINT through `run_watcher`)."""

    app: Flask
    watcher_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        config = self.app.config
        self.lease_ms = int(config["PUSH_LEASE_SECONDS"] * 1000)
        self.refresh_every = float(config["PUSH_REFRESH_SECONDS"])
        self.renew_idle_every = float(config["PUSH_IDLE_RENEW_SECONDS"])
        self.capacity = int(config["PUSH_MAX_MAILBOXES"])
        self.backoff_max = float(config["PUSH_BACKOFF_MAX_SECONDS"])
        self.timeout = float(config["IMAP_TIMEOUT"])
        self.watches: dict[int, Watch] = {}
        self.selector = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(max_workers=max(1, int(config["PUSH_CONNECT_THREADS"])),
                                       thread_name_prefix="watch")
        self.tasks: dict[Future, tuple[Watch, int, str, IdleSession | None]] = {}
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        svc = resources.Services(config, self.app.instance_path)
        self.redis: Redis = svc.redis
        self.queue = svc.queue
        self._renew_lease = self.redis.register_script(_RENEW_LEASE)
        self._release_lease = self.redis.register_script(_RELEASE_LEASE)

    # -- the loop --------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def run(self) -> None:
        log.info("watcher %s started (at most %s mailboxes)", self.watcher_id, self.capacity)
        next_refresh = next_lease_renewal = 0.0
        try:
            with self.app.app_context():
                while not self._stopping:
                    now = time.monotonic()
                    if now >= next_refresh:
                        self._guarded(self.refresh)
                        next_refresh = now + self.refresh_every
                        next_lease_renewal = min(next_lease_renewal, now + self.lease_ms / 3000)
                    if now >= next_lease_renewal:
                        self._guarded(self.renew_leases)
                        next_lease_renewal = now + self.lease_ms / 3000
                    self._collect_tasks()
                    self._start_due_work(now)
                    self._guarded(self._enqueue_due)
                    for key, _events in self.selector.select(timeout=TICK_SECONDS):
                        if key.data is None:
                            self._drain_wake()
                        else:
                            self._on_readable(key.data)
        finally:
            self._shutdown()

    def _guarded(self, step) -> None:
        """Redis or the database away for a moment must not end the watcher: the next tick tries again."""
        try:
            step()
        except Exception:
            log.exception("watcher step %s failed; trying again shortly", getattr(step, "__name__", step))
            db.session.remove()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already awake, or shutting down

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # -- which mailboxes: the database and the leases ---------------------------------------------

    def wanted(self) -> dict[int, Wanted]:
        """The mailboxes to watch: enabled, not paused, push on for them and for the deployment."""
        session = db.session
        try:
            if not push.push_on(session):
                return {}
            accounts = session.scalars(select(MailAccount).where(
                MailAccount.enabled.is_(True), MailAccount.paused.is_(False), MailAccount.push_enabled.is_(True)))
            sent = dict(session.execute(select(FolderState.account_id, FolderState.name)
                                        .where(FolderState.role == "sent")).tuples().all())
            return {a.id: Wanted(fingerprint(a), sent.get(a.id)) for a in accounts}
        finally:
            session.remove()

    def refresh(self) -> None:
        wanted = self.wanted()
        for account_id in [i for i in self.watches if i not in wanted]:
            log.info("account %s: no longer watched (switched off, paused or removed)", account_id)
            self._drop(self.watches[account_id], release=True)
        for account_id, want in wanted.items():
            watch = self.watches.get(account_id)
            if watch is not None and (watch.fingerprint, watch.sent_folder) != (want.fingerprint, want.sent_folder):
                log.info("account %s: settings changed; reconnecting", account_id)
                self._reset(watch)
                watch.fingerprint, watch.sent_folder = want.fingerprint, want.sent_folder
                watch.failures, watch.next_attempt = 0, 0.0
        room = self.capacity - len(self.watches)
        free = [i for i in wanted if i not in self.watches]
        # Shuffled, so watchers starting together end up with a share each rather than racing in id order.
        random.shuffle(free)
        for account_id in free[:max(room, 0)]:
            if self.redis.set(push.lease_key(self.queue.name, account_id), self.watcher_id, nx=True,
                              px=self.lease_ms):
                want = wanted[account_id]
                self.watches[account_id] = Watch(account_id, want.fingerprint, want.sent_folder)
                log.info("account %s: now watched by %s", account_id, self.watcher_id)

    def renew_leases(self) -> None:
        watches = list(self.watches.values())
        if not watches:
            return
        pipe = self.redis.pipeline(transaction=False)
        for watch in watches:
            self._renew_lease(keys=[push.lease_key(self.queue.name, watch.account_id)],
                              args=[self.watcher_id, self.lease_ms], client=pipe)
            if watch.live:
                pipe.set(push.live_key(self.queue.name, watch.account_id), watch.live, px=self.lease_ms)
        results = pipe.execute()
        held = iter(results)
        for watch in watches:
            still_ours = next(held)
            if watch.live:
                next(held)
            if not still_ours:
                # We stalled past the lease and another watcher may have it: let it.
                log.warning("account %s: lease lost; letting it go", watch.account_id)
                self._drop(watch, release=False)

    # -- per-mailbox work ------------------------------------------------------------------------

    def _start_due_work(self, now: float) -> None:
        for watch in list(self.watches.values()):
            if watch.state in (State.WAITING, State.PARKED) and now >= watch.next_attempt:
                self._submit(watch, "connect", None, self._connect, watch.account_id, watch.sent_folder)
            elif watch.state is State.IDLE and watch.session is not None \
                    and now - watch.idle_since >= self.renew_idle_every:
                self._unregister(watch)
                self._submit(watch, "renew", watch.session, self._renew, watch.session)

    def _submit(self, watch: Watch, kind: str, session: IdleSession | None, fn, *args: Any) -> None:
        watch.state = State.BUSY
        future = self.pool.submit(fn, *args)
        self.tasks[future] = (watch, watch.generation, kind, session)
        future.add_done_callback(lambda _f: self._wake())

    def _collect_tasks(self) -> None:
        for future in [f for f in self.tasks if f.done()]:
            watch, generation, kind, session = self.tasks.pop(future)
            current = self.watches.get(watch.account_id) is watch and watch.generation == generation
            error = None if future.cancelled() else future.exception()
            result = None if error or future.cancelled() else future.result()
            if not current:
                # Dropped or reset while the task ran: whatever it opened or held is not wanted any more.
                opened = result.session if isinstance(result, Connected) else session
                if opened is not None:
                    self.pool.submit(opened.close)
                continue
            watch.state = State.WAITING  # the task is over; the handlers below say what comes next
            try:
                if kind == "connect":
                    self._connected(watch, result, error)
                else:
                    self._renewed(watch, result, error)
            except Exception as exc:  # one mailbox's surprise must not stop the others' push
                log.exception("account %s: unexpected trouble after %s", watch.account_id, kind)
                self._back_off(watch, exc)

    def _connected(self, watch: Watch, result: Connected | None, error: BaseException | None) -> None:
        now = time.monotonic()
        if isinstance(error, NoIdle):
            log.info("account %s: the server does not offer IDLE; the schedule imports it", watch.account_id)
            self._park(watch, now + NO_IDLE_RECHECK_SECONDS)
        elif isinstance(error, Gone):
            watch.state, watch.next_attempt = State.PARKED, now + self.refresh_every
        elif isinstance(error, (AuthFailed, SecretUnreadable)) or (isinstance(error, MailError)
                                                                  and not error.transient):
            # Retrying would only repeat it (and a refused password may get the mailbox locked):
            # wait for new settings, or one poll interval.
            code = getattr(error, "code", type(error).__name__)
            log.warning("account %s: cannot watch (%s); waiting for new settings", watch.account_id, code)
            self._park(watch, now + self.app.config["POLL_INTERVAL_SECONDS"])
        elif error is not None:
            self._back_off(watch, error)
        else:
            assert result is not None
            watch.session, watch.failures = result.session, 0
            self._enter_idle(watch, result.live)
            if result.behind:
                watch.enqueue_due = True
            self._on_readable(watch)  # lines that came with IDLE's answer are already buffered

    def _renewed(self, watch: Watch, lines: list[bytes] | None, error: BaseException | None) -> None:
        if error is not None:
            self._back_off(watch, error)
            return
        self._enter_idle(watch, watch.live or push.LIVE_INBOX)
        self._handle_lines(watch, lines or [])
        self._on_readable(watch)

    def _enter_idle(self, watch: Watch, live: str) -> None:
        assert watch.session is not None
        watch.state, watch.idle_since = State.IDLE, time.monotonic()
        self.selector.register(watch.session.fileno(), selectors.EVENT_READ, watch)
        if watch.live != live:
            watch.live = live
            try:
                self.redis.set(push.live_key(self.queue.name, watch.account_id), live, px=self.lease_ms)
            except RedisError:
                log.warning("account %s: cannot mark it live in Redis", watch.account_id)

    def _on_readable(self, watch: Watch) -> None:
        if watch.state is not State.IDLE or watch.session is None:
            return
        try:
            lines = watch.session.read_pending()
        except MailError as exc:
            self._back_off(watch, exc)
            return
        self._handle_lines(watch, lines)

    def _handle_lines(self, watch: Watch, lines: list[bytes]) -> None:
        if any(is_new_mail(line) for line in lines):
            log.info("account %s: new mail reported", watch.account_id)
            watch.enqueue_due = True
            self._guarded(self._enqueue_due)
        if any(is_bye(line) for line in lines):
            self._back_off(watch, ConnectionLost(message="The mail server ended the connection (BYE)."))

    def _enqueue_due(self) -> None:
        for watch in self.watches.values():
            if not watch.enqueue_due:
                continue
            job, created = jobs.enqueue_import(self.queue, watch.account_id)
            # A running import may have listed the folder before this mail came: queue the next one
            # once it ends (checked every tick). A queued one has not started and will see it.
            watch.enqueue_due = not created and job.get_status(refresh=False) == JobStatus.STARTED
            if created:
                log.info("account %s: import queued (%s)", watch.account_id, job.id)

    def _back_off(self, watch: Watch, error: BaseException) -> None:
        delay = min(self.backoff_max, 2.0 ** watch.failures) * random.uniform(0.5, 1.0)
        watch.failures += 1
        code = getattr(error, "code", type(error).__name__)
        log.warning("account %s: connection trouble (%s); reconnecting in %.1fs", watch.account_id, code, delay)
        self._reset(watch)
        watch.next_attempt = time.monotonic() + delay

    def _park(self, watch: Watch, until: float) -> None:
        self._reset(watch)
        watch.state, watch.next_attempt = State.PARKED, until

    def _reset(self, watch: Watch) -> None:
        """Forget the connection (closed in the pool); WAITING. A task still running is ignored when it ends."""
        self._unregister(watch)
        session, watch.session = watch.session, None
        # While a task works on it, the session is closed by _collect_tasks once the task ends.
        if session is not None and watch.state is not State.BUSY:
            self.pool.submit(session.close)
        watch.generation += 1
        watch.state = State.WAITING
        watch.next_attempt = 0.0
        if watch.live:
            watch.live = None
            try:
                self.redis.delete(push.live_key(self.queue.name, watch.account_id))
            except RedisError:
                pass  # it expires with the lease

    def _unregister(self, watch: Watch) -> None:
        if watch.state is State.IDLE and watch.session is not None:
            try:
                self.selector.unregister(watch.session.fileno())
            except (KeyError, ValueError, MailError, OSError):
                pass

    def _drop(self, watch: Watch, release: bool) -> None:
        self._reset(watch)
        del self.watches[watch.account_id]
        if release:
            try:
                self._release_lease(keys=[push.lease_key(self.queue.name, watch.account_id)],
                                    args=[self.watcher_id])
            except RedisError:
                pass  # it lapses on its own

    def _shutdown(self) -> None:
        log.info("watcher %s stopping; letting %s mailboxes go", self.watcher_id, len(self.watches))
        for future in self.tasks:
            future.cancel()  # connects not started yet; the ones running end within the IMAP timeout
        for watch in list(self.watches.values()):
            self._guarded(lambda watch=watch: self._drop(watch, release=True))
        self.pool.shutdown(wait=True)
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the blocking steps, in the pool ---------------------------------------------------------

    def _connect(self, account_id: int, sent_folder: str | None) -> Connected:
        with self.app.app_context():
            try:
                return self._open(account_id, sent_folder)
            finally:
                db.session.remove()

    def _open(self, account_id: int, sent_folder: str | None) -> Connected:
        session = db.session
        account = session.get(MailAccount, account_id)
        if account is None or not account.enabled or account.paused:
            raise Gone()
        state = session.scalar(select(FolderState).where(FolderState.account_id == account_id,
                                                         FolderState.role == "inbox"))
        caught_up = state.caught_up_uidnext if state is not None else None
        uidvalidity = state.uidvalidity if state is not None else None
        svc = resources.get()
        mailbox = IdleSession(svc.imap_settings(account, self.timeout))
        try:
            mailbox.open()
        except AuthFailed:
            record_auth_failure(session, account, self.app.config["AUTH_FAILURES_BEFORE_PAUSE"])
            session.commit()
            raise
        try:
            if "IDLE" not in mailbox.capabilities:
                raise NoIdle()
            status = mailbox.examine("INBOX")
            live = push.LIVE_INBOX
            if sent_folder and "NOTIFY" in mailbox.capabilities and mailbox.notify_sent(sent_folder):
                live = push.LIVE_ALL
            mailbox.start_idle()
        except BaseException:
            mailbox.close()
            raise
        if account.auth_failures:
            # Signed in: the refused logins before were not in a row any more (as after an import).
            try:
                account.auth_failures = 0
                session.commit()
            except Exception:  # a busy database costs the reset, not the open connection
                session.rollback()
                log.warning("account %s: could not reset its refused-login count", account_id, exc_info=True)
        behind = (status.uidnext, status.uidvalidity) != (caught_up, uidvalidity)
        log.info("account %s: in IDLE (%s)", account_id, "Inbox and Sent" if live == push.LIVE_ALL else "Inbox")
        return Connected(mailbox, live, behind)

    def _renew(self, mailbox: IdleSession) -> list[bytes]:
        """IDLE again before the server's timeout ends it; the lines that came meanwhile."""
        lines = mailbox.stop_idle()
        mailbox.start_idle()
        return lines


def run_watcher(app: Flask) -> int:
    """`python worker.py --watch`: watch until SIGTERM or SIGINT, then let every mailbox go."""
    watcher = Watcher(app)

    def _stop(signum, _frame) -> None:
        log.info("watcher: signal %s; stopping", signum)
        watcher.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    watcher.run()
    return 0


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()

