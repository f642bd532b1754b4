"""Sign-in with a rate limit on failed attempts, and sign-out."""
from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash

from rolsync import firstrun, services
from rolsync.extensions import db
from rolsync.mail.parse.addresses import normalise_address
from rolsync.models import User
from rolsync.ratelimit import Gate, Limit, RateLimiter
from rolsync.web import sessions
from rolsync.web.auth import bp
from rolsync.web.auth.forms import LoginForm, LogoutForm

# Checked against when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = "scrypt:32768:8:1$abcdefghijklmnop$" + "0" * 128


@dataclass
class SignInLimits:
    """The three limits on password guessing, shared through Redis by every web process.

    - per account and client address: `LOGIN_MAX_FAILURES` attempts a window;
      a stranger who hits it blocks only their own address for that account;
    - per client address, whatever the account: `LOGIN_MAX_FAILURES_PER_IP`;
    - per account, from anywhere: after `LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY`
      wrong passwords, one try per delay that doubles with each failure up to
      `LOGIN_MAX_DELAY_SECONDS`; never a lock, so guessing from many addresses
      keeps the real user waiting at most that long.

    Attempts are counted before the password is checked, so parallel requests
    cannot slip past; a successful sign-in gives its place back.
    """

    pair: RateLimiter
    address: RateLimiter
    account_failures: RateLimiter
    gate: Gate
    failures_before_delay: int
    max_delay: int

    @classmethod
    def from_config(cls, config) -> SignInLimits:
        window = config.get("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
        # The queue name tells deployments (and test runs) sharing one Redis apart.
        namespace = config.get("RATELIMIT_NAMESPACE") or config["RQ_QUEUE"]
        redis = services.get().redis
        return cls(
            pair=RateLimiter(redis, f"{namespace}:login-email", Limit(config.get("LOGIN_MAX_FAILURES", 5), window)),
            address=RateLimiter(redis, f"{namespace}:login-ip",
                                Limit(config.get("LOGIN_MAX_FAILURES_PER_IP", 30), window)),
            account_failures=RateLimiter(redis, f"{namespace}:login-account", Limit(1 << 30, window)),
            gate=Gate(redis, f"{namespace}:login-account"),
            failures_before_delay=config.get("LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY", 10),
            max_delay=config.get("LOGIN_MAX_DELAY_SECONDS", 60),
        )

    def wait_before_trying(self, email: str, ip: str) -> float:
        """Count this attempt; the seconds to wait first (0: check the password now)."""
        pair_key = f"{email}|{ip}"
        wait: float = max(self.pair.attempt(pair_key), self.address.attempt(ip))
        if wait:
            return wait
        failures = self.account_failures.count(email)
        if failures >= self.failures_before_delay:
            delay = min(2 ** min(failures - self.failures_before_delay, 30), self.max_delay)
            wait = self.gate.pass_through(email, delay)
        return wait

    def succeeded(self, email: str, ip: str) -> None:
        self.pair.reset(f"{email}|{ip}")
        self.address.release(ip)
        self.account_failures.reset(email)

    def failed(self, email: str) -> None:
        self.account_failures.hit(email)


def too_many_attempts(wait: float) -> str:
    """'Too many sign-in attempts. Try again in 15 minutes.' (or seconds, for a short wait)."""
    if wait < 60:
        seconds = max(1, math.ceil(wait))
        return f"Too many sign-in attempts. Try again in {seconds} second{'s' if seconds != 1 else ''}."
    minutes = math.ceil(wait / 60)
    return f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host (an open redirect), nothing a header cannot carry."""
    if not target or len(target) > 2000 or not target.isprintable() or not target.isascii():
        return None  # a CR or LF would split the Location header; the safe answer is the default page
    if not target.startswith("/") or target.startswith("//") or "\\" in target or " " in target:
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
        limits = SignInLimits.from_config(current_app.config)
        ip = request.remote_addr or "unknown"
        wait = limits.wait_before_trying(email, ip)
        if wait:
            form.form_errors.append(too_many_attempts(wait))
            status = 429
        else:
            user = db.session.scalar(select(User).where(User.email == email))
            if user is not None and user.check_password(form.password.data):
                limits.succeeded(email, ip)
                if not user.active:
                    form.form_errors.append("This account is switched off. Ask an admin to switch it on.")
                else:
                    sessions.sign_in(db.session, user)
                    return redirect(_safe_next(request.args.get("next")) or url_for("dashboard.index"))
            else:
                if user is None:
                    check_password_hash(_DUMMY_HASH, form.password.data)
                limits.failed(email)
                form.form_errors.append("Wrong e-mail or password.")
    return render_template("auth/login.html", form=form, needs_setup=firstrun.needs_setup(db.session)), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (a POST with a CSRF token, so another site cannot sign you out)."""
    form = LogoutForm()
    if form.validate_on_submit():
        sessions.end(db.session)  # on the server: a copy of the cookie is refused from now on
        db.session.commit()
        logout_user()
        session.clear()
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
