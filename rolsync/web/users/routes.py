"""Users: list, add, change role or name, switch off, reset a password. Admins only."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, session, url_for
from flask_login import current_user
from sqlalchemy import func, select

from rolsync import accounts
from rolsync.extensions import db
from rolsync.models import ImportWarning, Role, User, WarningStatus
from rolsync.web import sessions
from rolsync.web.access import admin_required
from rolsync.web.preferences.forms import sentence
from rolsync.web.setup import password_fingerprint
from rolsync.web.users import bp
from rolsync.web.users.forms import EditUserForm, NewUserForm, ResetPasswordForm


def _field_error(form, exc: accounts.AccountError, fields: dict) -> None:
    """Show a refused value next to its field (or above the form)."""
    field = fields.get(exc.field or "")
    if field is not None:
        field.errors = [*field.errors, sentence(str(exc))]
    else:
        form.form_errors.append(sentence(str(exc)))


@bp.route("/users")
@admin_required
def index():
    """Every user with their role, access, mailbox and open warnings."""
    users = list(db.session.scalars(select(User).order_by(func.lower(User.email))))
    open_by_user = dict(db.session.execute(
        select(ImportWarning.user_id, func.count(ImportWarning.id))
        .where(ImportWarning.status == WarningStatus.OPEN.value).group_by(ImportWarning.user_id)).all())
    return render_template("users/index.html", users=users, open_by_user=open_by_user)


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def new():
    """Add a user through accounts.create_user, as `flask users create` does."""
    form = NewUserForm()
    if form.is_submitted():
        valid = form.validate()
        # Every refused value at once: the form's own checks and the accounts' checks together.
        problems = accounts.new_user_problems(db.session, form.email.data or "", form.password.data or "")
        fields = {"email": form.email, "password": form.password}
        for problem in problems:
            field = fields.get(problem.field or "")
            if field is not None and not field.errors:
                _field_error(form, problem, fields)
        if valid and not problems:
            try:
                user = accounts.create_user(db.session, form.email.data, form.password.data,
                                            name=form.name.data or "", role=Role(form.role.data))
            except accounts.AccountError as exc:
                db.session.rollback()
                _field_error(form, exc, fields)
            else:
                db.session.commit()
                flash(f"{user.email} can now sign in.", "success")
                return redirect(url_for("users.edit", user_id=user.id))
    status = 422 if form.is_submitted() else 200
    return render_template("users/new.html", form=form), status


def _user(user_id: int) -> User:
    """The user from the URL, or 404."""
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _render_edit(user: User, form: EditUserForm | None = None, reset: ResetPasswordForm | None = None,
                 status: int = 200):
    """The user's page with both forms, either as submitted (with errors) or fresh."""
    form = form or EditUserForm(formdata=None, obj=user)
    return render_template("users/edit.html", user=user, form=form,
                           reset_form=reset or ResetPasswordForm(formdata=None)), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def edit(user_id: int):
    """Change a user's name, role and whether they may sign in."""
    user = _user(user_id)
    form = EditUserForm(obj=user)
    if form.validate_on_submit():
        try:
            accounts.update_user(db.session, user, name=form.name.data or "", role=Role(form.role.data),
                                 active=bool(form.active.data))
        except accounts.AccountError as exc:
            db.session.rollback()
            _field_error(form, exc, {"role": form.role})
            return _render_edit(user, form, status=422)
        db.session.commit()
        flash(f"{user.email} was saved.", "success")
        return redirect(url_for("users.edit", user_id=user.id))
    if form.is_submitted():
        return _render_edit(user, form, status=422)
    return _render_edit(user)


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@admin_required
def reset_password(user_id: int):
    """Set a new password for a user; their other sessions end."""
    user = _user(user_id)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(db.session, user, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            _field_error(form, exc, {"password": form.password})
            return _render_edit(user, reset=form, status=422)
        sessions.end_others(db.session, user)
        db.session.commit()
        if user.id == current_user.id:
            session["password_fp"] = password_fingerprint(user)
        flash(f"The password of {user.email} was reset.", "success")
        return redirect(url_for("users.edit", user_id=user.id))
    return _render_edit(user, reset=form, status=422)
