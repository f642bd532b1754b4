"""Item 5: parse CPU per message on each path, and the share of messages that take the careful path, per corpus.

The corpora: the bench's generated recruitment mailbox, the demo's mailbox,
and tests/mail/corpus/ (real-world odd mail from public test suites).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import corpus as corpus_module
from support import ROOT

CONSULTANT = f"consultant@{corpus_module.CONSULTANT_DOMAIN}"


def _corpora(setup: dict) -> dict[str, list[bytes]]:
    from rolsync.demo.corpus import build_mailbox

    bench = corpus_module.recruitment_corpus(setup.get("messages", 2000), CONSULTANT,
                                             corpus_module.crm_people(setup["records"]))
    demo = build_mailbox(datetime(2026, 6, 1, tzinfo=timezone.utc))
    odd = [path.read_bytes() for path in sorted((ROOT / "tests" / "mail" / "corpus").glob("*/*.eml"))]
    return {"bench": bench.inbox + bench.sent, "demo": [m.raw for m in demo], "odd": odd}


def _cpu_per_message(raws: list[bytes], *, careful: bool) -> tuple[float, int]:
    """(CPU seconds per message, how many took the careful path)."""
    from rolsync.mail.parse import MessageUnreadable, parse_message

    careful_count = 0
    start = time.process_time()
    for raw in raws:
        try:
            careful_count += parse_message(raw, careful=careful).path == "careful"
        except MessageUnreadable:
            careful_count += 1
    return (time.process_time() - start) / len(raws), careful_count


def measure_parse(setup: dict, database: str, work: Path) -> dict:
    result: dict = {}
    for name, raws in _corpora(setup).items():
        fast_s, careful_count = _cpu_per_message(raws, careful=False)
        careful_s, _ = _cpu_per_message(raws, careful=True)
        result[name] = {"messages": len(raws), "fast_ms": fast_s * 1000, "careful_ms": careful_s * 1000,
                        "careful_share": careful_count / len(raws)}
    return result
