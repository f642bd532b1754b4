"""The rule editor's form: one section per built-in rule, the custom rules, the preview and the save.

The form only carries text; `to_definition` turns it into the rule-set JSON
that `rolsync.rules.definition.validate` judges, and `show_errors` puts each
of the validator's complaints next to the field its path names.
"""
from __future__ import annotations

import re

from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length

from rolsync.rules.definition import MAX_CONDITIONS, MAX_CUSTOM_RULES, NUMBER_FIELDS
from rolsync.web.preferences.forms import sentence

FIELD_LABELS = {
    "from": "From",
    "to": "To",
    "cc": "Cc",
    "subject": "Subject",
    "body": "Message text",
    "header": "A header (name it)",
    "attachment_name": "Attachment name",
    "attachment_type": "Attachment type",
    "attachment_size": "Attachment size (MB)",
}
OP_LABELS = {
    "contains": "contains",
    "equals": "is",
    "regex": "matches the regular expression",
    "in_list": "is one of (one per line)",
    "greater_than": "is greater than",
}
ACTION_LABELS = {
    "skip": "Skip the message",
    "drop_attachment": "Leave the attachment out",
    "warn": "Raise a warning for a person to sort out",
    "send_to_record": "Put the note on this record",
}
MAX_PREVIEW_COUNT = 100


