"""Signing in and out: the visible words, the rate limit, sessions, cookies and headers."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select

from rolsync.extensions import db
from rolsync.models import User
from tests.web.conftest import PASSWORD, add_user, sign_in


def test_the_sign_in_page_has_email_password_and_sign_in(csrf_app):
    html = csrf_app.test_client().get("/login").get_data(as_text=True)
    assert re.search(r'<label[^>]* for="email"[^>]*>Email</label>', html)
    assert re.search(r'<label[^>]* for="password"[^>]*>Password</label>', html)
    assert ">Sign in</button>" in html
    assert 'name="csrf_token"' in html


def test_every_page_redirects_to_sign_in_when_signed_out(client):
    for path in ("/", "/preferences", "/warnings", "/records", "/history", "/users", "/rules", "/nowhere"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert urlsplit(response.location).path == "/login", path


def test_signing_in_goes_back_to_the_page_asked_for(app, client):
    user = add_user(app)
    first = client.get("/records")
    response = client.post(first.location, data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response.location == "/records"


def test_a_next_parameter_never_leads_to_another_site(app, client):
    user = add_user(app)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post("/login?next=" + target, data={"email": user.email, "password": PASSWORD})
        assert response.location == "/", target
        client.post("/logout")


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(app, client):
    user = add_user(app)
    wrong = client.post("/login", data={"email": user.email, "password": "nope-nope-nope"})
    unknown = client.post("/login", data={"email": "nobody@agency.example", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 200
    assert "Wrong e-mail or password." in wrong.get_data(as_text=True)
    assert "Wrong e-mail or password." in unknown.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sign_in_is_rate_limited_after_five_failures(app, client):
    user = add_user(app)
    for _ in range(5):
        assert client.post("/login", data={"email": user.email, "password": "guess-guess"}).status_code == 200
    blocked = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert "Too many sign-in attempts. Try again in 15 minutes." in blocked.get_data(as_text=True)
    assert client.get("/").status_code == 302  # even the right password waits

    # Another account from the same address is not locked by these failures.
    other = add_user(app)
    sign_in(client, other.email)


def _sign_in_from(app, address: str, email: str, password: str, headers: dict | None = None):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client.post("/login", data={"email": email, "password": password}, headers=headers or {})


def test_forty_parallel_wrong_passwords_are_all_counted_and_none_slips_past(app):
    """The limit counts before it checks: a burst cannot try more passwords than the limit allows."""
    from concurrent.futures import ThreadPoolExecutor

    from rolsync.web.auth.routes import SignInLimits

    user = add_user(app)
    attacker = "203.0.113.7"
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(lambda i: _sign_in_from(app, attacker, user.email, f"guess-{i}").status_code,
                                 range(40)))
    assert statuses.count(200) == 5, statuses  # only five passwords were ever checked
    assert statuses.count(429) == 35
    limits = SignInLimits.from_config(app.config)
    assert limits.pair.count(f"{user.email}|{attacker}") == 40  # every attempt was recorded
    assert limits.account_failures.count(user.email) == 5
    # The right password from the attacker's address does not slip through either.
    assert _sign_in_from(app, attacker, user.email, PASSWORD).status_code == 429
    # The attacker stops; the real user, from their own address, signs in at once.
    assert _sign_in_from(app, "198.51.100.20", user.email, PASSWORD).status_code == 302


def test_guessing_from_many_addresses_slows_the_account_but_never_locks_it(app):
    app.config.update(LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY=3, LOGIN_MAX_DELAY_SECONDS=1)
    user = add_user(app)
    for i in range(12):
        _sign_in_from(app, f"203.0.113.{i + 1}", user.email, "guess-guess-guess")
    slowed = _sign_in_from(app, "203.0.113.200", user.email, "guess-guess-guess")
    assert slowed.status_code == 429
    assert "Try again in 1 second." in slowed.get_data(as_text=True)
    # However long the guessing went on, the real user waits at most the delay's cap.
    import time

    time.sleep(1.1)
    assert _sign_in_from(app, "198.51.100.20", user.email, PASSWORD).status_code == 302


def test_x_forwarded_for_is_ignored_unless_a_proxy_is_configured(app):
    user = add_user(app)
    for i in range(5):
        _sign_in_from(app, "203.0.113.1", user.email, "guess-guess", {"X-Forwarded-For": f"192.0.2.{i}"})
    # A made-up header per request does not give the guesser a fresh address.
    assert _sign_in_from(app, "203.0.113.1", user.email, PASSWORD,
                         {"X-Forwarded-For": "192.0.2.99"}).status_code == 429


def test_behind_a_configured_proxy_each_client_is_limited_on_its_own(monkeypatch, app):
    from rolsync import create_app

    user = add_user(app)
    monkeypatch.setenv("ROLSYNC_TRUSTED_PROXIES", "1")
    proxied = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    for _ in range(5):
        _sign_in_from(proxied, "203.0.113.1", user.email, "guess-guess", {"X-Forwarded-For": "192.0.2.1"})
    assert _sign_in_from(proxied, "203.0.113.1", user.email, PASSWORD,
                         {"X-Forwarded-For": "192.0.2.1"}).status_code == 429
    # Another client behind the same proxy is not locked out by the first one's guesses.
    assert _sign_in_from(proxied, "203.0.113.1", user.email, PASSWORD,
                         {"X-Forwarded-For": "192.0.2.2"}).status_code == 302
    with proxied.app_context():
        db.engine.dispose()


def test_the_current_password_check_is_limited_too(app, user):
    for _ in range(5):
        response = user.client.post("/preferences/password", data={
            "current_password": "guess-guess", "new_password": "new-password-12345", "confirm": "new-password-12345"})
        assert response.status_code == 422
    blocked = user.client.post("/preferences/password", data={
        "current_password": PASSWORD, "new_password": "new-password-12345", "confirm": "new-password-12345"})
    assert blocked.status_code == 429
    assert "Too many sign-in attempts" in blocked.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(PASSWORD)


def test_the_rate_limit_is_shared_by_every_web_process(app):
    """Two apps (two processes) on one Redis see the same counter."""
    from rolsync import create_app

    user = add_user(app)
    second = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    for _ in range(3):
        app.test_client().post("/login", data={"email": user.email, "password": "guess-guess"})
    for _ in range(2):
        second.test_client().post("/login", data={"email": user.email, "password": "guess-guess"})
    assert app.test_client().post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 429
    with second.app_context():
        db.engine.dispose()


def test_a_successful_sign_in_clears_the_failures(app, client):
    user = add_user(app)
    for _ in range(4):
        client.post("/login", data={"email": user.email, "password": "guess-guess"})
    sign_in(client, user.email)
    client.post("/logout")
    for _ in range(4):
        client.post("/login", data={"email": user.email, "password": "guess-guess"})
    sign_in(client, user.email)


def test_a_switched_off_user_cannot_sign_in_and_is_signed_out(app, client):
    user = add_user(app)
    sign_in(client, user.email)
    with app.app_context():
        db.session.get(User, user.id).active = False
        db.session.commit()
    assert client.get("/").status_code == 302
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert "This account is switched off" in response.get_data(as_text=True)


def test_sign_out_is_a_post_and_ends_the_session(app, client):
    user = add_user(app)
    sign_in(client, user.email)
    assert client.get("/logout").status_code == 405
    response = client.post("/logout", follow_redirects=True)
    assert "You are signed out." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def _copy_of(app, client):
    """Another browser holding a copy of `client`'s session cookie (as a thief would)."""
    thief = app.test_client()
    cookie = client.get_cookie("rolsync_session")
    thief.set_cookie("rolsync_session", cookie.value)
    return thief


