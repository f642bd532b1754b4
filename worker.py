"""Run an RQ worker for rolsync's import jobs: `python worker.py [--burst]`."""
from __future__ import annotations

import argparse
import logging
import sys

from rq import Worker

from rolsync import create_app, jobs, services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="work through what is queued, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = create_app()
    jobs.use_app(app)
    with app.app_context():
        svc = services.get()
        worker = Worker([svc.queue], connection=svc.redis)
        worker.work(burst=args.burst, with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
