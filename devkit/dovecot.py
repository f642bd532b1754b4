"""A throw-away Dovecot IMAP server on loopback ports, for tests and the demo.

Usage::

    from pathlib import Path
    from devkit.dovecot import DovecotServer

    with DovecotServer(Path("/tmp/some-empty-dir")) as server:
        server.add_user("alice", "s3cret")
        uid = server.append("alice", "s3cret", "INBOX", b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        # connect to server.host:server.ssl_port (implicit TLS) or
        # server.host:server.starttls_port (plain, upgraded with STARTTLS),
        # trusting server.ca_pem (PEM text of the CA that signed the server's
        # certificate for "localhost" and "127.0.0.1").

What the server offers:

- IMAPS on ``ssl_port`` and IMAP with STARTTLS on ``starttls_port``, both on
  127.0.0.1 and picked free at start. ``ssl = required`` so a client that does
  not use TLS cannot log in from another address; Dovecot treats a connection
  whose remote address equals its local address (127.0.0.1 to 127.0.0.1) as
  secure, so on loopback it still accepts LOGIN before STARTTLS.
- Users from passwd-files, one per user in ``base_dir/users/<user>``, so
  ``add_user`` takes effect at once while the server runs. (Dovecot re-reads a
  passwd-file only when its size or whole-second mtime changed, and checks at
  most once a second: one shared file would hide a user added within the same
  second as the previous login. Changing an existing user's password therefore
  waits for the next second.)
- Every user's mail is a Maildir under ``base_dir/mail/<user>/Maildir``, owned
  by the ``mail`` user (uid 8, gid 8), because Dovecot refuses to access mail
  as root. Mail processes chroot into ``base_dir/mail``, so ``base_dir`` may sit
  below directories only root can enter (pytest's temporary directories do).
- Failed logins cost nothing: Dovecot's auth penalty and failure delay are off.
- With ``oauth2_introspection_url`` (an RFC 7662 endpoint, client credentials
  in the URL as ``http://id:secret@host:port/path``), Dovecot also accepts
  XOAUTH2 and OAUTHBEARER: its ``oauth2`` passdb POSTs each bearer token there
  (``introspection_mode = post``) and logs the user in when the answer says
  ``"active": true`` and its ``username`` is the login name. Passwords keep
  working as before; without the option the configuration is unchanged.
- With ``imap_capability``, that is what the server advertises after login
  (a list without IDLE plays a server that has no push).
- SPECIAL-USE (RFC 6154): one namespace with "/" as separator in which the
  mailboxes named in ``SENT_SPECIAL_USE`` ("Sent", "Gesendete Objekte") carry
  ``\\Sent`` whenever they exist. They are not created automatically, so a test
  decides whether a user has a Sent folder at all; any other name ("Sent Items",
  "Éléments envoyés") created with ``create_folder`` has no special-use flag
  and can only be found by name.

The configuration is self-contained (no ``!include`` of /etc/dovecot) and keeps
its sockets, state and log in ``base_dir``, with a unique ``instance_name``, so
several servers can run side by side and next to a system Dovecot. ``stop()``
ends the master process, which takes its children with it.

This module imports nothing from pytest: the demo script uses it too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import trustme
from imapclient import IMAPClient

DOVECOT_BINARY = "/usr/sbin/dovecot"

MAIL_UID = 8
"""Debian's ``mail`` user: Dovecot will not read or write mail as root."""

MAIL_GID = 8

SENT_SPECIAL_USE = ("Sent", "Gesendete Objekte")
"""Mailbox names that the namespace flags ``\\Sent`` whenever they exist."""

START_TIMEOUT = 15.0
"""Seconds to wait for both ports to accept connections."""

STOP_TIMEOUT = 10.0
"""Seconds to wait for the master process to exit after SIGTERM."""

# Also a file name, and within Dovecot's default auth_username_chars.
_USERNAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]*$")

