"""Body text: decoding with the charset the sender meant, HTML made readable, the note's text from the body parts."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from typing import TypeVar

import html2text

_SURROGATES = re.compile("[\udc80-\udcff]")
_MD_LINK = re.compile(r"!?\[((?:\\.|[^\]\\])*)\]\(((?:\\.|[^)\\\s])*)(?:\s+\"[^\"]*\")?\)")
_MD_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_BLANK_LINES = re.compile(r"\n{3,}")
_ENRICHED_COMMAND = re.compile(r"<(/?[A-Za-z0-9-]{1,60})>")
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)

# Labels that mail clients use loosely: decode with the superset that the
# sender's software actually meant (the WHATWG encoding standard does the same).
_CHARSET_UPGRADES: dict[str, str | None] = {
    "ascii": None,  # 8-bit bytes under us-ascii are common; fall back like "no charset"
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
_CHARSET_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-mac-roman": "mac-roman",
    "x-sjis": "cp932",
    "windows-874": "cp874",
    "utf8mb4": "utf-8",
}

T = TypeVar("T")


def codec(charset: str | None) -> tuple[str | None, bool]:
    """(Python codec to try first, whether the label was unknown)."""
    if not charset:
        return None, False
    label = _CHARSET_ALIASES.get(charset.lower(), charset.lower())
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return None, True
    if not info._is_text_encoding:  # "base64", "rot13"...: not charsets
        return None, True
    return _CHARSET_UPGRADES.get(info.name, info.name), False


def decode_part_text(data: bytes, charset: str | None, ctype: str) -> tuple[str, str | None]:
    """A text part's text (and a note on what was repaired): its declared charset, an HTML meta charset, fallbacks."""
    if charset is None and ctype == "text/html":
        meta = META_CHARSET.search(data[:4096])
        if meta:
            charset = meta.group(1).decode("ascii")
    return decode_bytes(data, charset)


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """(text, note): decode with the declared charset, else UTF-8, else Windows-1252, else Latin-1."""
    python_codec, unknown = codec(charset)
    if python_codec:
        try:
            return data.decode(python_codec), None
        except UnicodeDecodeError:
            return data.decode(python_codec, "replace"), f"text is not valid {charset}; undecodable bytes replaced"
    note = f"unknown charset {charset!r}" if unknown else None
    try:
        return data.decode("utf-8"), note and f"{note}; decoded as utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), note and f"{note}; decoded as windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), note and f"{note}; decoded as latin-1"


def readable_text(segments: list[tuple[str, str]]) -> str:
    """The message text: the plain segments when any has words, else the HTML (and enriched) ones made readable.

    An empty text/plain part (some mailers write one, and a multipart that is
    never closed gets one from the parser) must not hide the HTML beside it.
    """
    plain = [tidy(text) for kind, text in segments if kind == "plain"]
    if any(plain):
        pieces = plain
    else:
        pieces = [_BLANK_LINES.sub("\n\n", tidy(enriched_to_text(text) if kind == "enriched" else html_to_text(text)))
                  for kind, text in segments if kind != "plain"]
    return "\n\n".join(piece for piece in pieces if piece)


def enriched_to_text(text: str) -> str:
    """text/enriched (RFC 1896) as plain text: formatting commands dropped, its line-break rules applied."""
    if "<param>" in text.lower():
        text = re.sub(r"(?is)<param>.*?</param>", "", text)
    text = _ENRICHED_COMMAND.sub("", text).replace("<<", "<")
    # One line break is a space, n+1 of them are n breaks.
    return re.sub(r"\r?\n(\r?\n)*", lambda m: " " if m.group(0).count("\n") == 1 else "\n" * (m.group(0).count("\n") - 1),
                  text)


def html_to_text(html: str) -> str:
    """HTML as readable plain text: no tags, no style or script, links as "text (url)"."""
    # html2text drops table tags entirely with ignore_tables, gluing cells
    # together; a space per cell and a break per row keeps them apart.
    html = re.sub(r"(?i)</t[dh]\s*>", " \\g<0>", html)
    html = re.sub(r"(?i)</tr\s*>", "<br>\\g<0>", html)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.unicode_snob = True
    converter.use_automatic_links = True
    try:
        text = converter.handle(html)
    except Exception:  # html2text on pathological markup; never show raw HTML instead
        text = re.sub(r"(?s)<(script|style)\b.*?</\1\s*>|<[^>]*>", " ", html)
    pieces = []
    position = 0
    for match in _MD_LINK.finditer(text):
        pieces.append(_unescape_markdown(text[position:match.start()]))
        pieces.append(_plain_link(match))
        position = match.end()
    pieces.append(_unescape_markdown(text[position:]))
    return "".join(pieces)


def _unescape_markdown(text: str) -> str:
    """Undo html2text's Markdown escaping ("1\\." "\\-", "<url>"), which is noise in a note."""
    return _MD_ESCAPE.sub(r"\1", _MD_AUTOLINK.sub(r"\1", text))


def _plain_link(match: re.Match) -> str:
    """A Markdown link as "label (url)", or just the label when the url adds nothing."""
    label = _unescape_markdown(match.group(1)).strip()
    url = _MD_ESCAPE.sub(r"\1", match.group(2)).strip()
    bare = url[7:] if url.lower().startswith("mailto:") else url
    if not label:
        return ""  # a linked image (logo, tracking banner): nothing to read
    if label in (url, bare) or not url or url.startswith("#"):
        return label
    return f"{label} ({bare})"


def tidy(text: str) -> str:
    """Unix line ends, no trailing whitespace, no leading or trailing blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in clean(text).split("\n")).strip("\n")


def clean(text: str) -> str:
    """Without NUL (PostgreSQL refuses it in text) and without undecodable surrogates."""
    text = text.replace("\x00", "")
    if _SURROGATES.search(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def snippet(text: str, length: int = 200) -> str:
    """A one-line preview of `text` at most `length` characters long, cut at a word."""
    flat = " ".join((text or "").split())
    if length <= 0:
        return ""
    if len(flat) <= length:
        return flat
    cut = flat[: length - 1]
    space = cut.rfind(" ")
    if space > length // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def unique(items: Iterable[T]) -> list[T]:
    """The items without repeats, first occurrence kept."""
    seen: set[T] = set()
    result = []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result
