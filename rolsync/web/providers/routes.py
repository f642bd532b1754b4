"""Mail sign-in providers: see, set up and remove rolsync's app registration at Google and Microsoft. Admins only.

A provider set in the environment is shown read-only: the environment wins,
and whoever runs rolsync changes it there.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from rolsync import oauth, oauth_clients, resources
from rolsync.extensions import db
from rolsync.models import OAuthClient
from rolsync.web.access import admin_required
from rolsync.web.oauth.routes import redirect_uri
from rolsync.web.preferences.forms import sentence
from rolsync.web.providers import bp
from rolsync.web.providers.forms import FORMS, ClientForm, RemoveForm

CONSOLES = {
    "google": ("Google Cloud console", "https://console.cloud.google.com/apis/credentials"),
    "microsoft": ("Microsoft Entra admin center > App registrations",
                  "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"),
}


@dataclass
class ProviderCard:
    """One provider as the page shows it."""

    name: str
    in_use: oauth.OAuthProvider | None
    in_environment: bool
    saved: OAuthClient | None
    secret_readable: bool
    mailboxes: int
    redirect_uri: str
    scopes: list[str]
    form: ClientForm

    @property
    def label(self) -> str:
        return oauth.LABELS[self.name]

    @property
    def console(self) -> tuple[str, str]:
        return CONSOLES[self.name]


def _cards(submitted: ClientForm | None = None) -> list[ProviderCard]:
    svc = resources.get()
    in_use = svc.oauth_providers
    mailboxes = oauth_clients.connected_mailboxes(db.session)
    cards = []
    for name, endpoints in svc.oauth_endpoints.items():
        saved = oauth_clients.saved_client(db.session, name)
        if submitted is not None and submitted.provider == name:
            form = submitted
        else:
            form = FORMS[name](formdata=None, prefix=name, obj=saved)
        cards.append(ProviderCard(
            name=name, in_use=in_use.get(name), in_environment=name in svc.oauth_environment, saved=saved,
            secret_readable=saved is not None and oauth_clients.secret_is_readable(saved, svc.secrets),
            mailboxes=mailboxes.get(name, 0), redirect_uri=redirect_uri(name),
            scopes=(in_use.get(name) or endpoints).scope.split(), form=form))
    return cards


def _known(provider: str) -> str:
    if provider not in resources.get().oauth_endpoints:
        abort(404)
    return provider


def _set_in_environment(provider: str) -> bool:
    if provider in resources.get().oauth_environment:
        flash(f"{oauth.LABELS[provider]} is set in the environment by whoever runs rolsync; "
              "change it there.", "error")
        return True
    return False


@bp.route("/admin/mail-providers")
@admin_required
def index():
    """Each provider: set up or not, the redirect URI and scopes to register, its form."""
    return render_template("providers/index.html", cards=_cards(), remove_form=RemoveForm(formdata=None))


@bp.route("/admin/mail-providers/<provider>", methods=["POST"])
@admin_required
def save(provider: str):
    """Save a provider's client id, secret (kept when left empty) and tenant for the whole deployment."""
    name = _known(provider)
    if _set_in_environment(name):
        return redirect(url_for("providers.index"))
    form = FORMS[name](prefix=name)
    if form.validate_on_submit():
        try:
            oauth_clients.save_client(db.session, resources.get().secrets, name, form.settings(),
                                      by=current_user._get_current_object())
        except oauth_clients.ClientSettingsRefused as exc:
            db.session.rollback()
            field = getattr(form, exc.field, None)
            if field is not None:
                field.errors = [*field.errors, sentence(str(exc))]
            else:
                form.form_errors.append(sentence(str(exc)))
        else:
            db.session.commit()
            flash(f"{oauth.LABELS[name]} is set up: users can connect their mailboxes with it.", "success")
            return redirect(url_for("providers.index"))
    return render_template("providers/index.html", cards=_cards(form), remove_form=RemoveForm(formdata=None)), 422


@bp.route("/admin/mail-providers/<provider>/remove", methods=["POST"])
@admin_required
def remove(provider: str):
    """Forget the provider's client saved here; connected mailboxes keep their data and stop importing."""
    name = _known(provider)
    label = oauth.LABELS[name]
    if _set_in_environment(name):
        return redirect(url_for("providers.index"))
    if not RemoveForm().validate_on_submit():
        flash("The form has expired; try again.", "error")
    elif oauth_clients.saved_client(db.session, name) is None:
        flash(f"{label} is not set up here; there was nothing to remove.", "info")
    else:
        mailboxes = oauth_clients.remove_client(db.session, name, by=current_user._get_current_object())
        db.session.commit()
        stopped = (f" The {mailboxes} mailbox{'es' if mailboxes != 1 else ''} connected with it stop importing "
                   "until it is set up again." if mailboxes else "")
        flash(f"{label} was removed: nobody can connect with it now.{stopped}", "success")
    return redirect(url_for("providers.index"))
