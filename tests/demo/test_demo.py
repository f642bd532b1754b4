"""`python -m rolsync.demo` as a newcomer runs it: start, sign in with the printed password, look around, Ctrl-C."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import expect

from devkit import sample_crm as sample
from devkit.dovecot import free_port
from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
READY = "Press Ctrl-C"


class Output:
    """The demo's stdout, read line by line in a thread so the test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self._stream = process.stdout
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.text}") from None
            if line is None:
                raise AssertionError(f"the demo ended before printing {text!r}:\n{self.text}")
            self.lines.append(line)
        return self.text

    def rest(self) -> str:
        """Everything printed, once the demo has ended."""
        self._thread.join(timeout=30)
        self._stream.close()
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every process below `root`: pid -> (start time, command line)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                stat = _stat(pid)
                if stat is not None:
                    found[pid] = (stat[2], command)
                    todo.append(pid)
    return found


def _survivors(processes: dict[int, tuple[int, str]]) -> list[str]:
    """Those of `processes` still running (the same pid with the same start time, not a zombie)."""
    left = []
    for pid, (started, command) in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[0] not in ("Z", "X"):
            left.append(f"{pid} {command}")
    return left


def test_the_demo_starts_shows_the_product_and_stops_on_ctrl_c(browser):
    port = free_port()
    env = {**os.environ, "REDIS_URL": TEST_REDIS_URL}
    # A session of its own, as a terminal gives the command: Ctrl-C goes to the whole group.
    demo = subprocess.Popen([sys.executable, "-m", "rolsync.demo", "--port", str(port)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output = Output(demo)
    try:
        text = output.wait_for(READY, timeout=45)
        url = re.search(r"ready: (http://\S+)", text).group(1)
        consultant = re.search(r"consultant\s+(\S+@\S+)\s+password: (\S+)", text)
        admin = re.search(r"admin\s+(\S+@\S+)\s+password: (\S+)", text)
        assert consultant.group(1) == sample.CONSULTANT.email and admin.group(1) == sample.ADMIN.email
        assert re.search(r"notes: [1-9]\d* on \d+ records; documents: [1-9]", text), text
        assert re.search(r"warnings to resolve: [1-9]\d* \(\d+ address shared by several records\)", text), text
        assert "flask warnings export" in text and "ROLSYNC_INSTANCE_PATH=" in text and "DATABASE_URL=" in text

        processes = _descendants(demo.pid)
        commands = [command for _started, command in processes.values()]
        for expected in ("dovecot", "worker.py", "worker.py --scheduler-only", "flask run"):
            assert any(expected in command for command in commands), commands

        context = browser.new_context(base_url=url, accept_downloads=True)
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)
            _look_around_as_the_consultant(page, *consultant.groups())
            consultant_pages = _every_page_in_words(page)
            context.clear_cookies()
            _look_at_the_rules_as_the_admin(page, *admin.groups())
            admin_pages = _every_page_in_words(page)
            assert len(consultant_pages) >= 8 and len(admin_pages) > len(consultant_pages)
        finally:
            context.close()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    rest = output.rest()
    assert demo.returncode == 0, rest
    assert "stopped everything it started" in rest
    assert _survivors(processes) == []
    assert consultant.group(2) not in rest.replace(text, "", 1)  # printed once, and only once


def _look_around_as_the_consultant(page, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")

    # A candidate's record: her mail as notes, the CV she sent as a document to download.
    nav.get_by_role("link", name="Records").click()
    page.get_by_label("Search").fill("Kowalski")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Anna Kowalski").click()
    expect(page.get_by_text(f"from {sample.CANDIDATES[0].email}").first).to_be_visible()
    document = page.get_by_role("link", name=re.compile(r"\.(pdf|docx)$"))
    expect(document.first).to_be_visible()
    with page.expect_download() as download:
        document.first.click()
    assert Path(download.value.path()).read_bytes()[:4] in (b"%PDF", b"PK\x03\x04")

    # Quayside's shared hiring address: a duplicate to resolve, naming both contacts.
    expect(nav.get_by_role("link", name="Warnings")).to_contain_text(re.compile(r"[1-9]"))
    nav.get_by_role("link", name="Warnings").click()
    row = page.get_by_role("row").filter(has_text=sample.SHARED_ADDRESS).first
    expect(row).to_contain_text("Priya Nair")
    expect(row).to_contain_text("Tom Becker")
    expect(row.get_by_role("button", name="Attach to this record").first).to_be_visible()

    nav.get_by_role("link", name="Import history").click()
    expect(page.get_by_text("mail between colleagues (own domain)").first).to_be_visible()


def _look_at_the_rules_as_the_admin(page, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import rules").click()
    expect(page.get_by_role("heading", name="Import rules")).to_be_visible()


def _codes() -> set[str]:
    """Every code the product keeps that must reach a person only as words (rolsync.labels)."""
    from rolsync import labels
    from rolsync.mail import errors

    codes = set(labels.REASON_LABELS) | set(labels.RULE_LABELS) | set(labels.WARNING_KIND_LABELS) \
        | set(labels.ATTACHMENT_REASON_LABELS) | set(labels.SETTING_LABELS)
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.MailError):
            codes.add(cls.code)
    # Single words ("matched", "blocked") are English too; a code with _ or . is not.
    return {code for code in codes if "_" in code or "." in code}


CLASS_NAME = re.compile(r"\b(?:[a-z_]+\.)+[A-Z][A-Za-z]+\b"  # rolsync.mail.errors.NotImap
                        r"|\b[A-Z][a-z]+(?:[A-Z][a-z]+)*(?:Error|Exception)\b|Traceback")
NOT_PAGES = ("/logout", "/message.eml", "/documents/", ".json", "/oauth/", "/static/")


def _every_page_in_words(page) -> list[str]:
    """Visit every page linked from the signed-in panel (breadth first) and check its text.

    No page may show a Python class name, a rule key or an internal code: those
    are for logs and exports; people get rolsync.labels' words.
    """
    codes = _codes()
    origin = re.match(r"https?://[^/]+", page.url).group(0)
    queue_, seen, visited = ["/"], {"/"}, []
    while queue_ and len(visited) < 80:
        path = queue_.pop(0)
        response = page.goto(origin + path)
        assert response is not None and response.status < 500, path
        visited.append(path)
        text = page.locator("body").inner_text()
        # Addresses and file names may hold underscores of their own.
        words = re.sub(r"\S+@\S+|\S+\.(?:pdf|docx?|xlsx?|png|jpe?g|gif|eml|csv|zip|txt)\b", " ", text)
        found = sorted(code for code in codes if re.search(rf"(?<![\w.]){re.escape(code)}(?![\w])", words))
        assert not found, f"{path} shows codes {found}:\n{text[:3000]}"
        assert not CLASS_NAME.search(words), f"{path} shows a class name: {CLASS_NAME.search(words).group(0)}"
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            href = href.split("#")[0]
            if href.startswith(origin):
                href = href[len(origin):]
            if not href.startswith("/") or href.startswith("//") or any(part in href for part in NOT_PAGES):
                continue
            # One page of each list is enough; the filters' combinations are the same page.
            key = re.sub(r"([?&])page=\d+", r"\1", href) if "page=" in href else href
            if key not in seen:
                seen.add(key)
                queue_.append(href)
    return visited
