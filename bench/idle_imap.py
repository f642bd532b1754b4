"""A minimal IMAPS server that only idles, for holding 1,000 IDLE connections without 1,000 Dovecot processes.

It speaks just what the watcher says: CAPABILITY, LOGIN (any user, any
password), EXAMINE/SELECT of an empty INBOX (UIDVALIDITY 1, UIDNEXT 1), IDLE
and DONE, NOOP, LOGOUT. `notify(user)` sends that user's connection
`* 1 EXISTS`, as a server does when mail arrives. One asyncio loop in a
thread of its own; TLS with a trustme CA, like the test Dovecot.
"""
from __future__ import annotations

import asyncio
import ssl
import threading
import time

import trustme

CAPABILITIES = b"IMAP4rev1 IDLE LITERAL+ AUTH=PLAIN"


class IdleServer:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.ca_pem = self.ca.cert_pem.bytes().decode("ascii")
        self.port = 0
        self.idling: dict[str, asyncio.StreamWriter] = {}
        self.notified_at: dict[str, float] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="idle-imap", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.host, 0, ssl=context, backlog=2048), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def notify(self, user: str) -> float:
        """Tell `user`'s idling connection that a message arrived; the moment it was sent (time.monotonic)."""
        def send() -> None:
            writer = self.idling[user]
            writer.write(b"* 1 EXISTS\r\n")
            self.notified_at[user] = time.monotonic()
        self._loop.call_soon_threadsafe(send)
        while user not in self.notified_at:
            time.sleep(0.0005)
        return self.notified_at.pop(user)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        user = None
        writer.write(b"* OK [CAPABILITY " + CAPABILITIES + b"] idle bench server ready\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                command, _, args = rest.partition(b" ")
                command = command.upper()
                if command == b"CAPABILITY":
                    writer.write(b"* CAPABILITY " + CAPABILITIES + b"\r\n" + tag + b" OK done\r\n")
                elif command == b"LOGIN":
                    user = args.split(b" ")[0].strip(b'"').decode()
                    writer.write(tag + b" OK [CAPABILITY " + CAPABILITIES + b"] logged in\r\n")
                elif command in (b"EXAMINE", b"SELECT"):
                    writer.write(b"* FLAGS (\\Seen)\r\n* 0 EXISTS\r\n* 0 RECENT\r\n"
                                 b"* OK [UIDVALIDITY 1] ok\r\n* OK [UIDNEXT 1] ok\r\n"
                                 + tag + b" OK [READ-ONLY] done\r\n")
                elif command == b"IDLE":
                    writer.write(b"+ idling\r\n")
                    if user:
                        self.idling[user] = writer
                    if (await reader.readline()).strip().upper() != b"DONE":
                        return
                    writer.write(tag + b" OK idle done\r\n")
                elif command == b"NOOP":
                    writer.write(tag + b" OK done\r\n")
                elif command == b"LOGOUT":
                    writer.write(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(tag + b" BAD not here\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            if user and self.idling.get(user) is writer:
                del self.idling[user]
            writer.close()
