"""The careful path: the standard library's `email` (``policy.default``) for mail the fast parser cannot read as rolsync needs.

It reads anything: each header is parsed on its own and falls back to a
lenient reading when the strict parser gives up, broken multiparts are
recovered with the boundary the body really uses, forwarded messages are kept
whole as ``.eml`` files, winmail.dat is unpacked. Long base64 bodies are
folded out of the parser's way (``Folds``) and decoded straight from the raw
bytes, into a spool file when they are big.
"""

from __future__ import annotations

import base64
import binascii
import email
import io
import os
import quopri
import re
from collections.abc import Sequence
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from rolsync.mail.parse import attachments as files
from rolsync.mail.parse import headers as hdr
from rolsync.mail.parse.attachments import Decoded, sanitise_filename
from rolsync.mail.parse.headers import SHARED_HEADERS, HeaderValues, shared_header
from rolsync.mail.parse.limits import Budget, ParseLimits
from rolsync.mail.parse.mime import Walk, finish
from rolsync.mail.parse.model import MessageUnreadable, ParsedMessage
from rolsync.mail.parse.text import decode_part_text

FOLD_MIN_BYTES = 8 * 1024
"""Base64 bodies at least this long bypass the email package's line-by-line reading (see ``Folds``)."""

DECODE_CHUNK_BYTES = 1024 * 1024
"""How much base64 is decoded (and hashed) at a time."""

_LINEBREAKS = re.compile(r"[\r\n]")
_BOUNDARY_LINE = re.compile(rb"^--([^\s\"]{1,200}?)(?:--)?[ \t]*\r?$", re.MULTILINE)
_UUENCODE = ("x-uuencode", "uuencode", "uue", "x-uue")

# A regenerated part must keep its headers byte for byte (no refolding), and
# .eml files conventionally use CRLF.
_EML_POLICY = policy.default.clone(linesep="\r\n", refold_source="none")


class _HeaderCache:
    """policy.default's header registry, remembering the headers it parsed for one message.

    The email package parses a structured header again on every access (the
    feed parser alone reads each part's Content-Type half a dozen times), and
    the registry builds a new header class on each call. Header objects are
    immutable, so within one message they can be shared: parsing a typical
    message takes less than half the time. One cache per message keeps
    nothing alive between messages.
    """

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], Any] = {}

    def __call__(self, name: str, value: str) -> Any:
        # The registry ignores the case of a name; the feed parser and this
        # module ask for "Content-Type" and "content-type" respectively.
        key = (name.lower(), value)
        header = self._parsed.get(key)
        if header is None:
            if key[0] in SHARED_HEADERS:
                header = shared_header(*key)
            else:
                header = policy.default.header_factory(name, value)
            self._parsed[key] = header
        return header


def raw_values(part: Message) -> HeaderValues:
    """The lookup of `part`'s unparsed header values, unfolded, by lower-case name."""
    table: dict[str, list[str]] = {}
    for key, value in part.raw_items():
        table.setdefault(key.lower(), []).append(_LINEBREAKS.sub("", value))
    return lambda name: table.get(name, [])


def parse_careful(raw: bytes, *, spool_dir: Path | None, limits: ParseLimits, budget: Budget, raw_sha256: str,
                  size: int, notices: Sequence[str] = ()) -> ParsedMessage:
    """Parse `raw` with the standard library; raises MessageUnreadable only for input that is not an e-mail."""
    folds = Folds.find(raw)
    factory = _HeaderCache()
    message_policy = policy.default.clone(header_factory=factory)
    try:
        msg = email.message_from_bytes(folds.skeleton, policy=message_policy)
        if folds.runs and folds.misplaced(msg):
            folds = Folds(raw)
            msg = email.message_from_bytes(raw, policy=message_policy)
    except RecursionError:
        raise MessageUnreadable("the MIME structure is nested too deeply to read") from None
    budget.check()
    values = raw_values(msg)
    header_names = {name.lower() for name, _value in msg.raw_items()}
    if not header_names:
        raise MessageUnreadable("it has no header lines, so it is not an e-mail message")
    if not header_names & hdr.MAIL_HEADERS:
        raise MessageUnreadable("none of its header lines are e-mail headers")

    defects: list[str] = []
    hdr.note_defects(defects, "message", msg.defects)
    walk = CarefulWalk(defects, spool_dir, limits, budget, folds, factory)
    try:
        segments = walk.collect(msg, depth=0, parent="", body=True, root=True)
    except BaseException:
        for attachment in walk.attachments:
            if attachment.spool is not None:
                attachment.spool.unlink(missing_ok=True)
        raise
    return finish(values, walk, segments, defects, raw_sha256=raw_sha256, size=size, path="careful",
                  factory=factory, notices=notices)


