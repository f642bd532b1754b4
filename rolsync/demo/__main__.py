"""The demo from the command line (`make demo` runs this).

    python -m rolsync.demo [--host 127.0.0.1] [--port 5000] [--seed 8]

Starts a local Dovecot with a sample recruitment mailbox, loads a sample CRM,
creates an admin and a consultant (their passwords are printed once), starts
the web panel and an import worker, waits for the first import and prints the
address to open. Ctrl-C stops everything and removes what the demo made.
Needs root (for Dovecot) and a running Redis (`REDIS_URL`).
"""
from __future__ import annotations

import argparse
import os
import sys

from rolsync.demo.run import Demo, Options


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m rolsync.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=defaults.host, help="address the web panel listens on")
    parser.add_argument("--port", type=int, default=defaults.port, help="port of the web panel")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the generated mailbox")
    args = parser.parse_args(argv)
    options = Options(host=args.host, port=args.port, seed=args.seed,
                      redis_url=os.environ.get("REDIS_URL") or defaults.redis_url)
    return Demo(options).run()


if __name__ == "__main__":
    sys.exit(main())
