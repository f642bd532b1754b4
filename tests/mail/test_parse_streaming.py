"""Long base64 bodies skip the feed parser's line-by-line reading, and big attachments can go to a file.

Both must leave parse_message's result exactly as it was: these tests parse
the same mail with the shortcut forced on everything and with it off.
"""
from __future__ import annotations

import base64
import dataclasses
import os

import pytest

import rolsync.mail.parse.attachments as attachments
import rolsync.mail.parse.careful as careful
from rolsync.mail.parse import parse_message
from tests.mail.builders import build_message, build_tnef, minimal_docx, minimal_pdf, raw_message, tiny_png


def _result(raw: bytes) -> dict:
    parsed = parse_message(raw, careful=True)  # the folding is the careful path's
    found = dataclasses.asdict(parsed)
    found["attachments"] = [(a.filename, a.content_type, a.sniffed_type, a.size, a.sha256, a.inline, a.data)
                            for a in parsed.attachments]
    return found


def _without_folding(raw: bytes, monkeypatch) -> dict:
    with monkeypatch.context() as patch:
        patch.setattr(careful.Folds, "find", classmethod(lambda cls, data: cls(data)))
        return _result(raw)


def _messages() -> list[bytes]:
    blob = os.urandom(20_000)
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    enclosed = build_message(subject="Inner", attachments=[("inner.pdf", "application/pdf", minimal_pdf() + blob)])
    single = raw_message([("From", "a@b.example"), ("Subject", "one part"), ("MIME-Version", "1.0"),
                          ("Content-Type", "application/pdf"), ("Content-Transfer-Encoding", "base64")], encoded)
    return [
        build_message(attachments=[("cv.pdf", "application/pdf", minimal_pdf() + blob),
                                   ("logo.png", "image/png", tiny_png())]),
        build_message(text=None, html="<p>Hi</p>", inline_images=[("logo", "logo.png", "image/png", tiny_png() + blob)]),
        build_message(attachments=[(None, "message/rfc822", enclosed)]),
        build_message(attachments=[("winmail.dat", "application/ms-tnef",
                                    build_tnef([("CV.docx", "application/vnd.openxmlformats-officedocument."
                                                 "wordprocessingml.document", minimal_docx() + blob)]))]),
        single,
        single.replace(b"\r\n", b"\n"),
        single[:-7],  # cut short: damaged base64, recovered the old way
        single.replace(encoded[:76], encoded[:30] + b"==" + encoded[32:76]),  # padding in the middle
        single.replace(encoded[:76], encoded[:30] + b"\r\n\r\n" + encoded[30:76]),  # an empty line inside
    ]


@pytest.mark.parametrize("chunk", [37, 1024 * 1024])
def test_folding_changes_nothing(monkeypatch, chunk):
    monkeypatch.setattr(careful, "FOLD_MIN_BYTES", 1)
    monkeypatch.setattr(careful, "DECODE_CHUNK_BYTES", chunk)
    for raw in _messages():
        assert _result(raw) == _without_folding(raw, monkeypatch)


def test_a_big_attachment_is_decoded_into_a_spool_file(tmp_path, monkeypatch):
    monkeypatch.setattr(attachments, "SPOOL_MIN_BYTES", 1000)
    data = minimal_pdf() + os.urandom(300_000)
    raw = build_message(attachments=[("portfolio.pdf", "application/pdf", data), ("cv.pdf", "application/pdf",
                                                                                  minimal_pdf())])
    parsed = parse_message(raw, spool_dir=tmp_path)
    big, small = parsed.attachments
    assert big.spool is not None and big.spool.parent == tmp_path and big.spool.name.startswith(".tmp-spool-")
    assert (big.data, big.size, big.sniffed_type) == (data, len(data), "application/pdf")
    assert big.sha256 == parse_message(raw).attachments[0].sha256
    assert small.spool is None and small.data == minimal_pdf()
    parsed.discard_spool()
    assert list(tmp_path.iterdir()) == []
