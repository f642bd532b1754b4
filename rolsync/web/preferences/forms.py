"""The mailbox settings form, and the user's own password form."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, NumberRange, Optional, ValidationError

from rolsync.accounts import AccountError, MailboxForm, validate_ca_pem
from rolsync.web.preferences.presets import CUSTOM, PRESETS

MAX_CA_BYTES = 64 * 1024


class PortField(IntegerField):
    """An IntegerField whose complaint about letters is in plain words."""

    def process_formdata(self, valuelist):
        if valuelist and valuelist[0].strip():
            try:
                self.data = int(valuelist[0].strip())
            except ValueError:
                self.data = None
                raise ValueError("Enter the port as a number, for example 993.") from None
        else:
            self.data = None


class MailboxSettingsForm(FlaskForm):
    provider = SelectField("Provider", choices={CUSTOM: "Other provider or company server",
                                    **{p.key: p.label for p in PRESETS}}, default=CUSTOM)
    host = StringField("IMAP server", validators=[
        DataRequired(message="Enter the IMAP server, for example imap.example.com."), Length(max=255)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "placeholder": "imap.example.com"})
    port = PortField("Port", default=993, validators=[
        InputRequired(message="Enter the port: 993 for SSL/TLS, 143 for STARTTLS."),
        NumberRange(min=1, max=65535, message="The port must be a number from 1 to 65535 (993 for SSL/TLS, "
                                              "143 for STARTTLS).")],
        render_kw={"min": 1, "max": 65535, "inputmode": "numeric"})
    security = SelectField("Security", choices={"ssl": "SSL/TLS (port 993, recommended)",
                                                "starttls": "STARTTLS (port 143)"}, default="ssl")
    username = StringField("Username", validators=[
        DataRequired(message="Enter the username, usually your full e-mail address."), Length(max=320)],
        render_kw={"autocomplete": "off", "spellcheck": "false"})
    # Write-only: WTForms never renders a PasswordField's value back.
    password = PasswordField("Password", validators=[Optional(), Length(max=1000)],
                             render_kw={"autocomplete": "new-password"})
    ca_pem = TextAreaField("CA certificate", validators=[Length(max=MAX_CA_BYTES)],
                           render_kw={"rows": 4, "spellcheck": "false",
                                      "placeholder": "-----BEGIN CERTIFICATE-----"})
    ca_file = FileField("Upload a PEM file")
    enabled = BooleanField("Sync this mailbox automatically", default=True,
                           description="When this is off, mail is imported only when you press Import now.")
    submit = SubmitField("Save Changes and Test Connection")

    def validate(self, extra_validators=None) -> bool:
        self._ca_too_large = False
        upload: Any = self.ca_file.data  # a FileStorage, or None
        if upload is not None and getattr(upload, "filename", None):
            data = upload.read(MAX_CA_BYTES + 1)
            # An uploaded file replaces whatever the text box held.
            self._ca_too_large = len(data) > MAX_CA_BYTES
            self.ca_pem.data = "" if self._ca_too_large else data.decode("ascii", "replace")
        return super().validate(extra_validators)

    def validate_ca_pem(self, field) -> None:
        if getattr(self, "_ca_too_large", False):
            raise ValidationError("The CA certificate file is too large; a certificate is a few kilobytes.")
        if field.data and field.data.strip():
            try:
                validate_ca_pem(field.data)
            except AccountError as exc:
                raise ValidationError(sentence(str(exc))) from exc

    def to_input(self) -> MailboxForm:
        """The plain input the domain code takes; a blank password keeps the stored one."""
        return MailboxForm(
            host=self.host.data.strip(), port=self.port.data, security=self.security.data,
            username=self.username.data.strip(), password=self.password.data or None,
            ca_pem=self.ca_pem.data if self.ca_pem.data and self.ca_pem.data.strip() else None,
            enabled=bool(self.enabled.data),
        )


class ImportNowForm(FlaskForm):
    submit = SubmitField("Import now")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[InputRequired(message="Enter your current "
                                                                                            "password.")],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField("New password", validators=[InputRequired(message="Enter a new password."),
                                                             Length(max=1000)],
                                 render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the new password", validators=[
        EqualTo("new_password", message="The two new passwords are not the same.")],
        render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Change password")


def sentence(text: str) -> str:
    """Domain messages are lower-case fragments; a form shows them as sentences."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
