"""One form per provider's app registration, and the Remove button's."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import ValidationError

from rolsync import oauth_clients

_NO_AUTOFILL = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}


def _refused_as_validation_error(check, *args) -> None:
    try:
        check(*args)
    except oauth_clients.ClientSettingsRefused as exc:
        raise ValidationError(str(exc)) from None


class ClientForm(FlaskForm):
    """Google's: the client id and secret. The secret is never rendered back (PasswordField)."""

    provider = "google"

    client_id = StringField("Client ID", render_kw=_NO_AUTOFILL)
    client_secret = PasswordField("Client secret", render_kw={**_NO_AUTOFILL, "autocomplete": "new-password"})
    submit = SubmitField("Save")

    def validate_client_id(self, field) -> None:
        _refused_as_validation_error(oauth_clients.check_client_id, self.provider, field.data or "")

    def validate_client_secret(self, field) -> None:
        if (field.data or "").strip():
            _refused_as_validation_error(oauth_clients.check_secret, self.provider, field.data.strip())

    def settings(self) -> oauth_clients.ClientSettings:
        return oauth_clients.ClientSettings(client_id=self.client_id.data or "",
                                            client_secret=self.client_secret.data or "")


class MicrosoftClientForm(ClientForm):
    provider = "microsoft"

    client_id = StringField("Application (client) ID", render_kw=_NO_AUTOFILL)
    client_secret = PasswordField("Client secret value", render_kw={**_NO_AUTOFILL, "autocomplete": "new-password"})
    tenant = StringField("Tenant", default=oauth_clients.DEFAULT_TENANT, render_kw=_NO_AUTOFILL,
                         description="Your organisation only: its Directory (tenant) ID or domain. Any "
                                     "organisation: organizations; also personal Outlook.com accounts: common.")

    def validate_tenant(self, field) -> None:
        _refused_as_validation_error(oauth_clients.check_tenant, field.data or "")

    def settings(self) -> oauth_clients.ClientSettings:
        return oauth_clients.ClientSettings(client_id=self.client_id.data or "",
                                            client_secret=self.client_secret.data or "",
                                            tenant=self.tenant.data or "")


FORMS = {"google": ClientForm, "microsoft": MicrosoftClientForm}


class RemoveForm(FlaskForm):
    """Only the CSRF token: Remove is a POST."""

    submit = SubmitField("Remove")
