"""The document store: attachment bytes kept once each, named by their SHA-256."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class DocumentStore:
    """Content-addressed files under one folder: `ab/cd/abcd…`.

    A file is written to a temporary name and renamed into place, so a reader
    never sees half a file and two writers of the same bytes do not clash.
    Files are written before the database commit that refers to them; a crash
    in between leaves only an unreferenced file, never a dangling reference.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()
