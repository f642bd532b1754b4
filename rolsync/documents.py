"""The document store: attachment bytes kept once each, named by their SHA-256, on disk or in an S3 bucket."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

PARALLEL_WRITES = 8
"""Files written (and fsynced, or uploaded) at once by `start_put_many`."""


class DocumentStoreUnavailable(RuntimeError):
    """The document store cannot be reached or written; the message says which store and why."""

    code = "document_store_unavailable"


class DocumentStore:
    """Content-addressed storage: the same bytes are stored once, under their SHA-256.

    Files are written before the database commit that refers to them (the
    caller waits for `start_put_many`'s function before committing); a crash
    in between leaves only an unreferenced file, never a dangling reference.
    The two kinds below keep that promise their own way.
    """

    spool_dir: Path
    """A local folder where a parser may spool big attachments and hand them to `put_file`."""

    def put(self, data: bytes, sha256: str | None = None) -> str:
        raise NotImplementedError

    def put_file(self, path: str | os.PathLike, sha256: str) -> str:
        """Store the finished file at `path` (in `spool_dir`) as `sha256`, durably; the file is gone afterwards."""
        raise NotImplementedError

    def exists(self, sha256: str) -> bool:
        raise NotImplementedError

    def delete(self, sha256: str) -> None:
        """Remove a file (an erasure's, once no row names it); nothing happens when it is not there."""
        raise NotImplementedError

    def read(self, sha256: str) -> bytes:
        """The whole file (for raw messages the importer parses again); FileNotFoundError if it is not stored."""
        raise NotImplementedError

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        """A stream of the stored file and its size, to send without holding it in memory."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise DocumentStoreUnavailable unless the store answers (for the readiness check)."""
        raise NotImplementedError

    def start_put_many(self, files: Mapping[str, bytes | Path]) -> Callable[[], None]:
        """Start storing several files; the function returned waits until all are durable (and raises).

        The writes run side by side in threads: a disk absorbs several fsyncs,
        and an S3 endpoint several uploads, far faster than one after the
        other, and the caller can write its database rows meanwhile (they must
        not be committed before the wait).
        """
        def store(digest: str, data: bytes | Path) -> None:
            # Each put checks first whether the bytes are stored already (and drops a spooled copy
            # if so): in the threads too, as a round trip to a bucket costs as much as the upload.
            if isinstance(data, Path):
                self.put_file(data, digest)
            else:
                self.put(data, digest)

        futures = [_writers().submit(store, digest, data) for digest, data in files.items()]

        def wait() -> None:
            for future in futures:
                future.result()

        return wait


class FileDocumentStore(DocumentStore):
    """Content-addressed files under one folder: `ab/cd/abcd…`.

    A file is written to a temporary name, fsynced and renamed into place, so
    a reader never sees half a file and two writers of the same bytes do not
    clash.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        # Spooled files are renamed into place, so they must be on the same file system.
        self.spool_dir = self.root

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
        """A parser spooling a big attachment writes it under the root and hashes it as it goes,
        so storing it costs a rename, not a copy."""
        target = self.path_for(sha256)
        if target.exists():
            Path(path).unlink(missing_ok=True)
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(path, target)
        return sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        fh = open(self.path_for(sha256), "rb")
        return fh, os.fstat(fh.fileno()).st_size

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root, prefix=".tmp-check-"):
                pass
        except OSError as exc:
            raise DocumentStoreUnavailable(f"the document folder {self.root} cannot be written: {exc}") from exc


class S3DocumentStore(DocumentStore):
    """Content-addressed objects in an S3-compatible bucket: `<prefix>ab/cd/abcd…`, for several machines.

    An object appears whole or not at all when its PUT (or its multipart
    upload's completion) returns, and S3 reads after writes are consistent,
    so a file is durable once `put`/`put_file` returns. Big files go up from
    the spool folder in parts and come down as a stream; neither is ever held
    in memory whole. Credentials come from the standard AWS variables
    (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`) or
    the machine's role, as boto3 finds them.
    """

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 spool_dir: str | os.PathLike):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self.spool_dir = Path(spool_dir)
        self._client: tuple[int, Any] | None = None

    @property
    def client(self) -> Any:
        """This process's S3 client (boto3 clients are thread-safe, but do not survive a fork)."""
        if self._client is None or self._client[0] != os.getpid():
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url,
                config=Config(max_pool_connections=PARALLEL_WRITES + 2, retries={"mode": "standard"},
                              connect_timeout=10, read_timeout=60))
            self._client = (os.getpid(), client)
        return self._client[1]

    def key_for(self, sha256: str) -> str:
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def put(self, data: bytes, sha256: str | None = None) -> str:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self.client.put_object(Bucket=self.bucket, Key=self.key_for(digest), Body=data)
        return digest

    def put_file(self, path: str | os.PathLike, sha256: str) -> str:
        from boto3.s3.transfer import TransferConfig

        try:
            if not self.exists(sha256):
                # Multipart above 8 MB, read from disk a part at a time: at most two parts in memory.
                self.client.upload_file(str(path), self.bucket, self.key_for(sha256),
                                        Config=TransferConfig(multipart_chunksize=8 * 1024 * 1024,
                                                              max_concurrency=2))
        finally:
            Path(path).unlink(missing_ok=True)
        return sha256

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, sha256: str) -> None:
        # S3's DeleteObject succeeds for a key that is not there.
        self.client.delete_object(Bucket=self.bucket, Key=self.key_for(sha256))

    def _get(self, sha256: str) -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no stored document {sha256}") from exc
            raise

    def read(self, sha256: str) -> bytes:
        body = self._get(sha256)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        response = self._get(sha256)
        return response["Body"], int(response["ContentLength"])

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise DocumentStoreUnavailable(f"the bucket {self.bucket} cannot be reached: {exc}") from exc
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DocumentStoreUnavailable(f"the spool folder {self.spool_dir} cannot be made: {exc}") from exc


def store_from_config(config: Mapping[str, Any]) -> DocumentStore:
    """The document store the settings name: a folder (the default) or an S3 bucket."""
    if config.get("DOCUMENT_STORE") == "s3":
        return S3DocumentStore(config["S3_BUCKET"], prefix=config.get("S3_PREFIX") or "",
                               endpoint_url=config.get("S3_ENDPOINT_URL"), spool_dir=config["SPOOL_DIR"])
    return FileDocumentStore(config["DOCUMENT_ROOT"])


_WRITERS: tuple[int, ThreadPoolExecutor] | None = None


def _writers() -> ThreadPoolExecutor:
    """This process's writing threads (kept: an import stores a batch of files at a time)."""
    global _WRITERS
    if _WRITERS is None or _WRITERS[0] != os.getpid():  # threads do not survive a fork
        _WRITERS = (os.getpid(), ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="document-store"))
    return _WRITERS[1]
