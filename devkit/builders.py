"""Build test e-mails as bytes, and small real files to attach to them (all generated in code)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid

from devkit import sample_files as files

AUTO = object()
"""Default for `message_id`: a fresh Message-ID; pass None to leave the header out."""

DEFAULT_DATE = "Mon, 03 Jun 2024 10:00:00 +0200"


def build_message(*, from_: str | None = "Jane Candidate <jane@example.org>",
                  to: str | Sequence[str] | None = "consultant@acme.com",
                  cc: str | Sequence[str] | None = None,
                  bcc: str | Sequence[str] | None = None,
                  subject: str | None = "Hello",
                  text: str | None = "Hello,\n\nplease find my CV attached.\n",
                  html: str | None = None,
                  attachments: Iterable[tuple[str | None, str, bytes]] = (),
                  inline_images: Iterable[tuple[str, str, str, bytes]] = (),
                  message_id=AUTO,
                  reply_to: str | Sequence[str] | None = None,
                  date: str | None = DEFAULT_DATE,
                  headers: dict[str, str] | None = None) -> bytes:
    """A well-formed message as CRLF bytes.

    `attachments` are (filename or None, content type, bytes); a "message/rfc822"
    item's bytes are attached as an enclosed message. `inline_images` are
    (content id, filename, content type, bytes) placed with the HTML part in a
    multipart/related, as a signature logo is.
    """
    msg = EmailMessage(policy=policy.SMTP)
    for name, value in (("From", from_), ("To", to), ("Cc", cc), ("Bcc", bcc),
                        ("Reply-To", reply_to), ("Subject", subject), ("Date", date)):
        if value is not None:
            msg[name] = value if isinstance(value, str) else ", ".join(value)
    if message_id is AUTO:
        msg["Message-ID"] = make_msgid(domain="example.org")
    elif message_id is not None:
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value

    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    if html is not None:
        html_part = msg.get_body(("html",))
        for cid, filename, content_type, data in inline_images:
            maintype, subtype = content_type.split("/", 1)
            html_part.add_related(data, maintype, subtype, cid=f"<{cid}>", filename=filename,
                                  disposition="inline")
    for filename, content_type, data in attachments:
        if content_type == "message/rfc822":
            enclosed = BytesParser(policy=policy.default).parsebytes(data)
            if filename:
                msg.add_attachment(enclosed, filename=filename)
            else:
                msg.add_attachment(enclosed)
        else:
            maintype, subtype = content_type.split("/", 1)
            msg.add_attachment(data, maintype, subtype, filename=filename)
    return msg.as_bytes()


def raw_message(headers: Sequence[tuple[str, str | bytes]], body: bytes | str = b"Hello\r\n") -> bytes:
    """A message written byte for byte, for mail that EmailMessage would refuse to build (broken on purpose)."""
    lines = []
    for name, value in headers:
        value = value.encode("utf-8") if isinstance(value, str) else value
        lines.append(name.encode("ascii") + b": " + value)
    body = body.encode("utf-8") if isinstance(body, str) else body
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def tiny_png() -> bytes:
    """A valid 1x1 PNG (a signature logo at its smallest)."""
    return files.logo_png((255, 0, 0), width=1, height=1)


def minimal_pdf(text: str = "Curriculum Vitae") -> bytes:
    """A valid one-page PDF showing `text`, with a correct xref table."""
    return files.pdf(text)


def minimal_docx(text: str = "Curriculum Vitae") -> bytes:
    """A minimal Word document (the parts Word needs to open it)."""
    return files.docx(text)


# TNEF (MS-OXTNEF): a signature, a key, then attributes of
# level(1) id(2) type(2) length(4) data checksum(2), all little-endian.
_TNEF_SIGNATURE = 0x223E9F78
_LVL_MESSAGE, _LVL_ATTACHMENT = 0x01, 0x02
_ATP_STRING, _ATP_WORD, _ATP_BYTE, _ATP_DWORD = 0x0001, 0x0007, 0x0006, 0x0008


def _tnef_attribute(level: int, attr_id: int, attr_type: int, data: bytes) -> bytes:
    return (struct.pack("<BHHI", level, attr_id, attr_type, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def _mapi_unicode(prop_id: int, value: str) -> bytes:
    encoded = value.encode("utf-16-le") + b"\x00\x00"
    padding = b"\x00" * (-len(encoded) % 4)
    return struct.pack("<HHII", 0x001F, prop_id, 1, len(encoded)) + encoded + padding


def _mapi_string8(prop_id: int, value: str) -> bytes:
    encoded = value.encode("ascii") + b"\x00"
    padding = b"\x00" * (-len(encoded) % 4)
    return struct.pack("<HHII", 0x001E, prop_id, 1, len(encoded)) + encoded + padding


def build_tnef(files: Iterable[tuple[str, str, bytes]]) -> bytes:
    """A winmail.dat holding `files` as (filename, content type, bytes), the way Outlook writes one.

    Each file gets its short title (attAttachTitle) and, in its MAPI
    properties, the long Unicode file name and MIME type.
    """
    out = bytearray(struct.pack("<IH", _TNEF_SIGNATURE, 0x0001))
    out += _tnef_attribute(_LVL_MESSAGE, 0x9006, _ATP_DWORD, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += _tnef_attribute(_LVL_MESSAGE, 0x9007, _ATP_BYTE, struct.pack("<II", 1252, 0))  # attOemCodepage
    out += _tnef_attribute(_LVL_MESSAGE, 0x8008, _ATP_WORD, b"IPM.Microsoft Mail.Note\x00")  # attMessageClass
    for filename, content_type, data in files:
        short = filename.encode("ascii", "replace")[:12] + b"\x00"
        out += _tnef_attribute(_LVL_ATTACHMENT, 0x9002, _ATP_BYTE, b"\x01\x00\xff\xff\xff\xff"
                               + b"\x00" * 8)  # attAttachRenddata starts an attachment
        out += _tnef_attribute(_LVL_ATTACHMENT, 0x8010, _ATP_STRING, short)  # attAttachTitle
        out += _tnef_attribute(_LVL_ATTACHMENT, 0x800F, _ATP_BYTE, data)  # attAttachData
        props = struct.pack("<I", 2) + _mapi_unicode(0x3707, filename) + _mapi_string8(0x370E, content_type)
        out += _tnef_attribute(_LVL_ATTACHMENT, 0x9005, _ATP_BYTE, props)  # attAttachment
    return bytes(out)
