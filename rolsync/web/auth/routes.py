"""Sign-in with a rate limit on failed attempts, and sign-out."""
from __future__ import annotations

import math
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash

from rolsync import resources
from rolsync.extensions import db
from rolsync.mail.parse import normalise_address
from rolsync.models import User, utcnow
from rolsync.ratelimit import Limit, RateLimiter
from rolsync.web.auth import bp
from rolsync.web.auth.forms import LoginForm, LogoutForm
from rolsync.web.security import password_fingerprint

# Checked against when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = "scrypt:32768:8:1$abcdefghijklmnop$" + "0" * 128


def _limiters() -> tuple[RateLimiter, RateLimiter]:
    """Failed sign-ins counted per e-mail address and per client address, shared through Redis."""
    config = current_app.config
    window = config.get("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
    # The queue name tells deployments (and test runs) sharing one Redis apart.
    namespace = config.get("RATELIMIT_NAMESPACE") or config["RQ_QUEUE"]
    redis = resources.get().redis
    return (RateLimiter(redis, f"{namespace}:login-email", Limit(config.get("LOGIN_MAX_FAILURES", 5), window)),
            RateLimiter(redis, f"{namespace}:login-ip", Limit(config.get("LOGIN_MAX_FAILURES_PER_IP", 30), window)))


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in page: Email, Password, Sign in."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        email = normalise_address(form.email.data) or form.email.data.strip().lower()
        by_email, by_ip = _limiters()
        ip = request.remote_addr or "unknown"
        wait = max(by_email.retry_after(email), by_ip.retry_after(ip))
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            form.form_errors.append(f"Too many sign-in attempts. Try again in {minutes} minute"
                                    f"{'s' if minutes != 1 else ''}.")
            status = 429
        else:
            user = db.session.scalar(select(User).where(User.email == email))
            if user is not None and user.check_password(form.password.data):
                if not user.active:
                    form.form_errors.append("This account is switched off. Ask an admin to switch it on.")
                else:
                    by_email.reset(email)
                    session.clear()  # a fresh session: nothing carried over from before sign-in
                    login_user(user)
                    session["password_fp"] = password_fingerprint(user)
                    user.last_login_at = utcnow()
                    db.session.commit()
                    return redirect(_safe_next(request.args.get("next")) or url_for("dashboard.index"))
            else:
                if user is None:
                    check_password_hash(_DUMMY_HASH, form.password.data)
                by_email.hit(email)
                by_ip.hit(ip)
                form.form_errors.append("Wrong e-mail or password.")
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (a POST with a CSRF token, so another site cannot sign you out)."""
    form = LogoutForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
