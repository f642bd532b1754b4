"""MailboxSession and test_connection against a real Dovecot and a few fake servers."""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
import trustme

from devkit.dovecot import DovecotServer, free_port
from rolsync.mail import imap
from rolsync.mail.errors import AuthFailed, FolderNotFound, TlsError
from rolsync.mail.imap import ImapSettings, MailboxSession, Security

_user_numbers = itertools.count(1)


# -- builders -------------------------------------------------------------


def make_message(number: int, subject: str = "Hello") -> bytes:
    """A small RFC 5322 message with CRLF line ends, as IMAP returns it."""
    return (
        f"From: Candidate {number} <candidate{number}@example.org>\r\n"
        f"To: consultant@acme.test\r\n"
        f"Subject: {subject} {number}\r\n"
        f"Message-ID: <msg{number}@example.org>\r\n"
        f"Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
        f"\r\n"
        f"Body of message {number}.\r\n"
    ).encode()


@dataclass
class Mailbox:
    """A fresh Dovecot user and the settings that reach it."""

    server: DovecotServer
    username: str
    password: str

    def settings(self, **changes) -> ImapSettings:
        values = dict(
            host=self.server.host,
            port=self.server.ssl_port,
            security=Security.SSL,
            username=self.username,
            password=self.password,
            ca_pem=self.server.ca_pem,
            timeout=10.0,
        )
        values.update(changes)
        return ImapSettings(**values)

    def append(self, folder: str, raw: bytes, flags=()) -> int:
        return self.server.append(self.username, self.password, folder, raw, flags=flags)

    def append_many(self, folder: str, messages: list[bytes]) -> list[int]:
        return self.server.append_many(self.username, self.password, folder, messages)

    def create_folder(self, name: str, special_use: str | None = None) -> None:
        self.server.create_folder(self.username, self.password, name, special_use)


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    username = f"user{next(_user_numbers)}"
    password = "correct horse battery staple"
    dovecot.add_user(username, password)
    return Mailbox(dovecot, username, password)


