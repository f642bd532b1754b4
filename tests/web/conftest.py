"""Fixtures for the panel: signed-in test clients, a CSRF-enforcing app, a live server and a browser page.

The browser itself (`browser`) is in tests/conftest.py: the demo's test drives it too, and
Playwright's sync API cannot start a second one while the first runs.
"""
from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from rolsync import accounts
from rolsync.extensions import db
from rolsync.models import Role, User

PASSWORD = "correct-horse-battery"


def add_user(app, *, admin: bool = False, email: str | None = None, password: str = PASSWORD,
             name: str = "") -> User:
    """A user who can sign in; committed."""
    with app.app_context():
        user = accounts.create_user(db.session, email or f"user-{uuid.uuid4().hex[:8]}@agency.example", password,
                                    name=name, role=Role.ADMIN if admin else Role.USER)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


def sign_in(client, email: str, password: str = PASSWORD):
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response


def csrf_token(client, path: str) -> str:
    """The CSRF token of the form on `path`, read like a browser would."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@dataclass
class Person:
    user: User
    client: object

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def id(self) -> int:
        return self.user.id


def _person(app, *, admin: bool = False, name: str = "") -> Person:
    user = add_user(app, admin=admin, name=name)
    client = app.test_client()
    sign_in(client, user.email)
    return Person(user, client)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(app) -> Person:
    """A signed-in consultant (role user)."""
    return _person(app, name="Uma User")


@pytest.fixture
def other_user(app) -> Person:
    return _person(app, name="Otto Other")


@pytest.fixture
def admin(app) -> Person:
    return _person(app, admin=True, name="Ada Admin")


@pytest.fixture
def csrf_app(app):
    """The same app with CSRF protection switched on, as in production."""
    app.config["WTF_CSRF_ENABLED"] = True
    yield app
    app.config["WTF_CSRF_ENABLED"] = False


def clear_import_job(app, account_id: int) -> None:
    """Delete the account's import job if another test run left it behind.

    RQ job ids are global to a Redis database and `jobs.job_id_for` is
    `import-account-<id>` whatever the queue, while every test starts its ids at 1.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from rolsync import jobs, resources

    with app.app_context():
        svc = resources.get()
        try:
            job = Job.fetch(jobs.job_id_for(account_id), connection=svc.redis)
        except NoSuchJobError:
            return
        job.delete()


@pytest.fixture
def import_jobs(app):
    """Removes this test's import jobs from Redis afterwards (see clear_import_job)."""
    created: list[int] = []
    yield created
    for account_id in created:
        clear_import_job(app, account_id)


# -- a real server and a real browser -------------------------------------------------------


@dataclass
class LiveServer:
    app: object
    url: str


@pytest.fixture
def live_server(monkeypatch, tmp_path, sqlite_url):
    """The app served by werkzeug on a loopback port in a background thread, CSRF enforced."""
    from tests.conftest import _make_app

    app = _make_app(monkeypatch, tmp_path, sqlite_url)
    app.config.update(WTF_CSRF_ENABLED=True, TESTING=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    with app.app_context():
        yield LiveServer(app, f"http://127.0.0.1:{server.server_port}")
        db.session.remove()
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    try:
        yield page
    finally:
        context.close()
