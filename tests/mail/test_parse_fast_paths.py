"""The parser's shortcuts give exactly what policy.default's header registry gives, on the inputs they take."""
from __future__ import annotations

import random
from email import policy

import pytest

from rolsync.mail.parse.addresses import plain_addresses as _plain_addresses
from rolsync.mail.parse.headers import PLAIN_TEXT as _PLAIN_TEXT

REGISTRY = policy.default.header_factory

PHRASE_PIECES = ["a", "Bob", "O'Brien", "x-y", "j.doe", "CAROL", "1", "!", "#", "~", "_", '"Client, Carol"', '""',
                 '"a  b"', '"q\\"x"', '"tab\there"', "(c)", ".", "..", "@", "<", ">", ",", ";", ":", " ", "  ", "\t",
                 "=?", "?=", "é", "[1.2.3.4]", "a@b", "a@b.c", "<a@b.example>", "-", "'", "`", "{", "}", "\\", '"',
                 "\x01"]
LOCAL_PARTS = ["a", "j.doe", "Carol", "x+tag", "o'b", "a..b", ".a", "a.", "#x", "a_b", "1", "é", "a b", '"q"']
DOMAINS = ["b.example", "Client.EXAMPLE", "x-y.com", "-x.com", "x-.com", "a.b.c.d", "localhost", "b..c", "b.c.", "1.2",
           "[127.0.0.1]"]


def _address_header(rng: random.Random) -> str:
    items = []
    for _ in range(rng.randint(1, 3)):
        address = f"{rng.choice(LOCAL_PARTS)}@{rng.choice(DOMAINS)}"
        form = rng.random()
        if form < 0.3:
            items.append(address)
        elif form < 0.8:
            name = " ".join(rng.choice(PHRASE_PIECES) for _ in range(rng.randint(1, 3)))
            items.append(f"{name}{rng.choice(['', ' ', '  ', chr(9)])}<{address}>")
        else:
            items.append("".join(rng.choice(PHRASE_PIECES) for _ in range(rng.randint(1, 6))))
    separator = rng.choice([",", ", ", " ,", ";", ",,"])
    return rng.choice(["", " ", "\t"]) + separator.join(items) + rng.choice(["", " ", "\t"])


def _by_registry(value: str) -> tuple[list[tuple[str, str]], list]:
    header = REGISTRY("to", value)
    return [(a.display_name, a.addr_spec) for a in header.addresses], list(header.defects)


def _same_names(pairs):
    # parse_message keeps display names with their whitespace collapsed.
    return [(" ".join(name.split()), address) for name, address in pairs]


@pytest.mark.parametrize("value", [
    "carol@client.example",
    "Carol Client <carol@client.example>",
    '"Client, Carol" <CAROL@Client.EXAMPLE>, ann@x.example',
    "O'Brien <o.brien@x-y.example>",
    '""\t<a@b.example> ',
    'Ann "the boss" Smith  <ann+jobs@agency.example>',
])
def test_plain_address_headers_read_as_the_registry_reads_them(value):
    expected, defects = _by_registry(value)
    assert defects == []
    assert _same_names(_plain_addresses(value)) == _same_names(expected)


@pytest.mark.parametrize("value", [
    "", "  ", "=?utf-8?q?J=C3=BCrgen?= <j@x.de>", "a@x; b@y", "Group: a@x.example;", "carol@client.example (Carol)",
    "j.doe@localhost", "A.B <a.b@x.example>", "x <a@[127.0.0.1]>", '"q\\"x" <q@x.example>', "Jos\u00e9 <jose@x.example>",
])
def test_anything_else_is_left_to_the_registry(value):
    assert _plain_addresses(value) is None


def test_the_address_shortcut_agrees_with_the_registry_on_random_headers():
    rng = random.Random(20261127)
    taken = 0
    for _ in range(6000):
        value = _address_header(rng)
        pairs = _plain_addresses(value)
        if pairs is None:
            continue
        taken += 1
        expected, defects = _by_registry(value)
        assert defects == [], value
        assert _same_names(pairs) == _same_names(expected), value
    assert taken > 200, "the generator should produce plenty of plain headers"


def test_plain_text_comes_back_from_the_registry_unchanged():
    rng = random.Random(7)
    characters = list("abc XYZ()<>\"'=?!\t,.;:@[]\\{}~-_") + ["  ", "=?utf-8?q?x?=", "\u00e9", "\x01"]
    taken = 0
    for _ in range(6000):
        value = "".join(rng.choice(characters) for _ in range(rng.randint(0, 20)))
        if "=?" in value or not _PLAIN_TEXT.fullmatch(value):
            continue
        taken += 1
        header = REGISTRY("subject", value)
        assert (str(header), list(header.defects)) == (value, []), value
    assert taken > 1000
