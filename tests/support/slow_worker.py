"""`python worker.py`, with one test-only slowness: deciding on a message whose subject holds
`SLOW-<seconds>` takes that long, as a hostile message would. Run as `python -m tests.support.slow_worker`."""
from __future__ import annotations

import re
import sys
import time

import worker
from rolsync import importer

_decide = importer.decide


def slow_decide(session, rules, parsed, *args, **kwargs):
    match = re.search(r"SLOW-(\d+)", parsed.subject or "")
    if match:
        time.sleep(int(match.group(1)))  # interrupted by RQ's job timeout, as real work would be
    return _decide(session, rules, parsed, *args, **kwargs)


importer.decide = slow_decide

if __name__ == "__main__":
    sys.exit(worker.main())
