"""The import of one mailbox: new messages become notes and documents, once.

In the order the code runs: `account` (bounded runs of one account, until
caught up; the limits), `folders` (each folder's state, what is new in it,
the UIDVALIDITY breaker), `batch` (one fetch batch parsed, decided and
written in one transaction, the watermark last), `ledger` (the keys that
keep a message from being imported twice).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use, so that modules needing only the ledger's keys (rolsync.notes) do not load
# the parsers and the IMAP run with them.
_WHERE = {
    "AccountImporter": "account", "ImportLimits": "account", "ImportResult": "account",
    "import_account": "account", "import_until_caught_up": "account",
    "FolderCounts": "batch", "MessageOutcome": "batch", "is_transient": "batch",
    "UidValidityUnstable": "folders",
    "dedupe_key": "ledger", "message_key": "ledger",
}

if TYPE_CHECKING:
    from rolsync.importer.account import (
        AccountImporter,
        ImportLimits,
        ImportResult,
        import_account,
        import_until_caught_up,
    )
    from rolsync.importer.batch import FolderCounts, MessageOutcome, is_transient
    from rolsync.importer.folders import UidValidityUnstable
    from rolsync.importer.ledger import dedupe_key, message_key


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"rolsync.importer.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccountImporter",
    "FolderCounts",
    "ImportLimits",
    "ImportResult",
    "MessageOutcome",
    "UidValidityUnstable",
    "dedupe_key",
    "import_account",
    "import_until_caught_up",
    "is_transient",
    "message_key",
]
