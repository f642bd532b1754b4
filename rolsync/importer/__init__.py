"""The import of one mailbox: new messages become notes and documents, once.

In the order the code runs: `account` (bounded runs of one account, until
caught up; the limits), `folders` (each folder's state, what is new in it,
the UIDVALIDITY breaker), `batch` (one fetch batch parsed, decided and
written in one transaction, the watermark last), `ledger` (the keys that
keep a message from being imported twice).
"""
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
