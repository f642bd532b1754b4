"""The document store: attachment bytes kept once each, named by their SHA-256."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PARALLEL_WRITES = 8
"""Files written (and fsynced) at once by `start_put_many`."""


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

    def put_file(self, path: str | os.PathLike, sha256: str) -> str:
        """Move a finished file into place as `sha256`, durably; it must be on the store's file system.

        A parser spooling a big attachment writes it under the store's root
        and hashes it as it goes, so storing it costs a rename, not a copy.
        """
        target = self.path_for(sha256)
        if target.exists():
            Path(path).unlink(missing_ok=True)
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(path, target)
        return sha256

    def start_put_many(self, files: Mapping[str, bytes | Path]) -> Callable[[], None]:
        """Start storing several files; the function returned waits until all are durable (and raises).

        The writes and their fsyncs run side by side in threads: the disk
        absorbs several at once far faster than one after the other, and the
        caller can write its database rows meanwhile (they must not be
        committed before the wait).
        """
        missing = []
        for digest, data in files.items():
            if not self.path_for(digest).exists():
                missing.append((digest, data))
            elif isinstance(data, Path):
                data.unlink(missing_ok=True)  # stored already: the spooled copy is not needed

        def store(digest: str, data: bytes | Path) -> None:
            if isinstance(data, Path):
                self.put_file(data, digest)
            else:
                self.put(data, digest)

        futures = [_writers().submit(store, digest, data) for digest, data in missing]

        def wait() -> None:
            for future in futures:
                future.result()

        return wait

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def delete(self, sha256: str) -> None:
        """Remove a file (an erasure's, once no row names it); nothing happens when it is not there."""
        self.path_for(sha256).unlink(missing_ok=True)


_WRITERS: tuple[int, ThreadPoolExecutor] | None = None


def _writers() -> ThreadPoolExecutor:
    """This process's file-writing threads (kept: an import stores a batch of files at a time)."""
    global _WRITERS
    if _WRITERS is None or _WRITERS[0] != os.getpid():  # threads do not survive a fork
        _WRITERS = (os.getpid(), ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="document-store"))
    return _WRITERS[1]
