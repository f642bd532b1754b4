"""Reading a mailbox over IMAP without changing it, and the connection test behind the UI button.

Plain values in, plain results out: ``ImapSettings`` describes the mailbox,
``MailboxSession`` reads it, and every failure leaves this module as a
``MailError`` from ``rolsync.mail.errors``.

Telling the user which setting is wrong needs more than the first exception,
so a failed connection is sometimes probed once more (each probe sends nothing
but a TLS ClientHello or reads a greeting, and never a password):

- SSL chosen, and the port answers in plain text: if a plain connection gets
  an IMAP greeting, the port wants STARTTLS (``tls_error``, hint: STARTTLS/143);
  if not (an SMTP banner, an HTTP error page, or silence) it is ``not_imap``.
- STARTTLS chosen, and no greeting arrives in time: if the port completes a TLS
  handshake it wants SSL from the start (``tls_error``, hint: SSL/993); if it
  answers the ClientHello with something else it is ``not_imap`` (IMAP servers
  greet first, web servers wait for a request); otherwise ``timeout``.
- A TLS handshake that succeeds but is followed by something other than an IMAP
  greeting (for example SMTPS on 465) is ``not_imap``. A TLS server that says
  nothing at all (HTTPS on 443) ends as ``timeout``: a slow IMAP server looks
  the same.

Certificates are always verified against the system's CAs plus, when given,
the company CA from the settings; nothing here turns verification off.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import logging
import socket
import ssl
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

from imapclient import IMAPClient, SocketTimeout
from imapclient import imap4 as _imapclient_plain
from imapclient import tls as _imapclient_tls

from rolsync.mail.errors import (
    PLAINTEXT_REPLY_REASONS,
    STARTTLS_PORT_HINT,
    AuthFailed,
    ConnectionLost,
    ConnectionRefused,
    DnsError,
    MailError,
    NoSentFolder,
    NotImap,
    Timeout,
    TlsError,
    bad_ca_certificate,
    classify,
    classify_oauth_login,
    classify_server_text,
    classify_tls,
)
from rolsync.mail.hosts import HostPolicy, connect_to

SUCCESS_MESSAGE = "Mailbox connection successful"
"""The sentence shown when the connection test passes (CONTRACT §2 and §3)."""

CONNECT_TIMEOUT = 15.0
"""Upper bound in seconds for connecting and receiving the greeting; reads use the settings' timeout."""

PROBE_TIMEOUT = 5.0
"""Upper bound in seconds for one diagnostic probe after a failed connection."""

FETCH_BATCH_BYTES = 8 * 1024 * 1024
"""Bytes of mail one FETCH asks for at most (a bigger message comes alone)."""

SENT_FOLDER_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "Sent-Mail",
    "Gesendet",
    "Gesendete Objekte",
    "Gesendete Elemente",
    "Gesendete Nachrichten",
    "Éléments envoyés",
    "Envoyés",
    "Messages envoyés",
    "Enviados",
    "Elementos enviados",
    "Mensajes enviados",
    "Posta inviata",
    "Inviati",
    "Elementi inviati",
    "Verzonden items",
    "Verzonden",
    "Itens enviados",
    "Mensagens enviadas",
    "Skickat",
    "Skickade objekt",
    "Sendt",
    "Sendte elementer",
    "Sendt post",
    "Lähetetyt",
    "Lähetetyt kohteet",
    "Wysłane",
    "Elementy wysłane",
    "Odeslaná pošta",
    "Odeslané",
    "Elküldött elemek",
    "Trimise",
    "Отправленные",
    "Gönderilmiş Öğeler",
    "Gönderilenler",
)
"""Names of a Sent folder when the server does not flag it, most likely first.

Compared case-insensitively with the folder's path below the personal
namespace, "INBOX" and Gmail's "[Gmail]"/"[Google Mail]", whatever the separator.
"""

_CONTAINER_PREFIXES = ("inbox", "[gmail]", "[google mail]")

