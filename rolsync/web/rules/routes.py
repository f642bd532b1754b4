"""Import rules (admins): edit the rule set, preview a draft, save it as a version, roll back.

The editor is one form. Its buttons say what to do with the draft: save it,
preview it, or change the list of custom rules (add, move, remove) and show
the form again, so the page works without JavaScript. The draft is judged by
`rules.definition.validate`, whose errors land next to their fields.
"""
from __future__ import annotations

import json
import re
import uuid

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from rolsync import jobs, preview, resources
from rolsync.extensions import db
from rolsync.history import OUTCOME_LABELS, REASON_LABELS
from rolsync.job_state import read_job
from rolsync.models import Direction, MailAccount, User
from rolsync.rules import CompiledRules, RuleSetInvalid, default_rules, validate
from rolsync.rules.definition import MAX_CONDITIONS
from rolsync.rules.store import active_rules, active_version, describe_changes, roll_back, save_version, versions
from rolsync.web.access import actor, admin_required
from rolsync.web.rules import bp
from rolsync.web.rules.forms import MAX_PREVIEW_COUNT, RulesForm, blank_condition, blank_rule
from rolsync.web.warnings.forms import ActionForm

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""Uploaded .eml files for a preview; mail with attachments is larger than the panel's usual 2 MB."""

PREVIEW_JOB_PREFIX = "rules-preview-"
PREVIEW_RESULT_SECONDS = 3600
_JOB_ID = re.compile(rf"^{PREVIEW_JOB_PREFIX}[0-9a-f]{{32}}$")
_EDIT = re.compile(r"^(add_rule|up|down|remove|add_condition|remove_condition)(?::(\d+))?(?::(\d+))?$")


@bp.url_value_preprocessor
def allow_larger_uploads(endpoint, values):
    # This runs before the CSRF check reads the form, which is when the size limit applies.
    if endpoint == "rules.edit" and current_user.is_authenticated and current_user.is_admin:
        request.max_content_length = MAX_UPLOAD_BYTES
        request.max_form_parts = 10_000


@bp.context_processor
def labels():
    return {"outcome_labels": OUTCOME_LABELS, "reason_labels": REASON_LABELS}


# -- the editor -------------------------------------------------------------------------


@bp.route("/rules", methods=["GET"])
@admin_required
def index():
    """The active rule set in the editor."""
    current = active_version(db.session)
    definition = current.definition if current else default_rules()
    form = RulesForm(formdata=None, data={**RulesForm.data_from(definition),
                                          "base_version": str(current.version) if current else ""})
    return _render(form)


@bp.route("/rules", methods=["POST"])
@admin_required
def edit():
    """Whatever button was pressed: save, preview, refresh the preview, or add/move/remove a custom rule."""
    form = RulesForm()
    action = request.form.get("action", "preview")
    edit_match = _EDIT.match(action)
    if edit_match:
        return _render(_edited(form, *edit_match.groups()))
    if action == "refresh_preview":
        return _render(form, preview_panel=_job_panel(form.preview_job.data, changes=None))

    form.validate()  # fills WTForms' own errors (the comment's length); the rules are judged below
    try:
        draft = validate(form.to_definition())
    except RuleSetInvalid as exc:
        form.show_errors(exc.errors)
        return _render(form, status=422)
    if form.errors or form.form_errors:
        return _render(form, status=422)
    if action == "save":
        return _save(form, draft)
    return _preview(form, draft)