class WholeNumberField(IntegerField):
    """An IntegerField that keeps what was typed, so the rule validator (not WTForms) judges it."""

    def __init__(self, *args, blank: int | None = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.blank = blank  # what an empty box means; None: nothing, and the validator says so

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").strip()
        try:
            self.data = int(text) if text else (self.blank if self.blank is not None else text)
        except ValueError:
            self.data = text  # refused by validate() with its own sentence, next to this field


KB = 1024
MB = 1024 * 1024


def format_in(size: int, unit: int) -> str:
    """A byte count in `unit`, without trailing zeros: 2097152 in MB is '2', 1572864 is '1.5'.

    As short as it can be while it still reads back as the same byte count (a rule set
    imported as JSON may hold any number of bytes, and saving the form must not change it).
    """
    for places in (3, 7):
        text = f"{size / unit:.{places}f}".rstrip("0").rstrip(".")
        if parse_in(text, unit) == size:
            break
    return text


def parse_in(text: str, unit: int) -> int | None:
    """'2', '1.5' or '1,5' of `unit` in bytes; None when it is not a number of 0 or more."""
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return None
    if value < 0 or value != value or value > 1e9:
        return None
    return round(value * unit)


class SizeField(WholeNumberField):
    """A size typed in KB or MB and kept in bytes (what the rule set stores)."""

    def __init__(self, *args, unit: int = MB, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit = unit

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").strip()
        if not text:
            self.data = 0
            return
        size = parse_in(text, self.unit)
        self.data = size if size is not None else text  # the validator refuses the text next to this field

    def _value(self):
        if isinstance(self.data, int) and not isinstance(self.data, bool):
            return format_in(self.data, self.unit)
        return super()._value()


class ConditionForm(Form):
    field = SelectField("Field", choices=FIELD_LABELS, default="from")
    header = StringField("Header name", render_kw={"placeholder": "X-Mailer", "spellcheck": "false"})
    op = SelectField("Comparison", choices=OP_LABELS, default="contains")
    value = TextAreaField("Value", render_kw={"rows": 1, "spellcheck": "false"})


class CustomRuleForm(Form):
    name = StringField("Name", render_kw={"maxlength": 100})
    enabled = BooleanField("Enabled", default=True)
    match = SelectField("Applies when", choices={"all": "all conditions hold", "any": "any condition holds"},
                        default="all")
    conditions = FieldList(FormField(ConditionForm), max_entries=MAX_CONDITIONS)
    action = SelectField("Then", choices=ACTION_LABELS, default="skip")
    record_kind = SelectField("Record kind", choices={"contact": "Contact", "candidate": "Candidate"},
                              default="contact")
    record_email = StringField("Record's e-mail address", render_kw={"spellcheck": "false"})


class RulesForm(FlaskForm):
    own_domain_enabled = BooleanField("Leave out mail between colleagues")
    own_domain_source = RadioField("Our own domain is", choices={
        "imap_host": "taken from the mail server's name (mail.acme.com means acme.com)",
        "account_email": "the domain of each consultant's mailbox address",
        "list": "only the domains listed below",
    }, default="imap_host")
    own_domain_domains = TextAreaField("Other internal domains", render_kw={"rows": 2, "spellcheck": "false",
                                                                         "placeholder": "acme-group.com"})

    images_mode = RadioField("What to do with images", choices={
        "exclude_all": "Leave out every image",
        "exclude_inline": "Leave out only images inside the message (logos, signatures); keep attached ones",
        "keep": "Keep every image",
    }, default="exclude_all")
    images_min_size = SizeField("Always leave out images smaller than (KB)", default=0, unit=KB)

    duplicate_action = RadioField("When an address belongs to more than one record", choices={
        "warn": "Raise a warning and import nothing until a person picks the record",
        "attach_all": "Put the note on every record with that address",
        "attach_latest": "Put the note on the record that was updated most recently",
    }, default="warn")

    no_match_action = RadioField("When no contact or candidate has the address", choices={
        "skip": "Skip the message",
        "warn": "Raise a warning",
        "keep": "Keep the message and import it when a contact or candidate with that address is added",
    }, default="skip")

    first_run_inbox = WholeNumberField("Inbox", default=100, blank=None)
    first_run_sent = WholeNumberField("Sent", default=100, blank=None)
    first_run_inbox_since = StringField("Or every Inbox message since", render_kw={"type": "date"})
    first_run_sent_since = StringField("Or every Sent message since", render_kw={"type": "date"})

    attachments_max_size = SizeField("Largest attachment kept (MB, 0 for no limit)", default=0, unit=MB)
    attachments_blocked_extensions = StringField("Attachment types never kept", render_kw={
        "placeholder": ".exe, .ics", "spellcheck": "false"})

    automatic_mail_skip = BooleanField("Skip auto-replies and bulk mail")

    blocked_addresses = TextAreaField("Never import mail from or to", render_kw={
        "rows": 3, "spellcheck": "false", "placeholder": "noreply@jobboard.example\n@spam.example"})

    intake_enabled = BooleanField("Put applications from new people on the New people page")
    intake_extensions = StringField("Attachment types that make a message an application", render_kw={
        "placeholder": ".pdf, .doc, .docx, .odt, .rtf", "spellcheck": "false"})
    intake_relays = BooleanField("Applications relayed by job boards (an unknown sender with the applicant in "
                                 "Reply-To)")

    custom_rules = FieldList(FormField(CustomRuleForm), max_entries=MAX_CUSTOM_RULES)

    # What the admin is editing on top of: saving over someone else's newer version needs a second click.
    base_version = HiddenField()

    preview_source = RadioField("Messages", choices={
        "upload": "Uploaded .eml files", "mailbox": "The newest messages of a consultant's mailbox"},
        default="upload", validate_choice=False)
    preview_account = SelectField("Mailbox", choices={}, validate_choice=False)
    preview_count = WholeNumberField("How many of the newest messages per folder", default=10)
    preview_direction = SelectField("Uploaded messages were", choices={
        "received": "received (as in the Inbox)", "sent": "sent (as in the Sent folder)"},
        default="received", validate_choice=False)
    preview_files = MultipleFileField("Upload .eml files")
    preview_job = HiddenField()

    comment = StringField("What changed, in a few words", validators=[Length(max=500)],
                          render_kw={"maxlength": 500, "placeholder": "Keep images attached to CVs"})

    # -- the JSON format and back -------------------------------------------------------------

    @classmethod
    def data_from(cls, definition: dict) -> dict:
        """Form data for a (validated) rule set."""
        own, images = definition["own_domain"], definition["images"]
        return {
            "own_domain_enabled": own["enabled"],
            "own_domain_source": own["source"],
            "own_domain_domains": "\n".join(own["domains"]),
            "images_mode": images["mode"],
            "images_min_size": images["min_size"],
            "duplicate_action": definition["duplicate_address"]["action"],
            "no_match_action": definition["no_match"]["action"],
            "first_run_inbox": definition["first_run"]["inbox"],
            "first_run_sent": definition["first_run"]["sent"],
            "first_run_inbox_since": definition["first_run"].get("inbox_since") or "",
            "first_run_sent_since": definition["first_run"].get("sent_since") or "",
            "attachments_max_size": definition["attachments"]["max_size"],
            "attachments_blocked_extensions": ", ".join(definition["attachments"]["blocked_extensions"]),
            "automatic_mail_skip": definition["automatic_mail"]["skip"],
            "blocked_addresses": "\n".join(definition["blocked"]["addresses"]),
            "intake_enabled": definition["intake"]["enabled"],
            "intake_extensions": ", ".join(definition["intake"]["extensions"]),
            "intake_relays": definition["intake"]["relays"],
            "custom_rules": [_rule_data(rule) for rule in definition["custom_rules"]],
        }

    def to_definition(self) -> dict:
        """The rule set the form describes, not yet validated."""
        return {
            "format": 1,
            "own_domain": {"enabled": bool(self.own_domain_enabled.data), "source": self.own_domain_source.data,
                           "domains": _words(self.own_domain_domains.data)},
            "images": {"mode": self.images_mode.data, "min_size": self.images_min_size.data},
            "duplicate_address": {"action": self.duplicate_action.data},
            "no_match": {"action": self.no_match_action.data},
            "first_run": {"inbox": self.first_run_inbox.data, "sent": self.first_run_sent.data,
                          "inbox_since": (self.first_run_inbox_since.data or "").strip() or None,
                          "sent_since": (self.first_run_sent_since.data or "").strip() or None},
            "attachments": {"max_size": self.attachments_max_size.data,
                            "blocked_extensions": _words(self.attachments_blocked_extensions.data)},
            "automatic_mail": {"skip": bool(self.automatic_mail_skip.data)},
            "blocked": {"addresses": _words(self.blocked_addresses.data)},
            "intake": {"enabled": bool(self.intake_enabled.data), "extensions": _words(self.intake_extensions.data),
                       "relays": bool(self.intake_relays.data)},
            "custom_rules": [_rule_definition(entry.form) for entry in self.custom_rules],
        }

    def custom_rules_data(self) -> list[dict]:
        """The custom rules as form data, for adding, moving and removing rules and conditions."""
        return [entry.form.data for entry in self.custom_rules]

    # -- the validator's errors, next to their fields ------------------------------------------

    def show_errors(self, errors: list[str]) -> None:
        """Put each `path: message` from RuleSetInvalid next to the field the path names."""
        for error in errors:
            path, _, message = error.partition(": ")
            field = self._field_for(path) if message else None
            text = sentence(message if field is not None else error)
            if field is not None and (isinstance(field, SizeField) or "bytes" in message):
                # The rule set counts bytes; the form asks in KB or MB.
                unit = "KB" if getattr(field, "unit", MB) == KB else "MB"
                text = f"Enter a size in {unit} of 0 or more, such as 2 or 0.5."
            if field is None:
                self.form_errors.append(text)
            elif text not in field.errors:
                field.errors = [*field.errors, text]

    def _field_for(self, path: str):
        sections = {
            "own_domain.enabled": self.own_domain_enabled, "own_domain.source": self.own_domain_source,
            "own_domain.domains": self.own_domain_domains, "own_domain": self.own_domain_enabled,
            "images.mode": self.images_mode, "images.min_size": self.images_min_size, "images": self.images_mode,
            "duplicate_address.action": self.duplicate_action, "duplicate_address": self.duplicate_action,
            "no_match.action": self.no_match_action, "no_match": self.no_match_action,
            "first_run.inbox": self.first_run_inbox, "first_run.sent": self.first_run_sent,
            "first_run": self.first_run_inbox,
            "first_run.inbox_since": self.first_run_inbox_since, "first_run.sent_since": self.first_run_sent_since,
            "attachments.max_size": self.attachments_max_size,
            "attachments.blocked_extensions": self.attachments_blocked_extensions,
            "attachments": self.attachments_max_size,
            "automatic_mail.skip": self.automatic_mail_skip, "automatic_mail": self.automatic_mail_skip,
            "blocked.addresses": self.blocked_addresses, "blocked": self.blocked_addresses,
            "intake.enabled": self.intake_enabled, "intake.extensions": self.intake_extensions,
            "intake.relays": self.intake_relays, "intake": self.intake_enabled,
        }
        if path in sections:
            return sections[path]
        found = re.fullmatch(r"custom_rules\[(\d+)\](?:\.(\w+))?(?:\[(\d+)\])?(?:\.(\w+))?", path)
        if not found:
            return None
        index, key, condition, part = found.groups()
        if int(index) >= len(self.custom_rules.entries):
            return None
        rule = self.custom_rules.entries[int(index)].form
        if key == "conditions" and condition is not None:
            if int(condition) >= len(rule.conditions.entries):
                return rule.name
            row = rule.conditions.entries[int(condition)].form
            return {"field": row.field, "op": row.op, "header": row.header}.get(part or "", row.value)
        if key == "conditions":
            return rule.conditions if rule.conditions.entries else rule.name
        return {"enabled": rule.enabled, "match": rule.match, "action": rule.action,
                "record": rule.record_email}.get(key or "", rule.name)


def blank_rule() -> dict:
    """Form data of a new custom rule: one empty condition."""
    return {"name": "", "enabled": True, "match": "all", "action": "skip", "record_kind": "contact",
            "record_email": "", "conditions": [blank_condition()]}


def blank_condition() -> dict:
    return {"field": "from", "header": "", "op": "contains", "value": ""}


def _words(text: str | None) -> list[str]:
    """Entries separated by commas, spaces or new lines."""
    return [word for word in re.split(r"[\s,;]+", text or "") if word]


def _rule_data(rule: dict) -> dict:
    record = rule.get("record") or {}
    return {
        "name": rule["name"], "enabled": rule["enabled"], "match": rule["match"], "action": rule["action"],
        "record_kind": record.get("kind", "contact"), "record_email": record.get("email", ""),
        "conditions": [{
            "field": c["field"], "header": c.get("header", ""), "op": c["op"],
            "value": ("\n".join(c["value"]) if isinstance(c["value"], list)
                      else format_in(c["value"], MB) if c["field"] in NUMBER_FIELDS and isinstance(c["value"], int)
                      else str(c["value"])),
        } for c in rule["conditions"]],
    }


def _rule_definition(form: CustomRuleForm) -> dict:
    rule = {"name": (form.name.data or "").strip(), "enabled": bool(form.enabled.data), "match": form.match.data,
            "action": form.action.data, "conditions": [_condition_definition(c.form) for c in form.conditions]}
    if form.action.data == "send_to_record":
        rule["record"] = {"kind": form.record_kind.data, "email": (form.record_email.data or "").strip()}
    return rule


def _condition_definition(form: ConditionForm) -> dict:
    field, op, text = form.field.data, form.op.data, form.value.data or ""
    condition: dict = {"field": field, "op": op}
    if field in NUMBER_FIELDS:  # asked in MB, kept in bytes
        size = parse_in(text, MB) if text.strip() else None
        condition["value"] = size if size is not None else text.strip()
    elif op == "in_list":
        condition["value"] = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        condition["value"] = text.strip()
    if field == "header":
        condition["header"] = (form.header.data or "").strip()
    return condition
