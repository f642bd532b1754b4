"""Preferences > Privacy for a mailbox; the admins' Privacy page: the capture policy, erased people and lifting."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from rolsync import erasure, privacy, services
from rolsync.extensions import db
from rolsync.web.access import actor, admin_required, subject_user
from rolsync.web.privacy import bp
from rolsync.web.privacy.forms import CapturePolicyForm, LiftForm, MailboxPrivacyForm, RetentionForm

ERASE_LABELS = (("records", "records"), ("notes", "notes"), ("documents", "documents"),
                ("ledger_entries", "import history entries (their subjects and addresses are blanked)"),
                ("warnings", "warnings"), ("intake_items", "intake items"),
                ("held_messages", "messages kept for a record to come"))


def mailbox_privacy_form(account) -> MailboxPrivacyForm:
    """The form filled from the mailbox's settings, offering only the capture levels the admins allow."""
    form = MailboxPrivacyForm(formdata=None, data={
        "visibility": account.visibility, "capture_level": privacy.capture_level(db.session, account).value,
        "private_keyword": account.private_keyword or "", "private_folder": account.private_folder or "",
    } if account else None)
    _limit_levels(form)
    return form


def _limit_levels(form: MailboxPrivacyForm) -> None:
    allowed = privacy.allowed_levels(db.session)
    form.capture_level.choices = {level.value: privacy.LEVEL_LABELS[level] for level in allowed}


@bp.route("/preferences/privacy", methods=["POST"])
@bp.route("/users/<int:user_id>/preferences/privacy", methods=["POST"])
def save_mailbox_privacy(user_id: int | None = None):
    """Save who sees the mailbox's notes, how much is kept, and what stays out."""
    from rolsync.web.preferences.routes import page_url

    user = subject_user(user_id)
    account = user.mail_account
    if account is None:
        abort(404)
    form = MailboxPrivacyForm()
    _limit_levels(form)
    if not form.validate_on_submit():
        flash("The privacy settings were not saved: " + "; ".join(
            e for errors in form.errors.values() for e in errors), "error")
        return redirect(page_url(user))
    try:
        privacy.save_mailbox_privacy(db.session, account, privacy.MailboxPrivacy(
            visibility=form.visibility.data or "", capture_level=form.capture_level.data or "",
            private_keyword=form.private_keyword.data or "", private_folder=form.private_folder.data or ""))
    except privacy.PrivacyError as exc:
        db.session.rollback()
        flash(f"The privacy settings were not saved: {exc.message}", "error")
        return redirect(page_url(user))
    db.session.commit()
    flash("The privacy settings were saved; they apply from the next import.", "success")
    return redirect(page_url(user))


def _render_admin_page(*, policy_form: CapturePolicyForm | None = None, lift_form: LiftForm | None = None,
                       retention_form: RetentionForm | None = None, status: int = 200):
    """The Privacy page, with the submitted form as it came (errors included) and the others as saved."""
    rules = privacy.policy(db.session)
    policy_form = policy_form or CapturePolicyForm(formdata=None, data={
        "capture_default": rules.capture_default, "capture_locked": rules.capture_locked})
    retention_form = retention_form or RetentionForm(formdata=None, data={"retention_months": rules.retention_months})
    return render_template("privacy/index.html", policy_form=policy_form, lift_form=lift_form or LiftForm(formdata=None),
                           retention_form=retention_form, erasures=erasure.erasures(db.session),
                           labels=ERASE_LABELS), status


@bp.route("/privacy")
@admin_required
def index():
    """The capture policy, retention, the audit of erasures (counts only), and lifting an erased address."""
    return _render_admin_page()


@bp.route("/privacy/retention", methods=["POST"])
@admin_required
def save_retention():
    form = RetentionForm()
    if not form.validate_on_submit():
        return _render_admin_page(retention_form=form, status=422)
    privacy.save_retention(db.session, form.retention_months.data, by=actor())
    db.session.commit()
    months = form.retention_months.data
    flash(f"Imported notes and documents older than {months} months will be deleted each night."
          if months else "Imported notes and documents are kept.", "success")
    return redirect(url_for("privacy.index"))


@bp.route("/privacy/capture", methods=["POST"])
@admin_required
def save_policy():
    form = CapturePolicyForm()
    if not form.validate_on_submit():
        return _render_admin_page(policy_form=form, status=422)
    try:
        privacy.save_policy(db.session, form.capture_default.data or "", bool(form.capture_locked.data), by=actor())
    except privacy.PrivacyError as exc:
        db.session.rollback()
        form.capture_default.errors = [*form.capture_default.errors, exc.message]
        return _render_admin_page(policy_form=form, status=422)
    db.session.commit()
    flash("The capture policy was saved; it applies from each mailbox's next import.", "success")
    return redirect(url_for("privacy.index"))


@bp.route("/privacy/lift", methods=["POST"])
@admin_required
def lift():
    """Allow an erased person's address again (they asked to be back)."""
    form = LiftForm()
    if not form.validate_on_submit():
        return _render_admin_page(lift_form=form, status=422)
    try:
        lifted = erasure.lift_suppression(db.session, services.get().suppression_key, form.address.data)
    except erasure.ErasureError as exc:
        form.address.errors = [*form.address.errors, exc.message]
        return _render_admin_page(lift_form=form, status=422)
    db.session.commit()
    flash("The address may be imported and loaded again." if lifted else "That address was not blocked.",
          "success" if lifted else "info")
    return redirect(url_for("privacy.index"))
