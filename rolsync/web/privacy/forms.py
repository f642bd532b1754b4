"""The mailbox's privacy settings, the admins' capture policy and lifting an erased address."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from rolsync.models import CaptureLevel, Visibility
from rolsync.privacy import LEVEL_LABELS, VISIBILITY_LABELS


class MailboxPrivacyForm(FlaskForm):
    visibility = SelectField("Who sees the notes from this mailbox",
                             choices={v.value: label for v, label in VISIBILITY_LABELS.items()},
                             default=Visibility.EVERYONE.value, validate_choice=False)
    capture_level = SelectField("What is kept of each message",
                                choices={level.value: label for level, label in LEVEL_LABELS.items()},
                                default=CaptureLevel.FULL.value, validate_choice=False)
    private_keyword = StringField("Private keyword", validators=[Optional(), Length(max=64)],
                                  render_kw={"autocomplete": "off", "spellcheck": "false", "placeholder": "Private"})
    private_folder = StringField("Private folder", validators=[Optional(), Length(max=512)],
                                 render_kw={"autocomplete": "off", "spellcheck": "false", "placeholder": "Private"})
    submit = SubmitField("Save privacy settings")


class CapturePolicyForm(FlaskForm):
    capture_default = SelectField("Default for every mailbox",
                                  choices={level.value: label for level, label in LEVEL_LABELS.items()},
                                  validate_choice=False)
    capture_locked = BooleanField("Consultants may keep less than this, never more")
    submit = SubmitField("Save the capture policy")


class RetentionForm(FlaskForm):
    retention_months = IntegerField("Delete imported notes and documents older than (months)", validators=[
        Optional(), NumberRange(min=1, max=1200, message="Enter a number of months from 1 to 1200, or leave it "
                                                          "empty to keep everything.")],
        render_kw={"min": 1, "max": 1200, "inputmode": "numeric", "placeholder": "Keep everything"})
    submit = SubmitField("Save retention")


class LiftForm(FlaskForm):
    address = StringField("E-mail address", validators=[
        InputRequired(message="Enter an e-mail address."), Length(max=320)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "placeholder": "name@example.com"})
    submit = SubmitField("Allow this address again")
