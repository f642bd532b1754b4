"""The import of one mailbox: new messages become notes and documents, once."""
from rolsync.importer.batch import (
    AccountImporter,
    FolderCounts,
    ImportResult,
    MessageOutcome,
    UidValidityUnstable,
    dedupe_key,
    import_account,
    is_transient,
    message_key,
)

__all__ = [
    "AccountImporter",
    "FolderCounts",
    "ImportResult",
    "MessageOutcome",
    "UidValidityUnstable",
    "dedupe_key",
    "import_account",
    "is_transient",
    "message_key",
]
