"""The panel's security: the sign-in guard, session cookies, a password change ending old sessions, headers."""
from __future__ import annotations

import hashlib

from flask import Flask, flash, g, redirect, request, session, url_for
from flask_login import current_user, logout_user
from werkzeug.routing import IntegerConverter

from rolsync.extensions import db, login_manager
from rolsync.models import User
from rolsync.web import sessions

PUBLIC_ENDPOINTS = frozenset({"auth.login", "firstrun.setup", "static", "probes.healthz", "probes.readyz",
                              "metrics.scrape"})  # metrics: its own check
"""The only endpoints a signed-out visitor reaches; everything else sends them to sign in."""

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
"""No inline script or style anywhere, so injected markup in mail content could not run even if it escaped."""

MAX_ID = 2**31 - 1
"""The largest id a table holds (a 32-bit INTEGER on PostgreSQL): a larger number in a URL is simply not found."""


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a number past MAX_ID is a 404, never a database overflow (a 500)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 (werkzeug's name)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def password_fingerprint(user: User) -> str:
    """Changes whenever the user's password does: a session made before a password change ends."""
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:24]


def init_security(app: Flask) -> None:
    """Configure sessions, Flask-Login, the sign-in guard and the security headers for the panel."""
    app.config.update(
        SESSION_COOKIE_NAME="rolsync_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Production runs behind HTTPS; a Secure cookie would never come back over plain HTTP elsewhere.
        SESSION_COOKIE_SECURE=bool(app.config.get("ENV_PRODUCTION")),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
    )
    app.config.setdefault("MAX_CONTENT_LENGTH", 2 * 1024 * 1024)  # a CA certificate is a few KB
    # Before any blueprint adds its rules: they bind their converters when they are added.
    app.url_map.converters["int"] = IdConverter
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tokens live as long as the session

    login_manager.login_view = "auth.login"
    login_manager.login_message = "You need to be signed in to see that page."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        try:
            user = db.session.get(User, int(user_id))
        except (TypeError, ValueError):
            return None
        return user if user is not None and user.active else None

    @app.before_request
    def forget_the_previous_request():
        # A request reuses an app context that is already pushed (a test, or a
        # CLI command, running requests), and with it `g`: what one request
        # cached there (Flask-Login's user, Flask-WTF's token) must not serve the next.
        for name in ("_login_user", "open_warnings", app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")):
            g.pop(name, None)

    @app.before_request
    def require_sign_in():
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not sessions.is_valid(db.session, current_user):
            # Signed out elsewhere, idle too long, or past its lifetime: the cookie alone is not enough.
            logout_user()
            session.clear()
            flash("Your session has ended. Sign in again.", "info")
            return redirect(url_for("auth.login"))
        if session.get("password_fp") != password_fingerprint(current_user):
            # The password changed (or an admin reset it) after this session began.
            logout_user()
            session.clear()
            flash("Your password was changed, so you were signed out.", "info")
            return redirect(url_for("auth.login"))
        return None

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers["X-Content-Type-Options"] = "nosniff"
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.endpoint != "static":
            # Pages show people's mail: keep them out of shared caches and the back-button cache.
            headers.setdefault("Cache-Control", "no-store")
        if app.config.get("ENV_PRODUCTION") and request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
