"""The document store, on disk and in an S3 bucket (moto's S3 API server): the same tests for both."""
from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from rolsync.mail.parse import attachments
from rolsync import services
from rolsync.documents import DocumentStore, DocumentStoreUnavailable, FileDocumentStore, S3DocumentStore
from rolsync.extensions import db
from rolsync.models import Document
from tests.conftest import make_consultant
from tests.mail.builders import build_message, minimal_pdf

CAROL = "carol@client.example"
BIG = 40 * 1024 * 1024
"""A file bigger than what the store may hold in memory while moving it (S3: two 8 MB parts)."""


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path, monkeypatch) -> DocumentStore:
    if request.param == "filesystem":
        return FileDocumentStore(tmp_path / "documents")
    bucket = request.getfixturevalue("s3_bucket")
    return S3DocumentStore(bucket.name, prefix=bucket.prefix, endpoint_url=bucket.endpoint_url,
                           spool_dir=tmp_path / "spool")


def spooled(store: DocumentStore, data: bytes, name: str = "attachment") -> tuple[Path, str]:
    """A file the parser would have spooled: in the store's spool folder, hashed."""
    store.spool_dir.mkdir(parents=True, exist_ok=True)
    path = store.spool_dir / f".tmp-{name}"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_bytes_are_stored_once_under_their_sha256(store):
    data = minimal_pdf("Once")
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put(data) == digest
    assert store.exists(digest) and store.read(digest) == data
    assert not store.exists(hashlib.sha256(b"never stored").hexdigest())


def test_a_deleted_file_is_gone_and_deleting_again_is_harmless(store):
    """An erasure removes the files no note refers to any more, on disk and in the bucket alike."""
    digest = store.put(b"a CV to be erased")
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(FileNotFoundError):
        store.read(digest)
    store.delete(digest)


def test_reading_what_was_never_stored_says_so(store):
    with pytest.raises(FileNotFoundError):
        store.read(hashlib.sha256(b"never stored").hexdigest())


def test_a_spooled_file_is_stored_and_leaves_the_spool_folder(store):
    path, digest = spooled(store, b"spooled attachment " * 1000)
    assert store.put_file(path, digest) == digest
    assert not path.exists()
    assert store.read(digest) == b"spooled attachment " * 1000
    again, _ = spooled(store, b"spooled attachment " * 1000, "again")
    store.put_file(again, digest)
    assert not again.exists(), "a copy of stored bytes is dropped, not kept"


def test_many_files_are_durable_when_the_wait_returns(store):
    files: dict[str, bytes | Path] = {}
    for i in range(12):
        data = minimal_pdf(f"CV {i}")
        files[hashlib.sha256(data).hexdigest()] = data
    path, digest = spooled(store, b"big one " * 5000)
    files[digest] = path
    wait = store.start_put_many(files)
    wait()
    assert all(store.exists(d) for d in files)
    assert store.read(digest) == b"big one " * 5000 and not path.exists()

    again, _ = spooled(store, b"big one " * 5000, "again")
    store.start_put_many({digest: again})()
    assert not again.exists(), "a spooled copy of a stored file is removed"


def test_a_write_that_fails_raises_from_the_wait_so_nothing_is_committed(store, tmp_path):
    if isinstance(store, FileDocumentStore):
        store.root.parent.mkdir(parents=True, exist_ok=True)
        store.root.write_text("a file where the folder should be")
    else:
        store.bucket = "rolsync-no-such-bucket"
    data = minimal_pdf("Lost")
    wait = store.start_put_many({hashlib.sha256(data).hexdigest(): data})
    with pytest.raises(Exception):  # noqa: B017 - an OSError on disk, a ClientError from S3
        wait()


def test_a_big_file_goes_in_and_comes_out_without_being_held_in_memory(store):
    path = store.spool_dir / ".tmp-big"
    store.spool_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for i in range(BIG // (1024 * 1024)):
            chunk = bytes([i % 251]) * (1024 * 1024)
            digest.update(chunk)
            fh.write(chunk)
    sha = digest.hexdigest()

    tracemalloc.start()
    try:
        store.put_file(path, sha)
        stream, size = store.open(sha)
        check = hashlib.sha256()
        try:
            while chunk := stream.read(64 * 1024):
                check.update(chunk)
        finally:
            stream.close()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == BIG and check.hexdigest() == sha
    assert peak < BIG // 2, f"moving a {BIG >> 20} MB file took {peak >> 20} MB of memory"


def test_the_readiness_check_notices_a_store_it_cannot_use(store):
    store.check()
    if isinstance(store, FileDocumentStore):
        store.root.rmdir() if store.root.exists() else None
        store.root.parent.mkdir(parents=True, exist_ok=True)
        store.root.write_text("not a folder")
    else:
        store.bucket = "rolsync-no-such-bucket"
    with pytest.raises(DocumentStoreUnavailable):
        store.check()


# -- the import end to end, documents in the bucket --------------------------------------------


def test_an_import_on_s3_stores_attachments_in_the_bucket_and_serves_them(s3_bucket, app, dovecot, tmp_path,
                                                                         monkeypatch, crm):
    from tests.web.conftest import add_user, sign_in

    monkeypatch.setattr(attachments, "SPOOL_MIN_BYTES", 64 * 1024)  # the big CV goes through the spool folder
    consultant = make_consultant(app, dovecot, tmp_path)
    small, big = minimal_pdf("Small CV"), minimal_pdf("Big CV") + os.urandom(3 * 1024 * 1024)
    consultant.deliver("INBOX", build_message(from_=CAROL, to=consultant.email, subject="Two CVs", text="x",
                                              attachments=[("small.pdf", "application/pdf", small),
                                                           ("big.pdf", "application/pdf", big)]))
    assert consultant.import_now()["imported"] == 1

    [note] = consultant.notes()
    assert {(d["filename"], d["sha256"]) for d in note["documents"]} == {
        ("small.pdf", hashlib.sha256(small).hexdigest()), ("big.pdf", hashlib.sha256(big).hexdigest())}
    store = services.get().documents
    assert isinstance(store, S3DocumentStore)
    keys = s3_bucket.keys()
    for data in (small, big):
        sha = hashlib.sha256(data).hexdigest()
        assert f"{s3_bucket.prefix}{sha[:2]}/{sha[2:4]}/{sha}" in keys
    assert not [p for p in store.spool_dir.rglob("*") if p.is_file()], "no spool file is left behind"
    assert not Path(app.config["DOCUMENT_ROOT"]).exists(), "nothing went to the local document folder"

    admin = add_user(app, admin=True)
    client = app.test_client()
    sign_in(client, admin.email)
    document = db.session.query(Document).filter_by(filename="big.pdf").one()
    response = client.get(f"/documents/{document.id}")
    assert response.status_code == 200 and response.is_streamed
    assert response.content_length == len(big)
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.get_data() == big