class CarefulWalk(Walk):
    """The MIME walk over the standard library's Message tree."""

    def __init__(self, defects: list[str], spool_dir: Path | None, limits: ParseLimits, budget: Budget,
                 folds: "Folds", factory: _HeaderCache):
        super().__init__(defects, spool_dir, limits, budget)
        self.folds = folds
        self.factory = factory
        self._values: dict[int, HeaderValues] = {}

    def values(self, part: Message) -> HeaderValues:
        found = self._values.get(id(part))
        if found is None:
            found = self._values[id(part)] = raw_values(part)
        return found

    def part_defects(self, part: Message) -> Sequence[object]:
        return part.defects

    def content_type(self, part: Message) -> str:
        """The declared type, lower-case (RFC 2045 defaults for missing or invalid ones)."""
        try:
            return part.get_content_type().lower()
        except Exception:  # header parser bug: treat as opaque bytes
            return "application/octet-stream"

    def disposition(self, part: Message) -> str | None:
        try:
            return part.get_content_disposition()
        except Exception:
            return None

    def filename(self, part: Message) -> str | None:
        return files.filename(self.values(part), self.defects, self.factory)

    def related_start(self, part: Message) -> str | None:
        try:
            start = part.get_param("start")
        except Exception:
            return None
        return start if isinstance(start, str) else None

    def _charset(self, part: Message) -> str | None:
        try:
            charset = part.get_content_charset()
        except Exception:
            return None
        return charset.strip().strip("'\"") if charset else None

    def _transfer_encoding(self, part: Message) -> str:
        return (self.values(part)("content-transfer-encoding") or [""])[0].strip().strip('"').lower()

    def children(self, part: Message, ctype: str, where: str) -> list[Any] | None:
        """The subparts; for a multipart whose boundary is missing or wrong, the parts found by the real one."""
        data = self.folds.undecoded(part)
        if data is None:
            payload = part.get_payload()
            return payload if isinstance(payload, list) else None
        if not data:
            return None
        match = _BOUNDARY_LINE.search(data)
        if not match:
            return None
        boundary = match.group(1)
        rebuilt = (b"Content-Type: " + ctype.encode("ascii", "replace") + b'; boundary="' + boundary
                   + b'"\r\n\r\n' + data)
        try:
            again = email.message_from_bytes(rebuilt, policy=part.policy)
        except RecursionError:
            return None
        parts = again.get_payload()
        if not isinstance(parts, list) or not parts:
            return None
        self.defects.append(f"{where}: multipart boundary missing or wrong; parts recovered "
                            f"with the boundary found in the body")
        return parts

    def text(self, part: Message, ctype: str, where: str) -> str:
        """The decoded text of a text part (declared charset, HTML meta charset, then fallbacks)."""
        data = self._payload(part, where)
        charset = self._charset(part)
        text, note = decode_part_text(data, charset, ctype)
        if note:
            self.defects.append(f"{where}: {note}")
        return text

    def _payload(self, part: Message, where: str) -> bytes:
        """The decoded bytes of a leaf part, recovering truncated base64 rather than failing."""
        data = self.folds.undecoded(part)
        if data is None:  # a message/* part; handled by add_message
            return b""
        cte = self._transfer_encoding(part)
        if cte == "base64":
            try:
                return binascii.a2b_base64(data)
            except binascii.Error:
                cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
                self.defects.append(f"{where}: base64 data is damaged or cut short; decoded what was there")
                return binascii.a2b_base64(cleaned[: len(cleaned) - len(cleaned) % 4])
        if cte == "quoted-printable":
            return quopri.decodestring(data)
        if cte in _UUENCODE:
            try:
                decoded = part.get_payload(decode=True)
                return decoded if isinstance(decoded, bytes) else b""
            except Exception as exc:
                self.defects.append(f"{where}: uuencoded data could not be decoded ({type(exc).__name__}); "
                                    f"kept as sent")
        return data

    def add_file(self, part: Message, ctype: str, where: str, parent: str, disposition: str | None) -> None:
        """Keep a leaf part as an attachment; a winmail.dat gives the files inside it instead."""
        run = self.folds.whole_run(part) if self._transfer_encoding(part) == "base64" else None
        decoded = self._decode_run(run) if run is not None else None
        data = self._payload(part, where) if decoded is None else b""
        name = self.filename(part)
        if ctype in files.TNEF_TYPES or (name or "").lower() == "winmail.dat":
            if decoded is not None:
                data, decoded = decoded.read(), None
            inside = files.tnef_files(data, self.defects, where)
            if inside:
                for inner_name, content_type, content in inside:
                    self.append(inner_name, content_type, content, inline=False)
                return
        inline = self.is_inline(part, parent, disposition)
        if decoded is not None:
            self.append_decoded(name, ctype, decoded, inline=inline)
        else:
            self.append(name, ctype, data, inline=inline)

    def _decode_run(self, run: tuple[int, int]) -> Decoded | None:
        """A folded base64 body decoded straight from the raw bytes; None when it is damaged.

        Decoding stops where binascii.a2b_base64 would (the first complete
        padding), so the bytes are the same as decoding the whole payload at
        once; damaged base64 is left to ``_payload``, which knows how to
        recover it.
        """
        start, end = run
        raw = self.folds.raw
        spool = self.spool_dir if end - start >= files.SPOOL_MIN_BYTES * 4 // 3 else None
        decoded = Decoded(spool)
        try:
            carry = b""
            position = start
            while position < end:
                self.budget.check()
                stop = raw.rfind(b"\n", position, min(end, position + DECODE_CHUNK_BYTES)) + 1
                if stop <= position:  # the last line, without its line break
                    stop = end
                chunk = carry + raw[position:stop].translate(None, b"\r\n")
                position = stop
                if b"=" in chunk:
                    # Padding ends the data: decode the rest in one go, as a2b_base64 would.
                    decoded.write(binascii.a2b_base64(chunk + raw[position:end].translate(None, b"\r\n")))
                    carry = b""
                    break
                whole = len(chunk) - len(chunk) % 4
                decoded.write(binascii.a2b_base64(chunk[:whole]))
                carry = chunk[whole:]
            if carry:
                decoded.write(binascii.a2b_base64(carry))  # raises as a2b_base64 would on the whole
        except binascii.Error:
            decoded.discard()
            return None
        except BaseException:  # not swallowed: only the spool file is cleaned up
            decoded.discard()
            raise
        decoded.close()
        return decoded

    def add_message(self, part: Message, ctype: str, where: str, parent: str, disposition: str | None) -> None:
        """A message/* part kept whole as one file: a forwarded message becomes "<subject>.eml"."""
        data = self._message_bytes(part, where)
        name = self.filename(part)
        if ctype in ("message/rfc822", "message/global"):
            if name and "." not in name:
                name += ".eml"
            if not name and data:
                # Headers only: the enclosed message may carry megabytes of attachments.
                inner = BytesHeaderParser(policy=policy.default).parsebytes(data)
                subject = " ".join((hdr.header_text(raw_values(inner), "subject", []) or "").split())
                if subject:
                    name = sanitise_filename(subject.replace("/", "-").replace("\\", "-") + ".eml")
        self.append(name, ctype, data, inline=self.is_inline(part, parent, disposition))

    def _message_bytes(self, part: Message, where: str) -> bytes:
        """The enclosed message of a message/* part as bytes (headers unchanged, CRLF line ends)."""
        buffer = io.BytesIO()
        try:
            BytesGenerator(buffer, mangle_from_=False, policy=_EML_POLICY).flatten(part)  # type: ignore[arg-type]
        except Exception as exc:
            self.defects.append(f"{where}: enclosed message could not be written out ({type(exc).__name__})")
            return b""
        written = buffer.getvalue()
        # Cut the part's own header block; what follows is the enclosed message.
        if written.startswith(b"\r\n"):
            data = written[2:]
        else:
            _head, _sep, data = written.partition(b"\r\n\r\n")
        cte = self._transfer_encoding(part)
        # RFC 2046 forbids encoding message/rfc822, but some clients do it anyway.
        try:
            if cte == "base64":
                return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data))
            if cte == "quoted-printable":
                return quopri.decodestring(data)
        except (binascii.Error, ValueError):
            self.defects.append(f"{where}: enclosed message has a damaged {cte} encoding; kept as sent")
        return data