def _edited(form: RulesForm, what: str, first: str | None, second: str | None) -> RulesForm:
    """The same draft with a custom rule or condition added, moved or removed."""
    rules = form.custom_rules_data()
    i = int(first) if first is not None else -1
    in_range = 0 <= i < len(rules)
    if what == "add_rule" and len(rules) < form.custom_rules.max_entries:
        rules.append(blank_rule())
    elif what == "up" and in_range and i > 0:
        rules[i - 1], rules[i] = rules[i], rules[i - 1]
    elif what == "down" and in_range and i < len(rules) - 1:
        rules[i + 1], rules[i] = rules[i], rules[i + 1]
    elif what == "remove" and in_range:
        del rules[i]
    elif what == "add_condition" and in_range and len(rules[i]["conditions"]) < MAX_CONDITIONS:
        rules[i]["conditions"].append(blank_condition())
    elif what == "remove_condition" and in_range and second is not None:
        j = int(second)
        if 0 <= j < len(rules[i]["conditions"]):
            del rules[i]["conditions"][j]
    data = {name: value for name, value in form.data.items() if name not in ("csrf_token", "preview_files")}
    return RulesForm(formdata=None, data={**data, "custom_rules": rules})


def _save(form: RulesForm, draft: dict):
    """A new active version, named by the admin and a comment; a version saved meanwhile is not overwritten blindly."""
    current = active_version(db.session)
    comment = (form.comment.data or "").strip()
    if not comment:
        form.comment.errors = [*form.comment.errors, "Say in a few words what changed; it shows in the versions."]
        return _render(form, status=422)
    base = form.base_version.data or ""
    if current is not None and base != str(current.version):
        form.form_errors.append(f"{current.author or 'Someone'} saved version {current.version} after you opened "
                                "this page. Look at it under Versions first; to replace it with your rules, "
                                "save again.")
        form.base_version.data = str(current.version)
        return _render(form, status=409)
    if draft == (validate(current.definition) if current else default_rules()):
        flash("Nothing changed, so no new version was saved.", "info")
        # The editor posts to #save; an explicit anchor keeps the browser from scrolling past the message.
        return redirect(url_for("rules.index", _anchor="messages"))
    version = save_version(db.session, draft, author=actor(), comment=comment)
    db.session.commit()
    flash(f"Saved as version {version.version}; the import uses it from its next batch of messages.", "success")
    return redirect(url_for("rules.history", _anchor="messages"))


# -- the preview --------------------------------------------------------------------------


def _preview(form: RulesForm, draft: dict):
    """Uploaded files are decided now; a mailbox is read by a worker (never IMAP inside a request)."""
    current = active_rules(db.session)
    changes = describe_changes(current.definition, draft)
    account = _chosen_account(form)
    if form.preview_source.data == "mailbox":
        if account is None:
            form.preview_account.errors = ["Choose the mailbox whose newest messages to preview."]
            return _render(form, status=422)
        count = form.preview_count.data
        if not isinstance(count, int) or not 1 <= count <= MAX_PREVIEW_COUNT:
            form.preview_count.errors = [f"Choose a number from 1 to {MAX_PREVIEW_COUNT}."]
            return _render(form, status=422)
        job_id = f"{PREVIEW_JOB_PREFIX}{uuid.uuid4().hex}"
        try:
            resources.get().queue.enqueue(
                jobs.preview_job, account.id, draft, count, job_id=job_id,
                description=f"preview a draft rule set on the mailbox of account {account.id}",
                job_timeout=600, result_ttl=PREVIEW_RESULT_SECONDS, failure_ttl=PREVIEW_RESULT_SECONDS)
        except RedisError:
            current_app.logger.exception("cannot queue a rules preview")
            form.form_errors.append("The job queue cannot be reached right now, so the mailbox cannot be read. "
                                    "Try again in a minute, or upload .eml files instead.")
            return _render(form, status=503)
        form.preview_job.data = job_id
        return _render(form, preview_panel=_job_panel(job_id, changes))

    uploads = [f for f in request.files.getlist(form.preview_files.name) if f and f.filename]
    if not uploads:
        form.preview_files.errors = ["Choose one or more .eml files to preview."]
        return _render(form, status=422)
    direction = Direction.SENT if form.preview_direction.data == "sent" else Direction.RECEIVED
    messages = [preview.PreviewMessage(f.filename or "", f.read(), direction) for f in uploads]
    rows = preview.preview(db.session, account, messages, current, CompiledRules(draft))
    form.preview_job.data = ""
    return _render(form, preview_panel={"state": "finished", "rows": [row.as_json() for row in rows],
                                        "changes": changes, "job": None, "error": None,
                                        "truncated": len(messages) > preview.MAX_PREVIEW_MESSAGES})


