"""The setup form (the first admin) and the CRM upload."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import EmailField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import EqualTo, InputRequired, Length

from rolsync.accounts import MIN_PASSWORD_LENGTH


class SetupForm(FlaskForm):
    token = HiddenField()
    name = StringField("Your name", validators=[Length(max=200)], render_kw={"autocomplete": "name"})
    email = EmailField("Email", validators=[InputRequired(message="Enter your e-mail address."), Length(max=320)],
                       description="You sign in with it.", render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[InputRequired(message="Choose a password."), Length(max=1000)],
                             description=f"At least {MIN_PASSWORD_LENGTH} characters.",
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the password", validators=[
        InputRequired(message="Repeat the password."),
        EqualTo("password", message="The two passwords differ.")], render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Create the admin account")


class CrmUploadForm(FlaskForm):
    file = FileField("CSV file", description="Header kind,name,email,company; kind is contact or candidate, "
                                             "company may be empty. Loading the same row again changes nothing.",
                     render_kw={"accept": ".csv,text/csv"})
    submit = SubmitField("Load records")