class _Next:
    """The next place at or after a position where one of some byte strings occurs, for positions that only grow.

    Each search resumes where the previous answer lies, so finding the next
    occurrence for every one of n growing positions costs one pass over the
    message, not n (a hostile body repeats the header that starts a search).
    """

    def __init__(self, raw: bytes, *needles: bytes):
        self.raw = raw
        self.needles = needles
        self._found = -2  # the answer for every position up to it

    def __call__(self, position: int) -> int:
        if self._found == -1 or (self._found >= position and self._asked <= position):
            return self._found
        self._asked = position
        hits = [i for i in (self.raw.find(needle, position) for needle in self.needles) if i >= 0]
        self._found = min(hits) if hits else -1
        return self._found

    _asked = 0


class _NextNotBase64:
    """The next byte at or after a position that cannot be in a folded base64 body, for positions that only grow."""

    _PATTERN = re.compile(rb"[^A-Za-z0-9+/=\r\n]|\n\n|\n\r|\r\r")

    def __init__(self, raw: bytes):
        self.raw = raw
        self._found = -2
        self._asked = 0

    def __call__(self, position: int) -> int:
        if self._found == -1 or (self._found >= position and self._asked <= position):
            return self._found
        self._asked = position
        match = self._PATTERN.search(self.raw, position)
        self._found = match.start() if match else -1
        return self._found