class FakeServer:
    """A loopback TCP server that runs ``handle(conn)`` in a thread per connection."""

    def __init__(
        self,
        handle: Callable[[socket.socket, threading.Event], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handle = handle
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            with conn:
                try:
                    self.handle(conn, self.stopping)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopping.set()
        self.acceptor.join(5)
        self.listener.close()
        for worker in self.threads:
            worker.join(5)


def drain(conn: socket.socket, stopping: threading.Event) -> bytes:
    """Read until the client goes away (or the test ends); return the first chunk."""
    conn.settimeout(0.05)
    first = b""
    while not stopping.is_set():
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        first = first or chunk
    return first


def banner(data: bytes):
    """Greets with ``data`` at once, like an SMTP server."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(data)
        drain(conn, stopping)

    return handle


def answer_when_spoken_to(data: bytes):
    """Says nothing until the client sends something, like an HTTP server."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        conn.settimeout(0.05)
        while not stopping.is_set():
            try:
                if conn.recv(4096):
                    conn.sendall(data)
                    break
            except TimeoutError:
                continue
        drain(conn, stopping)

    return handle


def imap_without_starttls(conn: socket.socket, stopping: threading.Event) -> None:
    """Just enough IMAP to greet and list capabilities, with no STARTTLS."""
    conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")
    reader = conn.makefile("rb")
    with reader:
        for line in reader:
            tag, _, command = line.decode().strip().partition(" ")
            if command.upper() == "CAPABILITY":
                conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag.encode() + b" OK done\r\n")
            elif command.upper() == "LOGOUT":
                conn.sendall(b"* BYE bye\r\n" + tag.encode() + b" OK done\r\n")
                return
            else:
                conn.sendall(tag.encode() + b" BAD not here\r\n")


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(handle, tls: ssl.SSLContext | None = None) -> FakeServer:
        server = FakeServer(handle, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def other_ca() -> trustme.CA:
    """A CA that did not sign Dovecot's certificate."""
    return trustme.CA()


def settings_for(port: int, **changes) -> ImapSettings:
    values = dict(host="127.0.0.1", port=port, username="someone", password="secret", timeout=5.0)
    values.update(changes)
    return ImapSettings(**values)


# -- connection test: success -------------------------------------------------


def test_connection_succeeds_over_ssl(mailbox: Mailbox) -> None:
    mailbox.create_folder("Sent", special_use="\\Sent")
    report = imap.test_connection(mailbox.settings())
    assert report.ok
    assert report.code == "ok"
    assert report.message == "Mailbox connection successful"
    assert report.hint is None
    assert report.warnings == []
    assert report.folders == {"inbox": "INBOX", "sent": "Sent"}


def test_connection_succeeds_over_starttls(mailbox: Mailbox) -> None:
    mailbox.create_folder("Sent", special_use="\\Sent")
    settings = mailbox.settings(port=mailbox.server.starttls_port, security="starttls")
    report = imap.test_connection(settings)
    assert (report.ok, report.message) == (True, "Mailbox connection successful")


def test_connection_without_sent_folder_warns_but_succeeds(mailbox: Mailbox) -> None:
    report = imap.test_connection(mailbox.settings())
    assert report.ok
    assert report.message == "Mailbox connection successful"
    assert [warning.code for warning in report.warnings] == ["no_sent_folder"]
    assert "Inbox" in report.warnings[0].message


def test_non_ascii_password_logs_in_with_authenticate_plain(dovecot: DovecotServer) -> None:
    dovecot.add_user("umlaut", "pässwörd-ñ")
    settings = ImapSettings(
        host=dovecot.host, port=dovecot.ssl_port, username="umlaut",
        password="pässwörd-ñ", ca_pem=dovecot.ca_pem,
    )
    assert imap.test_connection(settings).ok


# -- connection test: failures ---------------------------------------------------


def test_wrong_password_is_auth_failed(mailbox: Mailbox) -> None:
    report = imap.test_connection(mailbox.settings(password="wrong-password-123"))
    assert not report.ok
    assert report.code == "auth_failed"
    assert "wrong-password-123" not in report.message + (report.hint or "")


def test_session_raises_mail_errors(mailbox: Mailbox) -> None:
    with pytest.raises(AuthFailed) as caught:
        with MailboxSession(mailbox.settings(password="nope")):
            pass
    assert caught.value.code == "auth_failed"


def test_nothing_listening_is_connection_refused() -> None:
    report = imap.test_connection(settings_for(free_port()))
    assert report.code == "connection_refused"
    assert "993" in report.hint and "143" in report.hint


def test_unknown_host_is_dns_error() -> None:
    report = imap.test_connection(settings_for(993, host="no-such-host.invalid"))
    assert report.code == "dns_error"
    assert "spelling" in report.hint


def test_silent_server_is_timeout() -> None:
    # The kernel completes the TCP handshake, but nobody ever accepts or answers.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        report = imap.test_connection(settings_for(port, timeout=1.0))
    assert report.code == "timeout"
    assert time.monotonic() - started < 5


def test_silent_server_with_starttls_is_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        report = imap.test_connection(settings_for(port, security="starttls", timeout=1.0))
    assert report.code == "timeout"


@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.parametrize(
    "greeting",
    [b"220 smtp.example ESMTP Postfix\r\n", b"+OK Dovecot ready.\r\n",
     b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"],
    ids=["smtp", "pop3", "http-eager"],
)
def test_port_that_speaks_another_protocol_is_not_imap(fake_server, security, greeting) -> None:
    server = fake_server(banner(greeting))
    report = imap.test_connection(settings_for(server.port, security=security, timeout=2.0))
    assert report.code == "not_imap"
    assert "143" in report.hint


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_http_server_that_waits_for_a_request_is_not_imap(fake_server, security) -> None:
    server = fake_server(answer_when_spoken_to(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    report = imap.test_connection(settings_for(server.port, security=security, timeout=1.0))
    assert report.code == "not_imap"


def test_tls_server_that_is_not_imap_is_not_imap(fake_server, other_ca) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_ca.issue_cert("127.0.0.1", "localhost").configure_cert(tls)
    server = fake_server(banner(b"220 smtp.example ESMTP\r\n"), tls=tls)
    ca_pem = other_ca.cert_pem.bytes().decode()
    report = imap.test_connection(settings_for(server.port, ca_pem=ca_pem))
    assert report.code == "not_imap"


def test_certificate_from_unknown_ca_is_tls_error(mailbox: Mailbox, other_ca) -> None:
    for ca_pem in (None, other_ca.cert_pem.bytes().decode()):
        report = imap.test_connection(mailbox.settings(ca_pem=ca_pem))
        assert report.code == "tls_error"
        assert "CA certificate" in report.hint
        assert "disable" not in report.hint.lower()


def test_certificate_from_unknown_ca_is_tls_error_with_starttls(mailbox: Mailbox) -> None:
    settings = mailbox.settings(port=mailbox.server.starttls_port, security="starttls", ca_pem=None)
    report = imap.test_connection(settings)
    assert report.code == "tls_error"


def test_unreadable_ca_certificate_is_tls_error(mailbox: Mailbox) -> None:
    report = imap.test_connection(mailbox.settings(ca_pem="not a certificate"))
    assert report.code == "tls_error"
    assert "PEM" in report.hint


def test_ssl_to_a_starttls_port_suggests_starttls(mailbox: Mailbox) -> None:
    report = imap.test_connection(mailbox.settings(port=mailbox.server.starttls_port))
    assert report.code == "tls_error"
    assert "STARTTLS" in report.message
    assert "143" in report.hint


def test_starttls_to_an_ssl_port_suggests_ssl(mailbox: Mailbox) -> None:
    settings = mailbox.settings(security="starttls", timeout=1.0)
    report = imap.test_connection(settings)
    assert report.code == "tls_error"
    assert "SSL" in report.hint


def test_server_without_starttls_never_gets_the_password(fake_server) -> None:
    server = fake_server(imap_without_starttls)
    with pytest.raises(TlsError) as caught:
        with MailboxSession(settings_for(server.port, security="starttls")):
            pass
    assert "STARTTLS" in caught.value.message
    assert "993" in caught.value.hint


# -- folders -----------------------------------------------------------------------


def test_sent_found_by_special_use_under_an_odd_name(mailbox: Mailbox) -> None:
    # "Sent Items" would match by name, but the server flags the other one.
    mailbox.create_folder("Sent Items")
    mailbox.create_folder("Gesendete Objekte", special_use="\\Sent")
    with MailboxSession(mailbox.settings()) as session:
        assert session.find_folders() == {"inbox": "INBOX", "sent": "Gesendete Objekte"}


def test_sent_found_by_name_when_unflagged(mailbox: Mailbox) -> None:
    mailbox.create_folder("Archive")
    mailbox.create_folder("Sent Items")
    with MailboxSession(mailbox.settings()) as session:
        assert session.find_folders()["sent"] == "Sent Items"


def test_sent_found_by_non_ascii_name(mailbox: Mailbox) -> None:
    mailbox.create_folder("Éléments envoyés")
    uid = mailbox.append("Éléments envoyés", make_message(1))
    with MailboxSession(mailbox.settings()) as session:
        sent = session.find_folders()["sent"]
        assert sent == "Éléments envoyés"
        assert session.examine(sent).exists == 1
        assert session.uids_after(0) == [uid]


class FakeClient:
    """Answers the few calls find_folders makes, for listings Dovecot here cannot produce."""

    def __init__(self, listing, personal=(("", "/"),)):
        self.listing = listing
        self.personal = personal

    def capabilities(self):
        return (b"IMAP4REV1", b"NAMESPACE")

    def list_folders(self):
        return self.listing

    def namespace(self):
        return type("Namespace", (), {"personal": self.personal})()


@pytest.mark.parametrize(
    ("listing", "personal", "expected"),
    [
        ([((), b".", "INBOX"), ((), b".", "INBOX.Sent")], (("INBOX.", "."),), "INBOX.Sent"),
        ([((b"\\Noselect",), b"/", "[Gmail]"), ((), b"/", "[Gmail]/Sent Mail")], (("", "/"),),
         "[Gmail]/Sent Mail"),
        ([((), b"/", "INBOX/Sent"), ((), b"/", "Sent")], (("", "/"),), "Sent"),
        ([((), b"/", "Projects/Sent"), ((), b"/", "SENT MESSAGES")], (("", "/"),), "SENT MESSAGES"),
        ([((), b"/", "Gesendete Elemente")], (("", "/"),), "Gesendete Elemente"),
        ([((b"\\Noselect",), b"/", "Sent"), ((), b"/", "Drafts")], (("", "/"),), None),
        ([((b"\\HasNoChildren", b"\\Sent"), b"/", "Mes envois")], (("", "/"),), "Mes envois"),
        ([((b"\\Sent",), b"/", "Mes envois"), ((b"\\Sent",), b"/", "Sent")], (("", "/"),), "Sent"),
    ],
)
def test_find_folders_by_name_across_namespaces(listing, personal, expected) -> None:
    session = MailboxSession(settings_for(993))
    session._client = FakeClient(listing, personal)
    assert session.find_folders() == {"inbox": "INBOX", "sent": expected}


# -- reading messages ---------------------------------------------------------------


def test_examine_and_fetch_leave_seen_flags_alone(mailbox: Mailbox) -> None:
    unseen = mailbox.append("INBOX", make_message(1))
    seen = mailbox.append("INBOX", make_message(2), flags=["\\Seen"])
    with MailboxSession(mailbox.settings()) as session:
        session.examine("INBOX")
        fetched = list(session.fetch([unseen, seen]))
    assert [message.uid for message in fetched] == [unseen, seen]
    server = mailbox.server
    assert "\\Seen" not in server.flags(mailbox.username, mailbox.password, "INBOX", unseen)
    assert "\\Seen" in server.flags(mailbox.username, mailbox.password, "INBOX", seen)


def test_examine_and_status_agree_with_the_server(mailbox: Mailbox) -> None:
    uids = mailbox.append_many("INBOX", [make_message(n) for n in range(3)])
    expected_validity = mailbox.server.uidvalidity(mailbox.username, mailbox.password, "INBOX")
    with MailboxSession(mailbox.settings()) as session:
        examined = session.examine("INBOX")
        status = session.status("INBOX")
        assert not session.is_gmail
        assert "IMAP4REV1" in session.capabilities
    for folder in (examined, status):
        assert folder.name == "INBOX"
        assert folder.uidvalidity == expected_validity
        assert folder.uidnext == uids[-1] + 1
        assert folder.exists == 3


def test_uids_after(mailbox: Mailbox) -> None:
    uids = mailbox.append_many("INBOX", [make_message(n) for n in range(4)])
    with MailboxSession(mailbox.settings()) as session:
        session.examine("INBOX")
        assert session.uids_after(0) == uids
        assert session.uids_after(uids[1]) == uids[2:]
        # The server answers "n:*" with the last message even when n is past it.
        assert session.uids_after(uids[-1]) == []
        assert session.uids_after(uids[-1] + 100) == []


def test_uids_after_on_an_empty_folder(mailbox: Mailbox) -> None:
    with MailboxSession(mailbox.settings()) as session:
        assert session.examine("INBOX").exists == 0
        assert session.uids_after(0) == []
        assert session.newest_uids(100) == []


def test_newest_uids(mailbox: Mailbox) -> None:
    uids = mailbox.append_many("INBOX", [make_message(n) for n in range(5)])
    with MailboxSession(mailbox.settings()) as session:
        session.examine("INBOX")
        assert session.newest_uids(2) == uids[-2:]
        assert session.newest_uids(100) == uids
        assert session.newest_uids(0) == []


def test_fetch_in_batches_returns_the_appended_bytes(mailbox: Mailbox) -> None:
    messages = [make_message(n) for n in range(120)]
    uids = mailbox.append_many("INBOX", messages)
    with MailboxSession(mailbox.settings()) as session:
        session.examine("INBOX")
        # Asked out of order, with a duplicate and a UID the server never had.
        asked = list(reversed(uids)) + [uids[0], uids[-1] + 1000]
        fetched = list(session.fetch(asked, batch_size=50))
    assert [message.uid for message in fetched] == uids
    assert [message.raw for message in fetched] == messages
    assert all(message.gm_msgid is None for message in fetched)
    assert all(isinstance(message.internaldate, datetime) for message in fetched)
    assert fetched[0].internaldate.tzinfo is not None
    age = datetime.now(timezone.utc) - fetched[0].internaldate
    assert abs(age.total_seconds()) < 300


def test_fetch_only_what_was_asked(mailbox: Mailbox) -> None:
    uids = mailbox.append_many("INBOX", [make_message(n) for n in range(3)])
    with MailboxSession(mailbox.settings()) as session:
        session.examine("INBOX")
        assert [m.uid for m in session.fetch([uids[1]])] == [uids[1]]
        assert list(session.fetch([])) == []


def test_examining_a_deleted_folder_is_folder_not_found(mailbox: Mailbox) -> None:
    mailbox.create_folder("Sent Items")
    mailbox.server.delete_folder(mailbox.username, mailbox.password, "Sent Items")
    with MailboxSession(mailbox.settings()) as session:
        with pytest.raises(FolderNotFound):
            session.examine("Sent Items")
        # The session is still usable after a refused command.
        assert session.examine("INBOX").exists == 0


def test_reading_needs_an_examined_folder(mailbox: Mailbox) -> None:
    with MailboxSession(mailbox.settings()) as session:
        with pytest.raises(RuntimeError):
            session.uids_after(0)


def test_dovecot_applies_a_password_change_while_running(dovecot: DovecotServer) -> None:
    dovecot.add_user("changer", "first")
    settings = ImapSettings(host=dovecot.host, port=dovecot.ssl_port, username="changer",
                            password="first", ca_pem=dovecot.ca_pem)
    assert imap.test_connection(settings).ok
    dovecot.add_user("changer", "second")
    assert imap.test_connection(settings).code == "auth_failed"


def test_settings_accept_plain_strings_and_hide_the_password() -> None:
    settings = ImapSettings(host=" imap.example.com ", port="143", security="starttls",
                            password="hunter2")
    assert settings.host == "imap.example.com"
    assert settings.port == 143
    assert settings.security is Security.STARTTLS
    assert "hunter2" not in repr(settings)
