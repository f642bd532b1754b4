"""The fast path: the compiled parser (`fast-mail-parser`, Rust mailparse) reads the MIME tree and decodes the parts.

It takes the messages it can read exactly as the careful path would, and hands
every other one over by raising ``NeedsCareful`` with the reason: 8-bit or
malformed header lines, forwarded messages (kept whole as one ``.eml`` by the
careful path), winmail.dat, RFC 2231 and RFC 2047 parameters, uuencode,
quoted-printable files, multiparts that are never closed or have no parts,
digests, big parts that must be spooled, parts it cannot decode. The
headers themselves are read by the same Python code as on the careful path
(``headers``), from the values the compiled parser found, so the two paths
give the same addresses, subject and date.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fast_mail_parser

from rolsync.mail.parse import attachments as files
from rolsync.mail.parse import headers as hdr
from rolsync.mail.parse.headers import HeaderValues, first_blank_line
from rolsync.mail.parse.limits import Budget, ParseLimits
from rolsync.mail.parse.mime import MAX_DEPTH, Walk, finish
from rolsync.mail.parse.model import ParsedMessage
from rolsync.mail.parse.text import decode_part_text


class NeedsCareful(Exception):
    """The fast path cannot read this message as rolsync needs; the careful path must."""


# A header block the compiled parser and the standard library read alike:
# "Name: value" lines (RFC 5322 field names) and their continuation lines.
# A block may not start with a continuation line (the standard library calls that a defect).
_CLEAN_HEADER_BLOCK = re.compile(rb"(?:[!-9;-~]+:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)*")
_SIMPLE_ENCODINGS = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})


def parse_fast(raw: bytes, *, spool_dir: Path | None, limits: ParseLimits, budget: Budget, raw_sha256: str,
               size: int, notices: Sequence[str] = ()) -> ParsedMessage:
    """Parse `raw` with the compiled parser; raises NeedsCareful when the careful path must read it."""
    if raw.startswith(b"From "):
        raise NeedsCareful("an mbox From_ line")
    blank = _header_end(raw)
    if blank is None or not raw[:blank].isascii() or not _CLEAN_HEADER_BLOCK.fullmatch(raw, 0, blank):
        raise NeedsCareful("8-bit, malformed or unterminated header lines")
    try:
        tree = fast_mail_parser.parse_email_tree(raw, mode="lazy")
    except Exception as exc:  # ParseError, or anything else it may raise: the careful path reads everything
        raise NeedsCareful(f"the compiled parser refused it ({type(exc).__name__})") from None
    walk = FastWalk([], spool_dir, limits, budget, raw)
    walk.values(tree)  # its checks
    values = _top_level_values(raw[:blank])
    if not any(values(name) for name in hdr.MAIL_HEADERS):
        raise NeedsCareful("no e-mail headers")
    walk.delimiters = _check_delimiters(raw, walk, tree)
    segments = walk.collect(tree, depth=0, parent="", body=True, root=True)
    return finish(values, walk, segments, walk.defects, raw_sha256=raw_sha256, size=size, path="fast",
                  notices=notices)


def _top_level_values(block: bytes) -> HeaderValues:
    """The message's own header values exactly as the careful path reads them (unfolded by removing line breaks)."""
    table: dict[str, list[str]] = {}
    name = None
    for line in _LINE_END.split(block.decode("ascii")):  # not splitlines(): a form feed does not end a line here
        if not line:
            continue
        if line[:1] in (" ", "\t"):
            if name is not None:
                table[name][-1] += line
            continue
        field, _colon, value = line.partition(":")
        name = field.lower()
        table.setdefault(name, []).append(value.lstrip(" \t"))
    return lambda wanted: table.get(wanted, [])


_LINE_END = re.compile(r"\r?\n")


def _check_delimiters(raw: bytes, walk: "FastWalk", tree: Any) -> dict[str, int]:
    """How many delimiter lines each multipart's boundary has; NeedsCareful if a part's header lines are malformed.

    One pass over the message. The compiled parser and the standard library
    read a part whose header lines are broken (a line without a colon, a
    continuation without its leading blank, no headers before the text)
    differently, so such a message is the careful path's.
    """
    boundaries = set()
    stack = [tree]
    while stack:
        part = stack.pop()
        if part.children:
            boundary = walk._shim(part).get_boundary()
            if boundary:
                boundaries.add(boundary.encode("ascii", "replace"))
            stack.extend(part.children)
    counts: dict[str, int] = {}
    if not boundaries:
        return counts
    found = _delimiter_lines(raw)
    for number, (_start, end, token) in enumerate(found):
        closing = token.endswith(b"--") and token[:-2] in boundaries
        if token not in boundaries and not closing:
            continue
        key = (token[:-2] if closing else token).decode("ascii", "replace")
        counts[key] = counts.get(key, 0) + 1
        if closing:
            continue
        stop = found[number + 1][0] if number + 1 < len(found) else len(raw)
        blank = first_blank_line(raw, end, stop)
        head_end = blank + 1 if blank >= 0 else stop
        if not _CLEAN_HEADER_BLOCK.fullmatch(raw, end + 1, max(head_end, end + 1)):
            raise NeedsCareful("a part's header lines are malformed")
    return counts


