"""E-mail addresses as rolsync compares them: `normalise_address`, and the plain address lists nearly all mail uses.

Kept apart from the parser so that the modules that only compare addresses
(accounts, the CRM, matching, records, sign-in) do not load it.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

# Address headers in the plain form nearly all mail uses: `addr@host` or
# `Display Name <addr@host>` (atoms or quoted strings without escapes), comma
# separated, ASCII, no comments, groups or encoded words. For these the header
# registry's answer is known (the same pairs, no defects: see
# tests/mail/test_parse_fast_paths.py), and parsing them by regex is ~20x faster.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDR_SPEC = rf"{_DOT_ATOM}@{_LABEL}(?:\.{_LABEL})+"
_PHRASE_WORD = rf"(?:{_ATEXT}+|\"[^\"\\\r\n]*\")"
_PLAIN_MAILBOX = re.compile(rf"[ \t]*(?:(?P<name>{_PHRASE_WORD}(?:[ \t]+{_PHRASE_WORD})*)[ \t]*<(?P<angle>{_ADDR_SPEC})>"
                            rf"|(?P<bare>{_ADDR_SPEC}))[ \t]*")
_QUOTED = re.compile(r'"([^"]*)"')
# An address as normalise_address returns it, in its plainest form.
_NORMAL_ADDRESS = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_SURROGATES = re.compile("[\udc80-\udcff]")


def normalise_address(value: str | None) -> str | None:
    """The bare address of `value`, lower-cased, for comparing; None when it holds no usable address.

    A value with several addresses gives the first usable one.
    """
    if value and _NORMAL_ADDRESS.fullmatch(value):
        return value  # normal already (what the parser gives): getaddresses would hand it back as it is
    if not value or not value.strip():
        return None
    try:
        pairs = getaddresses([value])
    except Exception:  # getaddresses has its own parser bugs on garbage; try the whole value
        pairs = [("", value)]
    for _name, spec in pairs:
        address = normalise_spec(spec)
        if address:
            return address
    return None


def normalise_spec(spec: str | None) -> str | None:
    """An addr-spec stripped of quoting and brackets and lower-cased; None unless it looks like local@domain."""
    if not spec:
        return None
    value = spec.strip().strip("<>").strip().strip("'\"`").strip()
    if value.lower().startswith("mailto:"):
        value = value[7:].strip()
    local, at, domain = value.rpartition("@")
    domain = domain.rstrip(".")
    if not at or not local or not domain:
        return None
    if any(ch.isspace() or ch in '<>,;"\x00' for ch in value) or _SURROGATES.search(value):
        return None
    return f"{local}@{domain}".lower()


def plain_addresses(value: str) -> list[tuple[str, str]] | None:
    """(display name, addr-spec) pairs of an address header in the plain form; None for anything else."""
    if not value.isascii() or "=?" in value or not value.strip():
        return None
    pairs = []
    position = 0
    while True:
        match = _PLAIN_MAILBOX.match(value, position)
        if match is None:
            return None
        if match.group("bare"):
            pairs.append(("", match.group("bare")))
        else:
            pairs.append((_QUOTED.sub(r"\1", match.group("name")), match.group("angle")))
        position = match.end()
        if position == len(value):
            return pairs
        if value[position] != ",":
            return None
        position += 1
