"""The history's forms: the search (a GET form: it changes nothing) and importing one message by hand."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SearchField, SelectField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from rolsync.history import OUTCOME_LABELS


class HistorySearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = SearchField("Search", validators=[Optional()], render_kw={"placeholder": "Address or subject"})
    outcome = SelectField("Outcome", choices={"": "Any outcome", **OUTCOME_LABELS},
                          validate_choice=False)
    user = SelectField("User", choices={"": "Everyone"}, validate_choice=False)


class ImportOneForm(FlaskForm):
    """"Import this message": which copy on the server (a POST with CSRF)."""

    folder = HiddenField(validators=[DataRequired(), Length(max=512)])
    uidvalidity = IntegerField(validators=[DataRequired(), NumberRange(min=1, max=2**32 - 1)])
    uid = IntegerField(validators=[DataRequired(), NumberRange(min=1, max=2**32 - 1)])