def test_a_copied_cookie_is_refused_after_sign_out(app, client):
    user = add_user(app)
    sign_in(client, user.email)
    thief = _copy_of(app, client)
    assert thief.get("/preferences").status_code == 200  # the copy works while the session is open
    client.post("/logout")
    refused = thief.get("/preferences")
    assert refused.status_code == 302 and urlsplit(refused.location).path == "/login"
    assert thief.get("/preferences").status_code == 302


def test_a_session_ends_after_the_idle_timeout_and_the_lifetime(app, client):
    from datetime import timedelta

    from rolsync.models import UserSession

    user = add_user(app)
    sign_in(client, user.email)
    row = db.session.scalar(select(UserSession).where(UserSession.user_id == user.id))
    row.last_seen_at -= timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1)
    db.session.commit()
    ended = client.get("/preferences", follow_redirects=True)
    assert "Your session has ended. Sign in again." in ended.get_data(as_text=True)

    sign_in(client, user.email)
    assert client.get("/preferences").status_code == 200
    row = db.session.scalar(select(UserSession).where(UserSession.user_id == user.id))
    row.created_at -= timedelta(hours=app.config["SESSION_MAX_HOURS"], minutes=1)
    db.session.commit()
    assert client.get("/preferences").status_code == 302  # busy all along, but past its lifetime


def test_changing_ones_password_ends_the_other_sessions_on_the_server(app, user):
    other_browser = app.test_client()
    sign_in(other_browser, user.email)
    response = user.client.post("/preferences/password", data={
        "current_password": PASSWORD, "new_password": "new-password-12345", "confirm": "new-password-12345"})
    assert response.status_code == 302
    assert user.client.get("/preferences").status_code == 200  # this one stays signed in
    assert other_browser.get("/preferences").status_code == 302
    from rolsync.models import UserSession

    db.session.expire_all()
    assert len(db.session.scalars(select(UserSession).where(UserSession.user_id == user.id)).all()) == 1


def test_a_password_reset_ends_the_other_sessions(app, admin):
    user = add_user(app)
    victim = app.test_client()
    sign_in(victim, user.email)
    response = admin.client.post(f"/users/{user.id}/password", data={"password": "a-brand-new-password"})
    assert response.status_code == 302
    ended = victim.get("/")
    assert ended.status_code == 302 and urlsplit(ended.location).path == "/login"
    sign_in(app.test_client(), user.email, "a-brand-new-password")


def test_cookies_are_http_only_and_same_site(app, client):
    user = add_user(app)
    response = sign_in(client, user.email)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("rolsync_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_pages_carry_security_headers(app, user):
    response = user.client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and "onclick" not in html


def test_templates_use_no_inline_script_or_style():
    """The CSP forbids inline script and style, so none may creep into a template."""
    from pathlib import Path

    import rolsync

    for template in (Path(rolsync.__file__).parent / "templates").rglob("*.html"):
        text = template.read_text()
        assert "<script>" not in text and "<style" not in text, template
        assert " style=" not in text and " onclick=" not in text and " onchange=" not in text, template
