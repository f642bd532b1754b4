"""`make run` in a terminal: the setup address on the console, and Ctrl-C that ends it all cleanly."""
from __future__ import annotations

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Terminal:
    """A command on a pseudo-terminal of its own, as a person would start it."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path):
        self.master, slave = pty.openpty()
        # A session and controlling terminal of its own: Ctrl-C typed on it signals its foreground group.
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                        start_new_session=True, preexec_fn=lambda: _take_terminal(slave))
        os.close(slave)
        self.output = b""

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.output += chunk

    def wait_for(self, pattern: str, seconds: float) -> re.Match:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text)
            if match:
                return match
            if self.process.poll() is not None:
                self.read(0.5)
                break
            self.read(0.5)
        match = re.search(pattern, self.text)
        assert match, f"{pattern!r} never appeared:\n{self.text}"
        return match

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")


def _take_terminal(fd: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


@pytest.fixture
def make_env(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ROLSYNC_", "DATABASE_URL"))}
    env.update({
        "ROLSYNC_INSTANCE_PATH": str(tmp_path / "instance"),
        "REDIS_URL": TEST_REDIS_URL,
        "ROLSYNC_QUEUE": f"rolsync-make-run-{os.getpid()}-{time.monotonic_ns()}",
        "TERM": "dumb",
    })
    return env


@pytest.mark.skipif(not Path(sys.prefix, "bin", "flask").exists(), reason="needs the project's virtualenv")
def test_ctrl_c_stops_make_run_cleanly_and_it_printed_the_setup_address(make_env):
    port = _free_port()
    # -o: the test uses the installed virtualenv as it is; it never installs packages.
    terminal = Terminal(["make", "--no-print-directory", "-o", f"{sys.prefix}/.installed", "run",
                         f"VENV={sys.prefix}", f"PORT={port}"],
                        make_env, ROOT)
    try:
        match = terminal.wait_for(rf"http://127\.0\.0\.1:{port}/setup\?token=[A-Za-z0-9_-]+", 120)
        setup_url = match.group(0)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, terminal.text
                terminal.read(0.5)
        # The printed address opens the setup page.
        with urllib.request.urlopen(setup_url, timeout=5) as response:
            assert "Set up rolsync" in response.read().decode()
        terminal.wait_for(r"Listening on|Worker .* started|\*\*\* Listening", 30)
        terminal.read(1.0)
        family = _descendants(terminal.process.pid)
        assert len(family) >= 3, f"make, the runner, the web server and the worker: {family}"

        started = time.monotonic()
        terminal.ctrl_c()
        status = None
        while time.monotonic() - started < 20:
            terminal.read(0.3)
            status = terminal.process.poll()
            if status is not None:
                break
        terminal.read(0.5)
        assert status is not None, f"make run still running 20 s after Ctrl-C:\n{terminal.text}"
        assert time.monotonic() - started < 15
        assert status in (0, 130, -signal.SIGINT), terminal.text
        assert "Traceback" not in terminal.text, terminal.text
        assert "Segmentation fault" not in terminal.text and "Error" not in terminal.text.split("stopping", 1)[-1]
        time.sleep(0.5)
        left = [pid for pid in family if _alive(pid)]
        assert not left, f"processes left after Ctrl-C: {left}\n{terminal.text}"
    finally:
        if terminal.process.poll() is None:
            os.killpg(terminal.process.pid, signal.SIGKILL)
            terminal.process.wait()
        for pid in _descendants(terminal.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.close(terminal.master)
