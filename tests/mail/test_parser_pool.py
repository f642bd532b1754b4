"""The parser pool parses exactly as parse_message does, and a dead worker is reported, not hidden."""
from __future__ import annotations

import pytest

from rolsync.mail.parse import MessageUnreadable, ParserPool, ParserPoolBroken, parse_message
from tests.mail.builders import build_message, minimal_pdf


def test_the_pool_gives_what_parse_message_gives():
    raws = [build_message(subject=f"Message {i}", attachments=[("cv.pdf", "application/pdf", minimal_pdf())])
            for i in range(5)] + [b"\r\n\r\n"]
    pool = ParserPool(2)
    try:
        results = pool.submit(raws, None)()
    finally:
        pool.close()
    assert results[:5] == [parse_message(raw) for raw in raws[:5]]
    assert isinstance(results[5], MessageUnreadable) and results[5].reason == "the message is empty"


def test_a_dead_worker_breaks_the_pool():
    pool = ParserPool(1)
    try:
        pool._workers[0].process.kill()
        pool._workers[0].process.wait()
        with pytest.raises(ParserPoolBroken):
            pool.submit([build_message()], None)()
    finally:
        pool.close()
