"""The parse package's outside: the names other modules import, and comparing addresses without loading the parsers."""
from __future__ import annotations

import subprocess
import sys

import rolsync.mail.parse as parse


def test_the_names_other_modules_import_are_still_there():
    for name in parse.__all__:
        assert getattr(parse, name) is not None
    from rolsync.mail.parse import (  # noqa: F401
        Attachment,
        MessageUnreadable,
        ParsedMessage,
        normalise_address,
        parse_message,
        snippet,
    )


def test_modules_that_only_compare_addresses_do_not_load_the_parsers():
    code = ("import sys; import rolsync.matching, rolsync.crm, rolsync.records, rolsync.accounts; "
            "print(sorted(m for m in sys.modules if m.startswith('rolsync.mail.parse')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "careful" not in loaded and "fast" not in loaded and "'rolsync.mail.parse.addresses'" in loaded
