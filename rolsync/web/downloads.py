"""Sending a stored file as a download, from disk or streamed from the bucket, never read whole into memory."""
from __future__ import annotations

from flask import Response, send_file

from rolsync.documents import DocumentStore, FileDocumentStore


def send_stored(store: DocumentStore, sha256: str, *, mimetype: str, download_name: str,
                etag: str | bool = True) -> Response:
    """The stored file `sha256` as an attachment (Content-Disposition: attachment), uncached."""
    if isinstance(store, FileDocumentStore):
        # A path lets werkzeug answer conditional and range requests from the file itself.
        return send_file(store.path_for(sha256), mimetype=mimetype, as_attachment=True,
                         download_name=download_name, max_age=0, etag=etag)
    stream, size = store.open(sha256)
    # werkzeug reads the stream a block at a time as the client takes it, and closes it at the end.
    response = send_file(stream, mimetype=mimetype, as_attachment=True, download_name=download_name,
                         max_age=0, etag=etag if isinstance(etag, str) else False)
    response.content_length = size
    return response