_CONFIG = """\
# Written by devkit/dovecot.py; self-contained on purpose.
instance_name = {instance_name}
base_dir = {run_dir}
state_dir = {state_dir}
log_path = {log_path}
info_log_path = {log_path}
debug_log_path = {log_path}
auth_verbose = yes

protocols = imap
listen = 127.0.0.1

# Dovecot's processes otherwise reach for /etc and /var; these pin them here.
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {mail_uid}
last_valid_uid = 0
first_valid_gid = 1

ssl = required
ssl_cert = <{cert_path}
ssl_key = <{key_path}
ssl_min_protocol = TLSv1.2

auth_mechanisms = {auth_mechanisms}
# A wrong password answers at once: tests exercise it on purpose.
auth_failure_delay = 0
auth_cache_size = 0

passdb {{
  driver = passwd-file
  args = scheme=SSHA256 {users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = {users_dir}/%u
  # "/./" makes Dovecot chroot into base_dir/mail before dropping to the mail
  # user, so the mail user needs no access to the (often 0700) parents of
  # base_dir, such as pytest's temporary directory.
  default_fields = uid={mail_uid} gid={mail_gid} home={mail_dir}/./%u
}}
{oauth2_passdb}valid_chroot_dirs = {mail_dir}

mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
mailbox_list_index = yes

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{sent_mailboxes}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}

service anvil {{
  # Without this, every failed login from 127.0.0.1 slows later logins by
  # seconds (auth penalty); tests fail logins on purpose.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service auth {{
  # The passwd-file lives under base_dir, whose parents may be root-only.
  user = root
}}
"""

_OAUTH2_PASSDB = """\
# Bearer tokens (XOAUTH2, OAUTHBEARER) are checked by asking the OAuth server.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {config_path}
}}
"""

_OAUTH2_CONFIG = """\
# Written by devkit/dovecot.py: tokens are checked with RFC 7662 introspection.
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
"""

_SENT_MAILBOX = """\
  mailbox "{name}" {{
    special_use = \\Sent
    auto = no
  }}
"""


class DovecotError(RuntimeError):
    """The test Dovecot could not be started or driven; the log tail says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ssha256(password: str) -> str:
    """Hash a password the way Dovecot's SSHA256 scheme expects (digest + salt, base64)."""
    salt = os.urandom(8)
    digest = hashlib.sha256(password.encode("utf-8") + salt).digest()
    return base64.b64encode(digest + salt).decode("ascii")


