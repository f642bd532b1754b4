"""Run rolsync's processes side by side for `make run`, and stop them all cleanly on Ctrl-C.

    python scripts/run.py [--setup-url URL] -- "COMMAND 1" "COMMAND 2" ...

Each COMMAND (a shell-quoted string) starts in a process group of its own, so
the terminal's Ctrl-C reaches only this supervisor: it then sends SIGTERM to
every group (the process and whatever it started), waits up to
`--grace` seconds, kills what is left, and exits 0. When one process ends by
itself, the others are stopped the same way and the exit status is its own.
Adding a process to `make run` is adding one more COMMAND.

With --setup-url, `flask users setup-url --url URL` runs first: while no
admin exists it prints the one-time setup address on this console.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.2


def start(command: str) -> subprocess.Popen:
    # A new session: the terminal's SIGINT goes to the foreground group only, and
    # the child's own children (RQ's scheduler) share its group for killpg.
    return subprocess.Popen(shlex.split(command), start_new_session=True)


def signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all(processes: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM every group, wait for them to go, SIGKILL whatever is left after `grace` seconds."""
    for process in processes:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for process in processes:
            process.poll()
        if not any(group_alive(p.pid) for p in processes):
            return
        time.sleep(POLL_SECONDS)
    for process in processes:
        signal_group(process, signal.SIGKILL)
    for process in processes:
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup-url", metavar="URL", help="print the first run's setup address for URL")
    parser.add_argument("--grace", type=float, default=8.0, help="seconds a process has to stop (default 8)")
    parser.add_argument("commands", nargs="+", metavar="COMMAND")
    args = parser.parse_args(argv)

    interrupted = False

    def on_signal(signum, frame):
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if args.setup_url:
        flask = os.path.join(os.path.dirname(sys.executable), "flask")
        # Its own session too: a Ctrl-C while it runs stops the start, not it with a traceback.
        subprocess.run([flask, "users", "setup-url", "--url", args.setup_url], check=False, start_new_session=True)

    processes: list[subprocess.Popen] = []
    status = 0
    try:
        for command in args.commands:
            if interrupted:
                break
            processes.append(start(command))
        while not interrupted:
            ended = [p for p in processes if p.poll() is not None]
            if ended:
                status = ended[0].returncode or 0
                command = args.commands[processes.index(ended[0])]
                print(f"rolsync: `{command}` ended (status {status}); stopping the others", file=sys.stderr)
                break
            time.sleep(POLL_SECONDS)
        if interrupted:
            print("\nrolsync: stopping…", file=sys.stderr, flush=True)
    finally:
        stop_all(processes, args.grace)
    if interrupted:
        print("rolsync: stopped.", file=sys.stderr)
        return 0
    return status if status >= 0 else 1  # a negative status is a signal's number


if __name__ == "__main__":
    sys.exit(main())
