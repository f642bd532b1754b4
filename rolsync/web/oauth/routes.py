"""Connect with Google / Microsoft (authorisation code + PKCE), and Disconnect.

The state and the PKCE verifier travel in the signed session cookie between
Connect and the callback, so any web process can finish what another began.
A callback whose state is not the one this browser was given is refused.
"""
from __future__ import annotations

import functools

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.local import LocalProxy

from rolsync import oauth, resources
from rolsync.extensions import db
from rolsync.web.access import subject_user
from rolsync.web.oauth import bp
from rolsync.web.preferences.routes import page_url, run_connection_test

PENDING_KEY = "oauth_consent"


class DisconnectForm(FlaskForm):
    """Only the CSRF token: Disconnect is a POST."""


@bp.app_context_processor
def oauth_template_helpers():
    # Only Preferences and Warnings show Connect buttons: the providers (a
    # query and a decryption) are read when a page first uses them, once.
    @functools.cache
    def providers() -> dict[str, oauth.OAuthProvider]:
        return resources.get().oauth_providers if current_user.is_authenticated else {}

    return {"oauth_providers": LocalProxy(providers), "oauth_label": oauth.LABELS.get}


def _provider(name: str) -> oauth.OAuthProvider:
    provider = resources.get().oauth_providers.get(name)
    if provider is None:
        abort(404)
    return provider


def redirect_uri(name: str) -> str:
    """The address registered with the provider; ROLSYNC_PUBLIC_URL wins over the request's host."""
    base = current_app.config.get("PUBLIC_URL")
    if base:
        return base + url_for("oauth.callback", provider=name)
    return url_for("oauth.callback", provider=name, _external=True)


@bp.route("/oauth/<provider>/connect")
def connect(provider: str):
    """Connect with Google / Microsoft: off to the provider's consent page, for one's own mailbox only."""
    chosen = _provider(provider)
    pending = oauth.begin_consent(chosen, redirect_uri(chosen.name), login_hint=current_user.email)
    session[PENDING_KEY] = {"provider": chosen.name, "user_id": current_user.id, "state": pending.state,
                            "verifier": pending.code_verifier}
    return redirect(pending.url)


@bp.route("/oauth/<provider>/callback")
def callback(provider: str):
    """Back from the consent page: check the state, trade the code (with the PKCE verifier) for tokens."""
    chosen = _provider(provider)
    pending = session.pop(PENDING_KEY, None)
    if not pending or pending.get("provider") != chosen.name or pending.get("user_id") != current_user.id:
        flash(f"That answer from {chosen.label} did not belong to a connection started here, so it was "
              "refused. Use the Connect button to start again.", "error")
        return redirect(page_url(current_user))
    if request.args.get("error"):
        denied = request.args["error"] == "access_denied"
        flash(f"{chosen.label} did not give access to the mailbox"
              + (" (access was not allowed)." if denied else f" ({request.args['error'][:60]}).")
              + " Nothing was changed; use the Connect button to try again.", "error")
        return redirect(page_url(current_user))
    try:
        grant = oauth.finish_consent(chosen, redirect_uri(chosen.name), request.url, pending["state"],
                                     pending["verifier"])
    except oauth.ConnectError as exc:
        flash(str(exc), "error")
        return redirect(page_url(current_user))
    svc = resources.get()
    account = oauth.connect_mailbox(db.session, svc.secrets, current_user, chosen, grant)
    db.session.commit()
    flash(f"The mailbox {account.username} is connected with {chosen.label}.", "success")
    run_connection_test(current_user, account)
    return redirect(page_url(current_user))


@bp.route("/preferences/oauth/disconnect", methods=["POST"])
@bp.route("/users/<int:user_id>/preferences/oauth/disconnect", methods=["POST"])
def disconnect(user_id: int | None = None):
    """Disconnect: revoke the access where the provider can, forget the tokens, pause the import."""
    user = subject_user(user_id)
    account = user.mail_account
    if not DisconnectForm().validate_on_submit():
        flash("The form has expired; try again.", "error")
    elif account is None or not account.uses_oauth:
        flash("This mailbox is not connected with Google or Microsoft.", "error")
    else:
        label = oauth.LABELS.get(account.oauth_provider or "", "the provider")
        provider = resources.get().oauth_providers.get(account.oauth_provider or "")
        revoked = oauth.disconnect_mailbox(db.session, resources.get().secrets, account, provider)
        db.session.commit()
        if revoked:
            flash(f"The mailbox was disconnected and its access withdrawn at {label}.", "success")
        else:
            flash(f"The mailbox was disconnected and rolsync forgot its access. {label} keeps listing the app "
                  "until you remove it in your account's security settings.", "success")
    return redirect(page_url(user))