def _chosen_account(form: RulesForm) -> MailAccount | None:
    value = form.preview_account.data or ""
    return db.session.get(MailAccount, int(value)) if value.isdigit() else None


def _job_panel(job_id: str | None, changes: list[str] | None) -> dict:
    """A mailbox preview's state: waiting, running, failed, or its rows."""
    panel = {"state": "missing", "rows": [], "changes": changes, "job": None, "error": None, "truncated": False}
    if not job_id or not _JOB_ID.match(job_id):
        return panel
    panel["job"] = job_id
    current = read_job(resources.get().redis, job_id)
    if current.state == "unknown":
        return {**panel, "state": "failed", "error": "The job queue cannot be reached right now."}
    if current.job is None:
        return panel
    if current.state == "finished":
        return {**panel, "state": "finished", "rows": current.job.return_value() or []}
    if current.state == "failed":
        return {**panel, "state": "failed", "error": current.error or "The preview job stopped."}
    return {**panel, "state": "running" if current.state == "running" else "queued"}


@bp.route("/rules/preview/<job_id>.json")
@admin_required
def preview_status(job_id: str):
    """A mailbox preview's state for the page's script, with the finished table as server-rendered HTML."""
    if not _JOB_ID.match(job_id):
        raise NotFound()
    panel = _job_panel(job_id, changes=None)
    return {"state": panel["state"], "active": panel["state"] in ("queued", "running"),
            "html": render_template("rules/_preview_rows.html", panel=panel)}


# -- versions ------------------------------------------------------------------------------


@bp.route("/rules/versions")
@admin_required
def history():
    """Every version, newest first, with what it changed and a roll-back button."""
    found = versions(db.session)
    entries = []
    for i, version in enumerate(found):
        previous = found[i + 1] if i + 1 < len(found) else None
        entries.append({"version": version,
                        "changes": describe_changes(previous.definition if previous else None, version.definition),
                        "json": json.dumps(version.definition, indent=2, ensure_ascii=False)})
    return render_template("rules/versions.html", entries=entries, form=ActionForm())


@bp.route("/rules/versions/<int:version>/roll-back", methods=["POST"])
@admin_required
def roll_back_to(version: int):
    """Make an earlier version's rules active again, as a new version."""
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form has expired; try again.", "error")
        return redirect(url_for("rules.history"))
    try:
        new = roll_back(db.session, version, author=actor())
    except LookupError:
        raise NotFound() from None
    db.session.commit()
    flash(f"Rolled back: version {new.version} has the rules of version {version} and is active now.", "success")
    return redirect(url_for("rules.history"))


@bp.route("/rules/versions/restore-built-in", methods=["POST"])
@admin_required
def restore_built_in():
    """Save the built-in rules as a new version (history is kept: this too can be rolled back)."""
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form has expired; try again.", "error")
        return redirect(url_for("rules.history"))
    current = active_version(db.session)
    if current is None or validate(current.definition) == default_rules():
        flash("The built-in rules are already in use; nothing was saved.", "info")
        return redirect(url_for("rules.history"))
    new = save_version(db.session, default_rules(), author=actor(), comment="restored the built-in rules")
    db.session.commit()
    flash(f"Restored: version {new.version} has the built-in rules and is active now.", "success")
    return redirect(url_for("rules.history"))


# -- rendering ------------------------------------------------------------------------------


def _render(form: RulesForm, preview_panel: dict | None = None, status: int = 200):
    accounts = db.session.execute(select(MailAccount.id, User.email, MailAccount.host).join(User)
                                  .order_by(User.email)).all()
    form.preview_account.choices = {"": "None (uploads only)",
                                    **{str(id_): f"{email} ({host})" for id_, email, host in accounts}}
    return render_template("rules/index.html", form=form, version=active_version(db.session),
                           preview=preview_panel, has_accounts=bool(accounts)), status