class Folds:
    """Long base64 bodies, each replaced by a one-line token before the email package reads the message.

    The feed parser reads a message line by line in Python, and a CV's base64
    body is thousands of lines, 25 MB ones hundreds of thousands (held several
    times over in memory). A body made only of non-empty lines of base64
    letters, digits, '+', '/' and '=' holds no boundary ("--") and no header
    (no ':' and no leading blank), so the parser treats each of its lines as
    an ordinary line, and a single token line made of letters in its place
    leaves the parsed structure, and every defect, exactly as they were. The
    walk then decodes such a body straight from the raw bytes, a chunk at a
    time; anywhere else the token is put back (``undecoded``). Where the
    walk would read a token in a way that cannot be put back (inside a
    message/* part, which is written out whole, or a uuencoded part), the
    message is parsed again unfolded (``misplaced``).

    Finding the bodies is one pass over the message whatever it holds: the
    header lines are visited in order and every search resumes where the last
    one ended (``_Next``).
    """

    _CTE_BASE64 = re.compile(rb"(?i)content-transfer-encoding:[ \t]*base64[ \t]*\r?")
    _LONGEST_CTE_LINE = 80  # the header line, with room for spaces; a longer line is not one

    def __init__(self, raw: bytes):
        self.raw = raw
        self.skeleton = raw
        self.runs: dict[str, tuple[int, int]] = {}  # token -> (start, end) in raw, without the last line break

    @classmethod
    def find(cls, raw: bytes) -> "Folds":
        folds = cls(raw)
        pieces: list[bytes] = []
        kept_until = 0
        tried = -1
        nonce = os.urandom(8).hex().upper()
        next_blank = _Next(raw, b"\n\r\n", b"\n\n")
        next_boundary = _Next(raw, b"\n--")
        next_other = _NextNotBase64(raw)
        for header_end in sorted(set(cls._base64_headers(raw))):
            blank = next_blank(header_end)
            if blank < 0:
                break
            start = blank + (3 if raw[blank:blank + 3] == b"\n\r\n" else 2)
            if start <= tried or start < kept_until or start >= len(raw):
                continue  # the same body as the header before: tried already
            tried = start
            # Up to the next boundary line, less the line breaks before it
            # (the blank line many mailers leave there stays as it is).
            boundary = next_boundary(start)
            end = len(raw) if boundary < 0 else boundary
            while end > start and raw[end - 1] in b"\r\n":
                end -= 1
            if end - start < FOLD_MIN_BYTES or raw[start:start + 1] in (b"\r", b"\n"):
                continue
            other = next_other(start)
            if 0 <= other < end:
                continue
            token = f"ROLSYNCFOLD{nonce}N{len(folds.runs)}"
            if token.encode() in raw:
                continue
            folds.runs[token] = (start, end)
            pieces += [raw[kept_until:start], token.encode()]
            kept_until = end
        if folds.runs:
            folds.skeleton = b"".join(pieces + [raw[kept_until:]])
        return folds

    @classmethod
    def _base64_headers(cls, raw: bytes) -> list[int]:
        """Where each "Content-Transfer-Encoding: base64" header line ends.

        Found by looking for "ase64" and "ASE64" (fast byte searches) rather
        than running a regex over megabytes of attachment; each look at a line
        is bounded, so a long line full of "base64" costs no more than its length.
        """
        ends = []
        longest = cls._LONGEST_CTE_LINE
        for spelling in (b"ase64", b"ASE64"):
            position = raw.find(spelling)
            while position >= 0:
                line_start = raw.rfind(b"\n", max(0, position - longest), position) + 1
                line_end = raw.find(b"\n", position, position + longest)
                if line_end < 0 and len(raw) - position <= longest:
                    line_end = len(raw)
                if (line_start > 0 or position <= longest) and line_end >= 0 \
                        and cls._CTE_BASE64.fullmatch(raw, line_start, line_end):
                    ends.append(line_end)
                position = raw.find(spelling, position + 1)
        return ends

    def misplaced(self, msg: Message) -> bool:
        """Whether a token sits where the walk would read it without putting the run back."""
        def visit(part: Message, enclosed: bool) -> bool:
            try:
                enclosed = enclosed or part.get_content_type().lower().startswith("message/")
            except Exception:
                pass
            if enclosed and any("ROLSYNCFOLD" in (text or "") for text in (part.preamble, part.epilogue)):
                return True
            payload = part._payload  # type: ignore[attr-defined]
            if isinstance(payload, list):
                return any(visit(child, enclosed) for child in payload if isinstance(child, Message))
            if not isinstance(payload, str) or "ROLSYNCFOLD" not in payload:
                return False
            cte = (part.get("content-transfer-encoding") or "")
            return enclosed or str(cte).strip().strip('"').lower() in _UUENCODE
        return visit(msg, False)

    def whole_run(self, part: Message) -> tuple[int, int] | None:
        """The folded run that is the entire (base64) payload of `part`, if it is one."""
        payload = part._payload  # type: ignore[attr-defined]
        if not self.runs or not isinstance(payload, str):
            return None
        return self.runs.get(payload.strip())

    def undecoded(self, part: Message) -> bytes | None:
        """The body of a leaf part as received (still transfer-encoded); None for a part holding parts."""
        # Read the stored payload directly: get_payload() decodes 8-bit text with
        # the declared charset first (and raises on some labels), and copies it.
        payload = part._payload  # type: ignore[attr-defined]
        if isinstance(payload, list):
            return None
        if isinstance(payload, str):
            for token in [t for t in self.runs if t in payload]:
                start, end = self.runs[token]
                payload = payload.replace(token, self.raw[start:end].decode("ascii"))
            return payload.encode("utf-8", "surrogateescape")
        return bytes(payload or b"")
