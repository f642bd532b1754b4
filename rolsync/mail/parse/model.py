"""What parsing gives: ParsedMessage, its Attachments, and MessageUnreadable for input that is not an e-mail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


class MessageUnreadable(Exception):
    """The bytes are not an e-mail we can extract anything from (or reading them would cost too much)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attachment:
    """One file carried by a message, with the facts the rules and the document store need.

    Its bytes are in memory (`content`), or for a big attachment parsed with a
    spool folder in a file of their own (`spool`) that the caller moves into
    the document store or deletes.
    """

    filename: str
    content_type: str
    sniffed_type: str | None
    size: int
    sha256: str
    inline: bool
    content: bytes | None = field(default=None, repr=False)
    spool: Path | None = None

    @property
    def data(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.spool is not None
        return self.spool.read_bytes()

    @property
    def is_image(self) -> bool:
        """True when the sender called it an image or the bytes are one."""
        return self.content_type.startswith("image/") or bool(
            self.sniffed_type and self.sniffed_type.startswith("image/"))


@dataclass
class ParsedMessage:
    """Everything the importer and the rules use from one message.

    `path` says which parser read it: "fast" (the compiled parser) or
    "careful" (the standard library), for the benchmark's share figure.
    """

    message_id: str | None
    subject: str
    date: datetime | None
    from_addr: str | None
    from_name: str
    reply_to: list[str]
    to: list[str]
    cc: list[str]
    bcc: list[str]
    headers: dict[str, str]
    text: str
    attachments: list[Attachment]
    defects: list[str]
    content_hash: str
    size: int
    path: str = "careful"
    reply_to_name: str = ""  # the first Reply-To's display name: a relayed application's applicant

    def discard_spool(self) -> None:
        """Delete the files of spooled attachments that were not moved into the document store."""
        for attachment in self.attachments:
            if attachment.spool is not None:
                attachment.spool.unlink(missing_ok=True)
