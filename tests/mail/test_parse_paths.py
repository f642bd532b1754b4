"""The fast and the careful parse path give the same result, and the corpus of real-world odd mail parses as recorded.

Corpus: tests/mail/corpus/ (one `.eml` and one `.json` of what it must parse
to, each source with its licence), plus the messages the benchmark and the
demo generate. Compared: From, Reply-To, To, Cc, subject, date, body text
(whitespace normalised) and documents (file name, content type, size,
SHA-256), or an exception listed in KNOWN_DIFFERENCES with its reason.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.corpus import crm_people, recruitment_corpus
from rolsync.demo.corpus import build_mailbox
from rolsync.mail.parse import MessageUnreadable, parse_message
from tests.mail.corpus.collect import expected

CORPUS = Path(__file__).resolve().parent / "corpus"
MESSAGES = sorted(CORPUS.glob("*/*.eml"))

KNOWN_DIFFERENCES: dict[str, str] = {
    # "<folder>/<file>.eml": "why the two paths may differ on it",
}


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _facts(raw: bytes, *, careful: bool) -> dict:
    try:
        parsed = parse_message(raw, careful=careful)
    except MessageUnreadable as exc:
        return {"unreadable": exc.reason}
    return {
        "from": parsed.from_addr, "reply_to": parsed.reply_to, "to": parsed.to, "cc": parsed.cc,
        "subject": parsed.subject, "date": parsed.date.isoformat() if parsed.date else None,
        "text": " ".join(parsed.text.split()),
        "documents": [{"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256}
                      for a in parsed.attachments],
    }


@pytest.mark.parametrize("path", MESSAGES, ids=_id)
def test_each_corpus_message_parses_as_recorded(path):
    recorded = json.loads(path.with_suffix(".json").read_text())
    assert expected(path.read_bytes()) == recorded


@pytest.mark.parametrize("path", MESSAGES, ids=_id)
def test_both_paths_agree_on_the_corpus(path):
    if _id(path) in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[_id(path)])
    raw = path.read_bytes()
    assert _facts(raw, careful=False) == _facts(raw, careful=True)


def test_both_paths_agree_on_the_benchmark_and_demo_mail():
    bench = recruitment_corpus(300, "jo@agency.example", crm_people(200))
    demo = build_mailbox(datetime(2026, 6, 1, tzinfo=timezone.utc), inbox=150, sent=50)
    raws = bench.inbox + bench.sent + [message.raw for message in demo]
    fast = 0
    for raw in raws:
        assert _facts(raw, careful=False) == _facts(raw, careful=True)
        fast += parse_message(raw).path == "fast"
    # The generated mail is the common kind: nearly all of it must take the fast path.
    assert fast >= 0.9 * len(raws)


def test_the_corpus_is_modest():
    assert sum(path.stat().st_size for path in CORPUS.rglob("*")) < 4 * 1024 * 1024
    for path in MESSAGES:
        assert path.with_suffix(".json").exists()
        assert (path.parent / "SOURCE.md").exists() and (path.parent / "LICENSE").exists()
