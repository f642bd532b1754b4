"""Tests of rolsync.mail.

The mail builders moved to `devkit.builders`; `tests.mail.builders` stays an
alias of it for tests written against the old place (the parser's), until
they import devkit directly.
"""
import sys

from devkit import builders

sys.modules[f"{__name__}.builders"] = builders
