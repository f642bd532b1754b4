"""Record search and address editing."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SearchField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, Optional


class RecordSearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = SearchField("Search", validators=[Optional()], render_kw={"placeholder": "Name, e-mail or company"})
    kind = SelectField("Show", choices={"": "Contacts and candidates", "contact": "Contacts",
                                        "candidate": "Candidates"}, validate_choice=False)


class AddEmailForm(FlaskForm):
    address = StringField("Add an e-mail address", validators=[
        InputRequired(message="Enter an e-mail address."), Length(max=320)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "placeholder": "name@example.com"})
    submit = SubmitField("Add address")


class RemoveEmailForm(FlaskForm):
    """Only the CSRF token: the address is in the URL."""


class EraseForm(FlaskForm):
    """Only the CSRF token: the record is in the URL."""

    submit = SubmitField("Erase this person for good")


class RemoveNoteForm(FlaskForm):
    """Only the CSRF token: the note is in the URL."""
