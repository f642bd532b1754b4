"""The history's search form (a GET form: it changes nothing)."""
from flask_wtf import FlaskForm
from wtforms import SearchField, SelectField
from wtforms.validators import Optional

from rolsync.history import OUTCOME_LABELS


class HistorySearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = SearchField("Search", validators=[Optional()], render_kw={"placeholder": "Address or subject"})
    outcome = SelectField("Outcome", choices={"": "Any outcome", **OUTCOME_LABELS},
                          validate_choice=False)
    user = SelectField("User", choices={"": "Everyone"}, validate_choice=False)