_UNSELECTABLE = {b"\\NOSELECT", b"\\NONEXISTENT"}


class Security(str, Enum):
    """How the connection is encrypted: TLS from the start, or upgraded with STARTTLS."""

    SSL = "ssl"
    STARTTLS = "starttls"


@dataclass(frozen=True)
class ImapSettings:
    """Everything needed to reach one mailbox."""

    host: str
    port: int = 993
    security: Security = Security.SSL
    username: str = ""
    password: str = field(default="", repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    """PEM text of an extra CA to trust (a company CA); verification stays on."""
    timeout: float = 30.0
    oauth2_token: Callable[..., str] | None = field(default=None, repr=False, compare=False)
    """For a mailbox connected with OAuth: returns a current access token for XOAUTH2 instead of a
    password; called with ``refresh=True`` it must fetch a new one. Raises a MailError when it cannot."""
    host_policy: HostPolicy = field(default_factory=HostPolicy, compare=False)
    """Which addresses the server may have (rolsync.mail.hosts); the panel and workers pass the configured one."""

    def __post_init__(self) -> None:
        # Forms and the CLI hand over plain strings; accept them here once.
        object.__setattr__(self, "host", self.host.strip())
        object.__setattr__(self, "security", Security(self.security))
        object.__setattr__(self, "port", int(self.port))


@dataclass
class FolderStatus:
    """Where a folder stands: its UID epoch, the next UID and how many messages it holds."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int


@dataclass
class FetchedMessage:
    """One message as the server stores it."""

    uid: int
    raw: bytes = field(repr=False)
    gm_msgid: int | None
    internaldate: datetime | None
    # Larger than the caller's limit (RFC822.SIZE, in bytes): not downloaded, `raw` is empty.
    too_large: int | None = None
    # System flags and keywords (FLAGS): a consultant's private keyword keeps the message out.
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportItem:
    """A code, sentence and hint, detached from the exception that carried them."""

    code: str
    message: str
    hint: str | None = None

    @classmethod
    def from_error(cls, error: MailError) -> ReportItem:
        return cls(code=error.code, message=error.message, hint=error.hint)


@dataclass
class ConnectionReport:
    """The outcome of ``test_connection``: what the Test Connection button and ``flask mail test`` show."""

    ok: bool
    code: str
    """"ok", or the MailError code of the failure."""
    message: str
    hint: str | None = None
    warnings: list[ReportItem] = field(default_factory=list)
    folders: dict[str, str | None] = field(default_factory=dict)
    """The folders that would be imported, when the connection worked."""


def build_ssl_context(ca_pem: str | None) -> ssl.SSLContext:
    """A verifying TLS context that also trusts ``ca_pem`` when given."""
    return _ssl_context((ca_pem or "").strip() or None)


@functools.lru_cache(maxsize=64)
def _ssl_context(ca_pem: str | None) -> ssl.SSLContext:
    """Contexts are kept per CA: loading the system's trust store costs ~50 ms,
    more than the rest of a poll; a context is safe to share between connections."""
    context = ssl.create_default_context()
    if ca_pem and ca_pem.strip():
        try:
            context.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise bad_ca_certificate() from exc
    return context


class MailboxSession:
    """A logged-in, read-only view of one mailbox; use it as a context manager.

    Nothing here changes the mailbox: folders are opened with EXAMINE and
    bodies fetched with BODY.PEEK, so ``\\Seen`` flags stay as they are.
    """

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._client: IMAPClient | None = None
        self._addresses: list[tuple[int, str]] = []
        self._folder: FolderStatus | None = None
        self._capabilities: set[str] | None = None

    def __enter__(self) -> MailboxSession:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection ------------------------------------------------------

    def open(self) -> None:
        """Connect, secure the connection and log in.

        An OAuth mailbox whose access token is refused tries once more with a
        freshly refreshed token: the provider may have ended it early.
        """
        try:
            self._open(refresh_token=False)
        except AuthFailed as exc:
            if self.settings.oauth2_token is None or getattr(exc, "access_revoked", False):
                raise
            self._open(refresh_token=True)

    def _open(self, refresh_token: bool) -> None:
        settings = self.settings
        if not settings.host:
            raise DnsError(message="No mail server name was entered.")
        if not 0 < settings.port < 65536:
            raise ConnectionRefused(message="The port must be a number from 1 to 65535.")
        # Checked before anything is sent, and the connection goes to these very addresses (no second lookup).
        self._addresses = settings.host_policy.resolve(settings.host, settings.port)
        context = build_ssl_context(settings.ca_pem)
        # Before connecting: a refresh is an HTTP round trip the IMAP server should not wait for.
        access_token = settings.oauth2_token(refresh=refresh_token) if settings.oauth2_token else None
        client = self._connect(context)
        try:
            if settings.security is Security.STARTTLS:
                self._start_tls(client, context)
            self._login(client, access_token)
        except BaseException as exc:
            _shutdown_quietly(client)
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise
        self._client = client

    def close(self) -> None:
        """Log out; a connection that is already broken is simply dropped."""
        client, self._client = self._client, None
        self._folder = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            _shutdown_quietly(client)

    def _connect(self, context: ssl.SSLContext) -> IMAPClient:
        settings = self.settings
        use_ssl = settings.security is Security.SSL
        timeout = SocketTimeout(
            connect=min(settings.timeout, CONNECT_TIMEOUT), read=settings.timeout
        )
        try:
            client = _PinnedIMAPClient(
                self._addresses,
                settings.host,
                port=settings.port,
                ssl=use_ssl,
                ssl_context=context if use_ssl else None,
                timeout=timeout,
            )
        except ssl.SSLError as exc:
            if getattr(exc, "reason", None) in PLAINTEXT_REPLY_REASONS:
                raise self._diagnose_plaintext_port() from exc
            if isinstance(exc, ssl.SSLEOFError):
                raise _handshake_dropped() from exc
            raise classify_tls(exc) from exc
        except ConnectionResetError as exc:
            if use_ssl:
                raise _handshake_dropped() from exc
            raise classify(exc) from exc
        except TimeoutError as exc:
            if not use_ssl:
                raise self._diagnose_silent_port(context) from exc
            raise Timeout() from exc
        except imaplib.IMAP4.error as exc:
            raise _greeting_failure(exc) from exc
        except Exception as exc:
            raise classify(exc) from exc
        # Aware datetimes: INTERNALDATE keeps the server's offset.
        client.normalise_times = False
        quiet_imaplib(client)
        return client

    def _start_tls(self, client: IMAPClient, context: ssl.SSLContext) -> None:
        # Without STARTTLS the password would cross the network in clear text.
        if not client.has_capability("STARTTLS"):
            raise TlsError(
                message="The mail server does not offer STARTTLS on this port, so the "
                "password would be sent unencrypted.",
                hint="Use port 993 with SSL.",
            )
        try:
            client.starttls(context)
        except ssl.SSLError as exc:
            raise classify_tls(exc) from exc
        except imaplib.IMAP4.abort as exc:
            raise classify(exc) from exc
        except imaplib.IMAP4.error as exc:
            # The server answered NO or BAD to STARTTLS.
            raise TlsError(hint="Use port 993 with SSL.") from exc

    def _login(self, client: IMAPClient, access_token: str | None) -> None:
        username, password = self.settings.username, self.settings.password
        if access_token is not None:
            try:
                client.oauth2_login(username, access_token)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise classify_oauth_login(str(exc)) from exc
        elif (username + password).isascii():
            client.login(username, password)
        elif client.has_capability("AUTH=PLAIN"):
            # LOGIN cannot carry non-ASCII text; AUTHENTICATE PLAIN sends UTF-8.
            client.plain_login(username, password)
        else:
            raise AuthFailed(
                message="This mail server cannot accept a username or password "
                "with accented or non-Latin letters.",
                hint="Ask your mail administrator, or choose a password without them.",
            )

    def _diagnose_plaintext_port(self) -> MailError:
        """SSL was answered in plain text: is this a STARTTLS port or no IMAP at all?"""
        greeting = _read_greeting(self._addresses, self.settings.port, self._probe_timeout)
        if greeting is None:
            return TlsError(message="The server on this port did not answer with SSL.",
                            hint=STARTTLS_PORT_HINT)
        if greeting.startswith((b"* OK", b"* PREAUTH")):
            return TlsError(
                message="This port expects a plain connection secured with STARTTLS, not SSL.",
                hint=STARTTLS_PORT_HINT,
            )
        return NotImap()

    def _diagnose_silent_port(self, context: ssl.SSLContext) -> MailError:
        """No greeting on a STARTTLS connection: does the port want SSL from the start?"""
        speaks_tls = _speaks_tls(
            self._addresses, self.settings.host, self.settings.port, context, self._probe_timeout
        )
        if speaks_tls is True:
            return TlsError(
                message="This port expects SSL from the start, not STARTTLS.",
                hint="Choose SSL (usually with port 993).",
            )
        if speaks_tls is False:
            return NotImap()
        return Timeout()

    @property
    def _probe_timeout(self) -> float:
        return min(self.settings.timeout, PROBE_TIMEOUT)

    @contextlib.contextmanager
    def _translating(self) -> Iterator[IMAPClient]:
        """Yield the client and turn anything raised into a MailError."""
        if self._client is None:
            raise RuntimeError("MailboxSession is not open; use it in a with block")
        try:
            yield self._client
        except MailError:
            raise
        except Exception as exc:
            raise classify(exc) from exc

    # -- what the server offers -------------------------------------------

    @property
    def capabilities(self) -> set[str]:
        """The server's capabilities after login, upper-case."""
        if self._capabilities is None:
            with self._translating() as client:
                self._capabilities = {
                    _text(item).upper() for item in client.capabilities()
                }
        return self._capabilities

    @property
    def is_gmail(self) -> bool:
        """True for Gmail, which adds X-GM-MSGID and labels."""
        return "X-GM-EXT-1" in self.capabilities

    # -- folders ----------------------------------------------------------

    def find_folders(self) -> dict[str, str | None]:
        """The folders to import: ``{"inbox": "INBOX", "sent": name or None}``.

        The Sent folder is the one the server flags ``\\Sent`` (RFC 6154);
        without such a flag, the first folder with a usual Sent name.
        """
        listing = self._list_folders()
        selectable = [
            (flags, delimiter, name)
            for flags, delimiter, name in listing
            if not _UNSELECTABLE & {_flag(f) for f in flags}
        ]
        flagged = [entry for entry in selectable if b"\\SENT" in {_flag(f) for f in entry[0]}]
        if flagged:
            # Several flagged folders happen (a migrated account): prefer the usual name.
            return {"inbox": "INBOX", "sent": self._sent_by_name(flagged) or flagged[0][2]}
        return {"inbox": "INBOX", "sent": self._sent_by_name(selectable)}

    def _list_folders(self) -> list[tuple[tuple[bytes, ...], bytes | None, str]]:
        with self._translating() as client:
            if {"SPECIAL-USE", "LIST-EXTENDED"} <= self.capabilities:
                # Servers must return special-use flags only when asked for
                # them; a plain LIST may leave them out.
                try:
                    return _list_with_special_use(client)
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error:
                    pass  # refused the extended form: a plain LIST still names the folders
            return client.list_folders()

    def _sent_by_name(self, listing: list[tuple[tuple[bytes, ...], bytes | None, str]]) -> str | None:
        prefixes = set(_CONTAINER_PREFIXES)
        with self._translating() as client:
            if "NAMESPACE" in self.capabilities:
                for prefix, _separator in client.namespace().personal or ():
                    if prefix:
                        prefixes.add(_fold(prefix).rstrip("./"))
        wanted = {_fold(name): rank for rank, name in enumerate(SENT_FOLDER_NAMES)}
        best: tuple[int, int, str] | None = None
        for order, (_flags, delimiter, name) in enumerate(listing):
            parts = _fold(name).split(_text(delimiter)) if delimiter else [_fold(name)]
            # A top-level "Sent" beats "INBOX/Sent", and both beat later names.
            depth = 0
            if len(parts) == 2 and parts[0] in prefixes:
                parts, depth = parts[1:], 1
            if len(parts) != 1 or parts[0] not in wanted:
                continue
            candidate = (wanted[parts[0]] * 2 + depth, order, name)
            if best is None or candidate < best:
                best = candidate
        return best[2] if best else None

    def examine(self, folder: str) -> FolderStatus:
        """Open ``folder`` read-only (EXAMINE), so reading never sets ``\\Seen``."""
        with self._translating() as client:
            response = client.select_folder(folder, readonly=True)
        uidnext = response.get(b"UIDNEXT")
        uidvalidity = response.get(b"UIDVALIDITY")
        if uidnext is None or uidvalidity is None:
            # RFC 3501 requires both, but old servers leave UIDNEXT out.
            status = self.status(folder)
            uidnext, uidvalidity = status.uidnext, status.uidvalidity
        self._folder = FolderStatus(
            name=folder,
            uidvalidity=int(uidvalidity),
            uidnext=int(uidnext),
            exists=int(response.get(b"EXISTS", 0)),
        )
        return self._folder

    def status(self, folder: str) -> FolderStatus:
        """The folder's UIDVALIDITY, UIDNEXT and size, without opening it."""
        with self._translating() as client:
            response = client.folder_status(folder, ["UIDNEXT", "UIDVALIDITY", "MESSAGES"])
        return FolderStatus(
            name=folder,
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uidnext=int(response[b"UIDNEXT"]),
            exists=int(response[b"MESSAGES"]),
        )

    # -- messages (in the examined folder) ----------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending; ``last_uid=0`` gives every message."""
        self._require_folder()
        with self._translating() as client:
            found = client.search(["UID", f"{max(last_uid, 0) + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in found if uid > last_uid)

    def newest_uids(self, limit: int) -> list[int]:
        """The UIDs of the newest ``limit`` messages, ascending (the first-run cap)."""
        folder = self._require_folder()
        if limit <= 0 or folder.exists == 0:
            return []
        first = max(1, folder.exists - limit + 1)
        with self._translating() as client:
            # A sequence-number range costs one short answer, however big
            # the folder; a search for ALL would list every UID in it.
            found = sorted(client.search([f"{first}:*"]))
            if len(found) < limit and first > 1:
                # Messages were expunged since EXAMINE and numbers shifted.
                found = sorted(client.search(["ALL"]))
        return found[-limit:]

    @property
    def examined(self) -> str | None:
        """The folder open now (by ``examine``), if any."""
        return self._folder.name if self._folder else None

    def all_uids(self) -> list[int]:
        """Every UID of the examined folder, ascending (one UID SEARCH ALL: reconciliation only)."""
        self._require_folder()
        with self._translating() as client:
            return sorted(client.search(["ALL"]))

    def search_uids(self, criteria: list) -> list[int]:
        """UIDs of the examined folder matching IMAP SEARCH `criteria` (imapclient's list form), ascending."""
        self._require_folder()
        with self._translating() as client:
            return sorted(client.search(criteria, charset="UTF-8"))

    def fetch_headers(self, uids: list[int], fields: tuple[str, ...] = ("SUBJECT", "FROM", "DATE", "MESSAGE-ID")
                      ) -> Iterator[tuple[int, bytes, datetime | None]]:
        """(UID, those header lines, INTERNALDATE) of each message still there: never the body."""
        self._require_folder()
        if not uids:
            return
        item = f"BODY.PEEK[HEADER.FIELDS ({' '.join(fields)})]"
        with self._translating() as client:
            response = client.fetch(uids, [item, "INTERNALDATE"])
        for uid in uids:
            data = response.get(uid)
            if data:
                raw = next((value for key, value in data.items() if key.startswith(b"BODY[HEADER")), b"")
                yield uid, bytes(raw or b""), data.get(b"INTERNALDATE")

    def selectable_folders(self) -> list[str]:
        """The names of every folder that can be opened, in the server's order."""
        return [name for flags, _delimiter, name in self._list_folders()
                if not _UNSELECTABLE & {_flag(f) for f in flags}]

    def uids_since(self, day: date) -> list[int]:
        """UIDs of the selected folder's messages that arrived on or after `day` (a first run by date)."""
        folder = self._require_folder()
        if folder.exists == 0:
            return []
        with self._translating() as client:
            return sorted(client.search(["SINCE", day]))

    def uids_with_addresses(self, addresses: list[str], since: date | None = None) -> list[int]:
        """UIDs of the selected folder's messages from, to or cc any of `addresses`, optionally since a day.

        One SEARCH per address (the server does the work, whatever the
        folder's size); the addresses are normalised ones, so they need no quoting.
        """
        folder = self._require_folder()
        if folder.exists == 0:
            return []
        found: set[int] = set()
        with self._translating() as client:
            for address in addresses:
                criteria: list = ["OR", "FROM", address, "OR", "TO", address, "CC", address]
                if since is not None:
                    criteria += ["SINCE", since]
                found.update(client.search(criteria))
        return sorted(found)

    def fetch(self, uids: list[int], batch_size: int = 50) -> Iterator[FetchedMessage]:
        """The messages with these UIDs, ascending, in batches; UIDs gone from the server are skipped."""
        for batch in self.fetch_batches(uids, batch_size=batch_size):
            yield from batch

    def fetch_batches(self, uids: list[int], batch_size: int = 50, max_bytes: int = FETCH_BATCH_BYTES,
                      max_message_bytes: int | None = None) -> Iterator[list[FetchedMessage]]:
        """The messages with these UIDs, ascending, one FETCH (one list) at a time.

        A batch holds at most `batch_size` messages and, unless a single
        message is larger, `max_bytes` (the sizes are asked for first), so big
        attachments never pile up in memory. While the caller works on one
        batch the next is fetched in a thread (waiting on the socket and TLS
        decryption release the GIL), unless it is a single message larger
        than `max_bytes`: then it is fetched only when asked for, so no more
        than one big message and one batch are ever held here. UIDs gone from the server are skipped; a batch whose
        messages are all gone is not yielded. A message larger than
        `max_message_bytes` is not downloaded: it comes with an empty `raw`
        and its size in `too_large`, in its place among the others.
        """
        self._require_folder()
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        wanted = sorted({int(uid) for uid in uids})
        if not wanted:
            return
        plan, too_large = self._plan_batches(wanted, batch_size, max_bytes, max_message_bytes)
        # Leaving the with block (also when the caller stops early) waits for
        # a fetch still running, so the connection is never left mid-response.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-prefetch") as prefetch:
            pending = None
            for number, (batch, _size) in enumerate(plan):
                fetched = pending.result() if pending is not None else self._fetch_batch(batch, too_large)
                pending = None
                if number + 1 < len(plan) and plan[number + 1][1] <= max_bytes:
                    pending = prefetch.submit(self._fetch_batch, plan[number + 1][0], too_large)
                if fetched:
                    yield fetched
                del fetched  # not held while the next batch arrives

    def _fetch_batch(self, batch: list[int], too_large: dict[int, int] | None = None) -> list[FetchedMessage]:
        """The batch's messages; those in `too_large` without their bodies (their dates and ids only)."""
        too_large = too_large or {}
        items = ["INTERNALDATE", "FLAGS"]
        if self.is_gmail:
            items.append("X-GM-MSGID")
        wanted = [uid for uid in batch if uid not in too_large]
        skipped = [uid for uid in batch if uid in too_large]
        with self._translating() as client:
            response = client.fetch(wanted, ["BODY.PEEK[]", *items]) if wanted else {}
            if skipped:
                response.update(client.fetch(skipped, items))
        fetched = []
        for uid in batch:
            data = response.pop(uid, None)
            raw = data.get(b"BODY[]") if data else None
            if data is None or (raw is None and uid not in too_large):
                continue
            fetched.append(FetchedMessage(
                uid=uid,
                raw=bytes(raw) if raw is not None else b"",
                gm_msgid=data.get(b"X-GM-MSGID"),
                internaldate=data.get(b"INTERNALDATE"),
                too_large=too_large.get(uid),
                flags=tuple(_text(f) for f in data.get(b"FLAGS", ())),
            ))
        return fetched

    def _plan_batches(self, uids: list[int], batch_size: int, max_bytes: int, max_message_bytes: int | None = None
                      ) -> tuple[list[tuple[list[int], int]], dict[int, int]]:
        """(UIDs, bytes) of consecutive runs of `uids` within the limits of a batch (one RFC822.SIZE FETCH for all),
        and the size of each message over `max_message_bytes` (counted as 0 bytes: it is not downloaded)."""
        if len(uids) == 1 and max_message_bytes is None:
            return [(uids, 0)], {}
        with self._translating() as client:
            sizes = {uid: data.get(b"RFC822.SIZE", 0) for uid, data in client.fetch(uids, ["RFC822.SIZE"]).items()}
        too_large = {uid: size for uid, size in sizes.items()
                     if max_message_bytes is not None and size > max_message_bytes}
        for uid in too_large:
            sizes[uid] = 0
        batches: list[tuple[list[int], int]] = []
        batch: list[int] = []
        size = 0
        for uid in uids:
            if uid not in sizes:
                continue  # expunged meanwhile
            if batch and (len(batch) >= batch_size or size + sizes[uid] > max_bytes):
                batches.append((batch, size))
                batch, size = [], 0
            batch.append(uid)
            size += sizes[uid]
        if batch:
            batches.append((batch, size))
        return batches, too_large

    def _require_folder(self) -> FolderStatus:
        if self._folder is None:
            raise RuntimeError("examine() a folder first")
        return self._folder


def test_connection(settings: ImapSettings) -> ConnectionReport:
    """Connect, log in and look for the folders; report the outcome in plain words."""
    try:
        with MailboxSession(settings) as session:
            folders = session.find_folders()
            session.status(folders["inbox"] or "INBOX")
    except MailError as error:
        return ConnectionReport(
            ok=False, code=error.code, message=error.message, hint=error.hint
        )
    warnings = []
    if folders["sent"] is None:
        warnings.append(ReportItem.from_error(NoSentFolder()))
    return ConnectionReport(
        ok=True, code="ok", message=SUCCESS_MESSAGE, warnings=warnings, folders=folders
    )


# pytest would otherwise collect the function above when a test module imports it.
test_connection.__test__ = False  # type: ignore[attr-defined]


# -- helpers ------------------------------------------------------------------


def quiet_imaplib(client: IMAPClient) -> None:
    """Stop imaplib formatting every response for a debug log nobody reads.

    IMAPClient sets imaplib's debug level to 5 and sends its messages to the
    "imapclient.imaplib" logger, so imaplib builds the repr() of every
    response, message bodies included, twice, before the logger drops it:
    for a 25 MB attachment that is over 100 MB of strings and most of a
    second. Unless that logger is on, imaplib need not format anything.
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def _list_with_special_use(client: IMAPClient) -> list[tuple[tuple[bytes, ...], bytes | None, str]]:
    """LIST "" "*" RETURN (SPECIAL-USE), which IMAPClient has no method for."""
    typ, data = client._imap._simple_command("LIST", '""', '"*"', "RETURN (SPECIAL-USE)")
    if typ != "OK":
        raise imaplib.IMAP4.error(f"LIST failed: {data!r}")
    typ, data = client._imap._untagged_response(typ, data, "LIST")
    return client._proc_folder_list(data)


def _greeting_failure(exc: imaplib.IMAP4.error) -> MailError:
    """The port answered, but not with a usable IMAP greeting."""
    known = classify_server_text(str(exc))
    if known is not None:
        return known
    if isinstance(exc, imaplib.IMAP4.abort):
        # "unexpected response" (an SMTP banner, an HTTP page) is not_imap;
        # end of stream before any greeting stays connection_lost.
        return classify(exc)
    if "bye" in str(exc).lower():
        return ConnectionLost(message="The mail server closed the connection at once.")
    # A "+OK" (POP3) greeting or one without IMAP4rev1 in its capabilities.
    return NotImap()


def _handshake_dropped() -> TlsError:
    error = TlsError(
        message="The server closed the connection during the SSL handshake.",
        hint="Check the port and security: 993 with SSL, or 143 with STARTTLS.",
    )
    # A server that is restarting or overloaded does this too: worth a bounded retry.
    error.transient = True
    return error


def _read_greeting(addresses: list[tuple[int, str]], port: int, timeout: float) -> bytes | None:
    """The first bytes a plain connection receives: b"" for silence, None if it cannot connect."""
    try:
        with connect_to(addresses, port, timeout) as sock:
            try:
                return sock.recv(512)
            except (TimeoutError, ConnectionResetError):
                return b""
    except OSError:
        return None


def _speaks_tls(addresses: list[tuple[int, str]], host: str, port: int, context: ssl.SSLContext,
                timeout: float) -> bool | None:
    """Whether the port completes a TLS handshake; None when it gives no answer at all."""
    try:
        with connect_to(addresses, port, timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return True
    except ssl.SSLCertVerificationError:
        return True  # a TLS server, just not one we trust yet
    except ssl.SSLError as exc:
        return False if getattr(exc, "reason", None) in PLAINTEXT_REPLY_REASONS else None
    except OSError:
        return None


class _PinnedIMAPClient(IMAPClient):
    """IMAPClient connected to addresses checked beforehand, while TLS still verifies the server's name."""

    def __init__(self, addresses: list[tuple[int, str]], host: str, **kwargs) -> None:
        self._pinned = addresses
        super().__init__(host, **kwargs)

    def _create_IMAP4(self):
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _PinnedTls(self._pinned, self.host, self.port, self.ssl_context, connect_timeout)
        return _PinnedPlain(self._pinned, self.host, self.port, connect_timeout)


class _PinnedTls(_imapclient_tls.IMAP4_TLS):
    def __init__(self, addresses: list[tuple[int, str]], host: str, port: int, ssl_context, timeout) -> None:
        self._pinned = addresses
        super().__init__(host, port, ssl_context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = connect_to(self._pinned, self.port, timeout if timeout is not None else self._timeout)
        return _imapclient_tls.wrap_socket(sock, self.ssl_context, self.host)


class _PinnedPlain(_imapclient_plain.IMAP4WithTimeout):
    def __init__(self, addresses: list[tuple[int, str]], host: str, port: int, timeout) -> None:
        self._pinned = addresses
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return connect_to(self._pinned, self.port, timeout if timeout is not None else self._timeout)


def _shutdown_quietly(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:
        pass


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _flag(value: str | bytes) -> bytes:
    return (value.encode() if isinstance(value, str) else value).upper()


def _fold(name: str) -> str:
    """Compare folder names the way a person would: case and Unicode form ignored."""
    return unicodedata.normalize("NFC", name).casefold()
