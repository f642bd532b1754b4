"""Benchmark 3: what matching addresses to records costs with a CRM of 10k records and of 1M.

    python bench/match_bench.py [--databases sqlite,postgresql]

runs it through `bench/run.py`. Matching is `rolsync.matching.find_records`,
called as the import calls it: once per batch of addresses (half of them
belong to a record, half to nobody). The two CRMs are two databases, timed
in turn, so a busy machine slows both alike.
"""
from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import create_database, drop_database, load_people, make_app  # noqa: E402

LOOKUPS = 2000
BATCH = 50
REPEATS = 7


def _time_lookups(app, addresses: list[str]) -> float:
    from rolsync.extensions import db
    from rolsync.matching import find_records

    with app.app_context():
        start = time.perf_counter()
        for first in range(0, len(addresses), BATCH):
            find_records(db.session, addresses[first:first + BATCH])
        elapsed = time.perf_counter() - start
        db.session.remove()
    return elapsed


def measure_matching(setup: dict, database: str, work: Path) -> dict:
    from corpus import crm_people

    from rolsync.extensions import db

    small, large = setup["match_small"], setup["match_large"]
    people = crm_people(large)
    rng = random.Random(3)
    known = [p.email for p in rng.sample(people[:small], LOOKUPS // 2)]
    unknown = [f"nobody{i}@unknown{i % 31}.example" for i in range(LOOKUPS - len(known))]
    addresses = known + unknown
    rng.shuffle(addresses)
    urls = [create_database(database, work) for _ in range(2)]
    try:
        apps = {}
        for name, url, count in (("small", urls[0], small), ("large", urls[1], large)):
            apps[name] = make_app(url, work)
            with apps[name].app_context():
                load_people(db.session, people[:count])
                db.session.remove()
        timings: dict[str, list[float]] = {"small": [], "large": []}
        for round_ in range(REPEATS + 1):  # the first round warms the caches
            for name, app in apps.items():
                elapsed = _time_lookups(app, addresses)
                if round_:
                    timings[name].append(elapsed)
        for app in apps.values():
            with app.app_context():
                db.engine.dispose()
        return {"small_s": statistics.median(timings["small"]), "large_s": statistics.median(timings["large"]),
                "lookups": LOOKUPS, "batch": BATCH}
    finally:
        for url in urls:
            drop_database(url)


if __name__ == "__main__":
    import run

    sys.exit(run.main(["--only", "matching", *sys.argv[1:]]))