class DovecotServer:
    """One Dovecot master process serving IMAPS and IMAP+STARTTLS on loopback."""

    host = "127.0.0.1"

    def __init__(self, base_dir: Path, *, oauth2_introspection_url: str | None = None,
                 imap_capability: str | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.oauth2_introspection_url = oauth2_introspection_url
        # What the server advertises after login, e.g. without IDLE to play an older server.
        self.imap_capability = imap_capability
        self.ssl_port = 0
        self.starttls_port = 0
        self.ca = trustme.CA()
        self.ca_pem: str = self.ca.cert_pem.bytes().decode("ascii")
        self._process: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.base_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "dovecot.log"

    @property
    def users_dir(self) -> Path:
        return self.base_dir / "users"

    @property
    def mail_dir(self) -> Path:
        return self.base_dir / "mail"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def oauth2_config_path(self) -> Path:
        return self.base_dir / "dovecot-oauth2.conf.ext"

    @property
    def ca_path(self) -> Path:
        """The CA certificate as a PEM file, for tools that want a path."""
        return self.base_dir / "tls" / "ca.pem"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration and run Dovecot until both ports answer."""
        if self.is_running:
            return
        self._prepare_files()
        # The ports are only reserved while probing, so another process may
        # take one before Dovecot binds it: pick again in that case.
        for attempt in range(3):
            self.ssl_port = free_port(self.host)
            self.starttls_port = free_port(self.host)
            while self.starttls_port == self.ssl_port:
                self.starttls_port = free_port(self.host)
            self._write_config()
            try:
                self._launch()
                return
            except DovecotError:
                if attempt == 2 or "in use" not in self._startup_output():
                    raise

    def restart(self) -> None:
        """Stop and start again on the same ports, keeping users and mail (a server restart)."""
        self.stop()
        self._write_config()
        for _ in range(50):
            try:
                self._launch()
                return
            except DovecotError:
                # The old listener's port may linger for a moment.
                if "in use" not in self._startup_output():
                    raise
                time.sleep(0.1)
        raise DovecotError("Dovecot did not come back on its ports")

    def stop(self) -> None:
        """End the master process and its children; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            # Dovecot was started in its own session, so its process group
            # holds exactly the processes this server started.
            stop_process_group(process, STOP_TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        """The end of Dovecot's log, for error messages."""
        return file_tail(self.log_path, lines)

    def _prepare_files(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        tls_dir = self.base_dir / "tls"
        tls_dir.mkdir(exist_ok=True)
        (self.base_dir / "state").mkdir(exist_ok=True)
        self.mail_dir.mkdir(exist_ok=True)
        os.chown(self.mail_dir, MAIL_UID, MAIL_GID)
        self.mail_dir.chmod(0o755)

        leaf = self.ca.issue_cert("localhost", "127.0.0.1")
        (tls_dir / "server.pem").write_bytes(
            b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        )
        key_path = tls_dir / "server.key"
        key_path.write_bytes(leaf.private_key_pem.bytes())
        key_path.chmod(0o600)
        self.ca_path.write_text(self.ca_pem)
        self.users_dir.mkdir(mode=0o700, exist_ok=True)

    def _write_config(self) -> None:
        sent = "".join(_SENT_MAILBOX.format(name=name) for name in SENT_SPECIAL_USE)
        mechanisms, oauth2_passdb = "plain login", ""
        if self.oauth2_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            oauth2_passdb = _OAUTH2_PASSDB.format(config_path=self.oauth2_config_path)
            self.oauth2_config_path.write_text(
                _OAUTH2_CONFIG.format(introspection_url=self.oauth2_introspection_url), encoding="utf-8")
            # It names the introspection client's secret.
            self.oauth2_config_path.chmod(0o600)
        capability = f"imap_capability = {self.imap_capability}\n" if self.imap_capability else ""
        self.config_path.write_text(
            capability + _CONFIG.format(
                # Unique per server so doveadm and process titles never mix
                # this instance up with another test server or a system one.
                instance_name=f"rolsync-test-{uuid.uuid4().hex[:12]}",
                run_dir=self.run_dir,
                state_dir=self.base_dir / "state",
                log_path=self.log_path,
                mail_uid=MAIL_UID,
                mail_gid=MAIL_GID,
                cert_path=self.base_dir / "tls" / "server.pem",
                key_path=self.base_dir / "tls" / "server.key",
                users_dir=self.users_dir,
                mail_dir=self.mail_dir,
                sent_mailboxes=sent,
                auth_mechanisms=mechanisms,
                oauth2_passdb=oauth2_passdb,
                ssl_port=self.ssl_port,
                starttls_port=self.starttls_port,
            ),
            encoding="utf-8",
        )

    def _launch(self) -> None:
        # -F keeps the master in the foreground so this object owns its pid;
        # a new session gives it a process group that stop() can clean up.
        with open(self.base_dir / "dovecot.stderr", "ab") as stderr:
            self._process = subprocess.Popen(
                [DOVECOT_BINARY, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        waiting = {self.ssl_port, self.starttls_port}
        while waiting:
            if self._process.poll() is not None:
                self._process = None
                raise DovecotError(
                    "Dovecot exited during start-up:\n" + self._startup_output()
                )
            for port in list(waiting):
                try:
                    with socket.create_connection((self.host, port), timeout=1):
                        waiting.discard(port)
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                self.stop()
                raise DovecotError(
                    "Dovecot did not open its ports in time:\n" + self._startup_output()
                )
            if waiting:
                time.sleep(0.05)

    def _startup_output(self) -> str:
        stderr = (self.base_dir / "dovecot.stderr").read_text(errors="replace")
        return (stderr + "\n" + self.log_tail()).strip()

    # -- users and mailboxes -------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        """Add a login, or change its password; takes effect while the server runs."""
        if not _USERNAME.match(username):
            raise ValueError(f"unsupported test username: {username!r}")
        if "\n" in password:
            raise ValueError("a password may not contain a newline")
        path = self.users_dir / username
        previous = path.stat().st_mtime if path.exists() else None
        # Write-then-rename so Dovecot never reads a half-written file.
        tmp = path.with_name(f".{username}.tmp")
        tmp.write_text(f"{username}:{{SSHA256.b64}}{_ssha256(password)}::::::\n")
        tmp.chmod(0o600)
        tmp.replace(path)
        if previous is not None:
            # Dovecot notices a change only if the whole-second mtime (or the
            # size) differs, and looks at most once a second.
            stamp = max(time.time(), int(previous) + 1)
            os.utime(path, (stamp, stamp))
            time.sleep(1.02 - time.time() % 1)
        # Dovecot chdirs into the home at login and logs an error if it is
        # missing, so create it as the mail user ahead of time.
        home = self.mail_dir / username
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, MAIL_UID, MAIL_GID)

    def client(self, username: str, password: str) -> IMAPClient:
        """A logged-in IMAPClient over IMAPS that trusts this server's CA."""
        context = ssl.create_default_context(cadata=self.ca_pem)
        client = IMAPClient(
            self.host, port=self.ssl_port, ssl=True, ssl_context=context, timeout=30
        )
        try:
            client.login(username, password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(
        self,
        username: str,
        password: str,
        folder: str,
        raw_bytes: bytes,
        flags: Sequence[str | bytes] = (),
        date: datetime | None = None,
    ) -> int:
        """Append one message (creating the folder if needed) and return its UID."""
        with self.client(username, password) as client:
            _ensure_folder(client, folder)
            return _append(client, folder, raw_bytes, flags, date)

    def append_many(
        self,
        username: str,
        password: str,
        folder: str,
        messages: Iterable[bytes],
        flags: Sequence[str | bytes] = (),
    ) -> list[int]:
        """Append many messages over one connection; return their UIDs in order."""
        with self.client(username, password) as client:
            _ensure_folder(client, folder)
            return [_append(client, folder, raw, flags, None) for raw in messages]

    def create_folder(
        self,
        username: str,
        password: str,
        name: str,
        special_use: str | None = None,
    ) -> None:
        """Create a folder; ``special_use="\\\\Sent"`` only for names in SENT_SPECIAL_USE.

        Dovecot takes special-use flags from its configuration, not from the
        client, so asking for a flag on any other name is a test bug.
        """
        if special_use is not None:
            if special_use.lower() != "\\sent" or name not in SENT_SPECIAL_USE:
                raise ValueError(
                    f"this server flags {special_use} only on {SENT_SPECIAL_USE}"
                )
        with self.client(username, password) as client:
            _ensure_folder(client, name)

    def delete_folder(self, username: str, password: str, name: str) -> None:
        """Delete a folder and the messages in it."""
        with self.client(username, password) as client:
            client.delete_folder(name)

    def uidvalidity(self, username: str, password: str, folder: str) -> int:
        """The folder's current UIDVALIDITY."""
        with self.client(username, password) as client:
            return client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]

    def flags(self, username: str, password: str, folder: str, uid: int) -> set[str]:
        """The flags of one message, read without changing them."""
        with self.client(username, password) as client:
            client.select_folder(folder, readonly=True)
            found = client.get_flags([uid]).get(uid, ())
        return {flag.decode() if isinstance(flag, bytes) else flag for flag in found}


def file_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file ("" when there is none yet)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    """Stop `process`, started in a session of its own, and every process of its group.

    SIGTERM asks for a clean stop, a second one (RQ's cold shutdown) insists,
    then SIGKILL; what is left of the group (children the leader did not
    reap) gets the same, so nothing outlives it.
    """
    group = process.pid
    for _attempt in range(2):
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout / 2)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.kill()
        process.wait()
    deadline = time.monotonic() + timeout / 2
    while live_members(group) and time.monotonic() < deadline:
        _signal_group(group, signal.SIGTERM)
        time.sleep(0.05)
    if live_members(group):
        _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def live_members(pgid: int) -> list[int]:
    """Processes of a process group that have not exited (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if folder.upper() != "INBOX" and not client.folder_exists(folder):
        client.create_folder(folder)


def _append(
    client: IMAPClient,
    folder: str,
    raw: bytes,
    flags: Sequence[str | bytes],
    date: datetime | None,
) -> int:
    response = client.append(folder, raw, flags=flags, msg_time=date)
    # Dovecot answers with UIDPLUS: "[APPENDUID <uidvalidity> <uid>] ..."
    match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response)
    if match is None:
        raise DovecotError(f"APPEND gave no APPENDUID: {response!r}")
    return int(match.group(1))
