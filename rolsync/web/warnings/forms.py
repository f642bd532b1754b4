"""The warning queue's filter and its action buttons."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SearchField, SelectField, StringField
from wtforms.validators import InputRequired, Optional, Regexp

from rolsync.models import WarningStatus

STATUS_CHOICES = {WarningStatus.OPEN.value: "Open", WarningStatus.RESOLVED.value: "Resolved",
                  WarningStatus.DISMISSED.value: "Dismissed", "all": "Any status"}


class WarningFilterForm(FlaskForm):
    """Read from the query string: no CSRF, it changes nothing."""

    class Meta:
        csrf = False

    q = SearchField("Search", validators=[Optional()], render_kw={"placeholder": "Subject, address or sender"})
    kind = SelectField("Kind", choices={"": "Any kind"}, validate_choice=False)
    status = SelectField("Status", choices=STATUS_CHOICES, default=WarningStatus.OPEN.value, validate_choice=False)
    user = SelectField("User", choices={"": "Everyone"}, validate_choice=False)


class ActionForm(FlaskForm):
    """A button that changes something: it carries only the CSRF token."""


class AttachForm(FlaskForm):
    # The button's own value names the record: "contact:12".
    record = StringField(validators=[InputRequired(), Regexp(r"^(contact|candidate):\d{1,18}$")])

    def record_key(self) -> tuple[str, int]:
        kind, record_id = self.record.data.split(":")
        return kind, int(record_id)
