"""Adding a user, changing one, resetting a password."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length

from rolsync.accounts import MIN_PASSWORD_LENGTH
from rolsync.models import Role

ROLE_CHOICES = {Role.USER.value: "User", Role.ADMIN.value: "Admin"}


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(message="Enter the user's e-mail address."),
                                            Length(max=320)], render_kw={"autocomplete": "off"})
    name = StringField("Name", validators=[Length(max=200)])
    password = PasswordField("Password", validators=[InputRequired(message="Enter a first password."),
                                                     Length(max=1000)],
                             description=f"At least {MIN_PASSWORD_LENGTH} characters. Tell it to the user "
                                         "privately; they can change it under Preferences.",
                             render_kw={"autocomplete": "new-password"})
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.USER.value)
    submit = SubmitField("Add user")


class EditUserForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    active = BooleanField("May sign in", description="Switched off, the user cannot sign in; their mailbox "
                                                     "settings and history stay.")
    submit = SubmitField("Save user")


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[InputRequired(message="Enter the new password."),
                                                         Length(max=1000)],
                             description=f"At least {MIN_PASSWORD_LENGTH} characters. The user's open sessions "
                                         "end.", render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Reset password")
