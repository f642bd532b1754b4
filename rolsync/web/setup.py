"""What every page of the panel shares: the sign-in guard, security headers, error pages, template helpers."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from flask import Flask, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from rolsync import labels
from rolsync.extensions import db, login_manager
from rolsync.models import User
from rolsync.warnings import open_count
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

ERROR_TEXTS = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "You do not have access to this page."),
    404: ("Not found", "There is nothing here. It may have been removed, or the link is wrong."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "The upload is too large."),
    429: ("Too many attempts", "Too many attempts. Wait a little and try again."),
    500: ("Something went wrong", "The panel hit an internal error. Try again; if it keeps happening, tell an admin."),
}


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


def init_web(app: Flask) -> None:
    """Configure sessions, Flask-Login, headers, error pages and template helpers for the panel."""
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

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_template("errors/error.html", code=400, title="The form has expired",
                               message="The page was open too long or came from elsewhere. "
                                       "Go back, reload the page and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        title, message = ERROR_TEXTS.get(error.code, (error.name, error.description or ""))
        if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
            return {"error": title, "message": message}, error.code
        return render_template("errors/error.html", code=error.code, title=title, message=message), error.code

    @app.errorhandler(500)
    def internal_error(error):
        db.session.rollback()
        title, message = ERROR_TEXTS[500]
        return render_template("errors/error.html", code=500, title=title, message=message), 500

    @app.context_processor
    def navigation():
        if not current_user.is_authenticated:
            return {}
        if "open_warnings" not in g:
            g.open_warnings = open_count(db.session, current_user)
        return {"nav_open_warnings": g.open_warnings}

    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_date, "date")
    app.add_template_filter(format_size, "filesize")
    app.add_template_filter(format_count, "count")
    app.add_template_global(format_duration, "duration")
    # Codes the product keeps, in words (rolsync.labels): no page shows a class name, rule key or code.
    app.add_template_filter(labels.rule_label, "rule_label")
    app.add_template_filter(labels.error_sentence, "error_sentence")
    app.add_template_filter(labels.attachment_reason_label, "attachment_reason")
    app.add_template_filter(labels.warning_kind_label, "warning_kind")
    app.add_template_filter(labels.reason_label, "reason_label")
    app.add_template_filter(labels.outcome_label, "outcome_label")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def format_datetime(value: datetime | None, empty: str = "—") -> Markup:
    """A <time> element in UTC; the page's script shows it in the reader's own time zone."""
    if value is None:
        return Markup(escape(empty))
    value = _aware(value).astimezone(timezone.utc)
    return Markup('<time datetime="{iso}">{text}</time>').format(
        iso=value.isoformat(timespec="seconds"), text=value.strftime("%Y-%m-%d %H:%M UTC"))


def format_date(value) -> str:
    return value.strftime("%d %b") if value else ""


def format_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def format_duration(start: datetime | None, end: datetime | None) -> str:
    """'took 3 s', 'took 2 min 5 s' for an import run; empty when it has not finished."""
    if start is None or end is None:
        return ""
    seconds = max(0, int((_aware(end) - _aware(start)).total_seconds()))
    if seconds < 60:
        return f"took {seconds} s"
    return f"took {seconds // 60} min {seconds % 60} s"


def format_count(value: int | None) -> str:
    return f"{value or 0:,}"