def _delimiter_lines(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, text after "--") of every line that starts with "--" (a byte search: a regex tries every byte)."""
    lines = []
    position = 0 if raw.startswith(b"--") else raw.find(b"\n--")
    while position >= 0:
        start = position if position == 0 and raw.startswith(b"--") else position + 1
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end
        lines.append((start, end, raw[start + 2:end].rstrip(b"\r").rstrip(b" \t")))
        position = raw.find(b"\n--", end)
    return lines


def _header_end(raw: bytes) -> int | None:
    """Where the top-level header block ends (the line break before the empty line is included); None without one."""
    if raw.startswith((b"\n", b"\r\n")):
        return 0
    blank = first_blank_line(raw, 0, len(raw))
    return blank + 1 if blank >= 0 else None


class FastWalk(Walk):
    """The MIME walk over the compiled parser's tree (``PyLazyMimePart``)."""

    def __init__(self, defects: list[str], spool_dir: Path | None, limits: ParseLimits, budget: Budget, raw: bytes):
        super().__init__(defects, spool_dir, limits, budget)
        self.raw = raw
        self._values: dict[int, HeaderValues] = {}
        self._shims: dict[int, email.message.Message] = {}
        self.delimiters: dict[str, int] = {}

    def values(self, part: Any) -> HeaderValues:
        found = self._values.get(id(part))
        if found is None:
            table: dict[str, list[str]] = {}
            for name, found_values in part.headers.items():
                table.setdefault(name.lower(), []).extend(found_values)
            for name in ("content-type", "content-disposition"):
                if len(table.get(name, ())) > 1:
                    raise NeedsCareful(f"two {name} headers in one part")
            for name in ("content-type", "content-disposition"):
                value = (table.get(name) or [""])[0]
                if "*" in value or "=?" in value or not value.isascii():
                    raise NeedsCareful("RFC 2231 or RFC 2047 parameters")
            found = self._values[id(part)] = lambda name: table.get(name, [])
        return found

    def _shim(self, part: Any) -> email.message.Message:
        """The part's Content-Type and Content-Disposition in a standard library Message: the same parameter rules."""
        shim = self._shims.get(id(part))
        if shim is None:
            shim = self._shims[id(part)] = email.message.Message()
            values = self.values(part)
            for name in ("content-type", "content-disposition"):
                for value in values(name):
                    shim[name] = value
        return shim

    def content_type(self, part: Any) -> str:
        ctype = self._shim(part).get_content_type().lower()
        if ctype.startswith("message/") or part.is_message:
            raise NeedsCareful("an enclosed message, kept whole")
        if ctype in files.TNEF_TYPES or ctype == "multipart/digest":
            raise NeedsCareful(f"a {ctype} part")
        encoding = self._encoding(part)
        if encoding not in _SIMPLE_ENCODINGS:
            raise NeedsCareful(f"{encoding} transfer encoding")
        if encoding == "quoted-printable" and not self.raw.isascii():
            raise NeedsCareful("8-bit bytes in a quoted-printable message")  # invalid there, decoded differently
        if part.children or ctype.startswith("multipart/"):
            return ctype
        if self.spool_dir is not None and (part.encoded_size or 0) >= files.SPOOL_MIN_BYTES * 4 // 3:
            raise NeedsCareful("a big part, to be decoded into a spool file")
        return ctype

    def _encoding(self, part: Any) -> str:
        return (self.values(part)("content-transfer-encoding") or [""])[0].strip().strip('"').lower()

    def disposition(self, part: Any) -> str | None:
        return self._shim(part).get_content_disposition()

    def filename(self, part: Any) -> str | None:
        name = files.filename(self.values(part), self.defects, hdr.structure_factory)
        if (name or "").lower() == "winmail.dat":
            raise NeedsCareful("a winmail.dat")
        return name

    def related_start(self, part: Any) -> str | None:
        if self._shim(part).get_param("start") is not None:
            raise NeedsCareful("a multipart/related with a start parameter")
        return None

    def children(self, part: Any, ctype: str, where: str) -> list[Any] | None:
        boundary = self._shim(part).get_boundary()
        if not part.children or not boundary:
            raise NeedsCareful("a multipart without parts or boundary")
        if self.delimiters.get(boundary.encode("ascii", "replace").decode("ascii")) != len(part.children) + 1:
            # Never closed, a delimiter inside a part's text, or a boundary shared by two multiparts.
            raise NeedsCareful("a multipart whose delimiter lines do not match its parts")
        return list(part.children)

    def collect(self, part: Any, *, depth: int, parent: str, body: bool, root: bool = False) -> list[tuple[str, str]]:
        if depth > MAX_DEPTH:
            raise NeedsCareful("nested deeper than rolsync follows")
        return super().collect(part, depth=depth, parent=parent, body=body, root=root)

    def _content(self, part: Any) -> bytes:
        try:
            data = part.content
        except fast_mail_parser.ParseError:
            raise NeedsCareful("a part the compiled parser cannot decode") from None
        return data if isinstance(data, bytes) else b""

    def text(self, part: Any, ctype: str, where: str) -> str:
        data = self._content(part)
        charset = self._shim(part).get_content_charset()
        charset = charset.strip().strip("'\"") if charset else None
        text, note = decode_part_text(data, charset, ctype)
        if note:
            self.defects.append(f"{where}: {note}")
        return text

    def add_file(self, part: Any, ctype: str, where: str, parent: str, disposition: str | None) -> None:
        if self._encoding(part) == "quoted-printable":
            raise NeedsCareful("a quoted-printable file")  # line breaks decode as CRLF here, as sent there
        name = self.filename(part)
        self.append(name, ctype, self._content(part), inline=self.is_inline(part, parent, disposition))

    def add_message(self, part: Any, ctype: str, where: str, parent: str, disposition: str | None) -> None:
        raise NeedsCareful("an enclosed message, kept whole")
