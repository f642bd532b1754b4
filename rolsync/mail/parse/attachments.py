"""Attachments: file names as senders write them, types by the bytes, decoding into memory or a spool file, TNEF."""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import re
import tempfile
import unicodedata
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import IO, Any

import filetype
from tnefparse.tnef import TNEF

from rolsync.mail.parse.headers import HeaderFactory, HeaderValues, decode_words, parsed_header, undo_8bit
from rolsync.mail.parse.text import clean

MAX_FILENAME_LENGTH = 200
"""Longer decoded file names are shortened, keeping the extension."""

SPOOL_MIN_BYTES = 1024 * 1024
"""Attachments at least this big are decoded into a file when ``parse_message`` is given a spool folder."""

SNIFF_BYTES = 8192
"""filetype looks at no more than this."""

TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")

_EXTENSION_OVERRIDES = {
    "application/octet-stream": ".bin",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "text/calendar": ".ics",
}


def filename(values: HeaderValues, defects: list[str], factory: HeaderFactory | None = None) -> str | None:
    """The declared file name, decoded (RFC 2231, RFC 2047, raw 8-bit) and sanitised; None when there is none."""
    for header_name, param in (("content-disposition", "filename"), ("content-type", "name")):
        found = values(header_name)
        if not found or "name" not in found[0].lower():
            continue  # no "filename" or "name" parameter: nothing to parse (most text parts)
        header = parsed_header(header_name, found[0], defects, factory)
        value = header.params.get(param) if header is not None else None
        if isinstance(value, tuple):  # an RFC 2231 value the registry left undecoded
            value = collapse_rfc2231_value(value)
        if header is None or _has_invalid_parameter(header):
            # The registry gives up on `filename==?utf-8?B?...?=` (no name at
            # all) and keeps only "This" of `name=This is a test.txt`; both
            # are common, and what the sender meant is the whole value.
            value = _lenient_param(undo_8bit(found[0]), param) or value
        if value:
            name = sanitise_filename(decode_words(undo_8bit(str(value))))
            if name:
                return name
    return None


def _has_invalid_parameter(header: Any) -> bool:
    return any("parameter" in str(defect) for defect in header.defects)


def _lenient_param(raw: str, param: str) -> str | None:
    """Parameter `param` read the way mail clients write it: a quoted string, else everything up to the next ';'."""
    match = re.search(rf'(?i)(?:^|;)[ \t]*{param}[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', raw)
    if not match:
        return None
    value = match.group(1) if match.group(1) is not None else match.group(2)
    return value.strip() or None


def sanitise_filename(name: str) -> str:
    """A name safe to store and offer for download: no directories, control or bidi characters."""
    name = clean(name)
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(" " if ch in "\t\r\n" else ch for ch in name
                   if ch in "\t\r\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    name = unicodedata.normalize("NFC", " ".join(name.split())).strip(" .")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH].rstrip()
    return name


@functools.cache
def mime_types() -> mimetypes.MimeTypes:
    """Python's built-in type table only, so names do not depend on the host's /etc/mime.types."""
    return mimetypes.MimeTypes(filenames=())


def extension(content_type: str, sniffed: str | None) -> str:
    """A file extension for a nameless part: from its declared type, else from its bytes."""
    candidates = [content_type]
    if content_type == "application/octet-stream" and sniffed:
        candidates.insert(0, sniffed)
    for ctype in candidates:
        ext = _EXTENSION_OVERRIDES.get(ctype) or mime_types().guess_extension(ctype)
        if ext:
            return ext
    if content_type.startswith(("message/", "text/")):
        return ".txt"
    return ".bin"


def sniff(data: bytes) -> str | None:
    """The MIME type the bytes themselves show (magic numbers), or None."""
    try:
        kind = filetype.guess(data[:SNIFF_BYTES]) if data else None
    except Exception:  # a matcher tripping over odd bytes must not lose the file
        return None
    return kind.mime if kind else None


class Decoded:
    """Decoded attachment bytes, hashed as they come: in memory, or in a spool file when given a folder."""

    def __init__(self, spool_dir: Path | None):
        self._hash = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first bytes, for sniffing the type
        self._pieces: list[bytes] = []
        self.content: bytes | None = None
        self.path: Path | None = None
        self._file: IO[bytes] | None = None
        if spool_dir is not None:
            fd, name = tempfile.mkstemp(dir=spool_dir, prefix=".tmp-spool-")
            self._file, self.path = os.fdopen(fd, "wb"), Path(name)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[:SNIFF_BYTES - len(self.head)]
        if self._file is not None:
            self._file.write(data)
        else:
            self._pieces.append(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        else:
            self.content = b"".join(self._pieces)
            self._pieces = []

    def read(self) -> bytes:
        if self.path is None:
            return self.content or b""
        data = self.path.read_bytes()
        self.discard()
        return data

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def tnef_files(data: bytes, defects: list[str], where: str) -> list[tuple[str | None, str, bytes]]:
    """(filename, content type, bytes) of the files inside an Outlook winmail.dat; [] when none can be read."""
    if not _tnef_complete(data):
        defects.append(f"{where}: winmail.dat is cut short or damaged; kept as is")
        return []
    try:
        tnef = TNEF(data, do_checksum=False)
        files = []
        for attachment in tnef.attachments:
            name = _tnef_name(attachment)
            content = attachment.data if isinstance(attachment.data, bytes) else b""
            mime = next((a.data for a in attachment.mapi_attrs if a.name == 0x370E), None)  # PR_ATTACH_MIME_TAG
            if not isinstance(mime, str) or "/" not in mime:
                mime = (mime_types().guess_type(name or "")[0] if name else None) or "application/octet-stream"
            files.append((name, mime.strip().lower(), content))
    except Exception as exc:  # tnefparse raises struct.error, ValueError, IndexError... on bad data
        defects.append(f"{where}: winmail.dat could not be unpacked ({type(exc).__name__}); kept as is")
        return []
    return files


def _tnef_complete(data: bytes) -> bool:
    """Whether every TNEF attribute fits in `data` (tnefparse silently returns truncated files otherwise)."""
    if len(data) < 6 or data[:4] != b"\x78\x9f\x3e\x22":
        return False
    offset = 6
    while offset < len(data):
        if offset + 9 > len(data):
            return False
        length = int.from_bytes(data[offset + 5: offset + 9], "little")
        offset += 9 + length + 2  # level, id, type, length; data; checksum
    return offset == len(data)


def _tnef_name(attachment: Any) -> str | None:
    """The long file name of a TNEF attachment, else its 8.3 title; sanitised."""
    try:
        name = attachment.long_filename()
    except UnicodeDecodeError:  # tnefparse assumes UTF-8 for the 8.3 name
        raw = attachment._name
        name = raw.decode("cp1252", "replace") if isinstance(raw, bytes) else raw
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return sanitise_filename(name.strip("\x00")) if name else None
