"""/setup while no admin exists (guarded by the token printed on the console), and /welcome's first steps."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from rolsync import accounts, firstrun
from rolsync.extensions import db
from rolsync.models import Candidate, Contact, User
from rolsync.web import sessions
from rolsync.web.firstrun import bp
from rolsync.web.firstrun.forms import CrmUploadForm, SetupForm
from rolsync.web.preferences.forms import sentence


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the first admin; gone (404) once an admin exists, refused (403) without the current token."""
    if not firstrun.needs_setup(db.session):
        abort(404)
    form = SetupForm()
    token = request.args.get("token") if request.method == "GET" else form.token.data
    if not firstrun.token_matches(current_app.instance_path, token):
        return render_template("firstrun/setup.html", form=None, refused=firstrun.SetupTokenInvalid()), 403
    form.token.data = token
    status = 200
    if form.is_submitted():
        status = 422
        valid = form.validate()
        problems = accounts.new_user_problems(db.session, form.email.data or "", form.password.data or "")
        fields = {"email": form.email, "password": form.password}
        for problem in problems:
            field = fields.get(problem.field or "")
            if field is not None and not field.errors:
                field.errors = [*field.errors, sentence(str(problem))]
        if valid and not problems:
            try:
                user = firstrun.create_first_admin(db.session, current_app.instance_path, token, firstrun.FirstAdmin(
                    email=form.email.data, password=form.password.data, name=form.name.data or ""))
            except firstrun.SetupClosed:
                db.session.rollback()
                abort(404)
            except firstrun.SetupTokenInvalid as exc:
                db.session.rollback()
                return render_template("firstrun/setup.html", form=None, refused=exc), 403
            except accounts.AccountError as exc:
                db.session.rollback()
                form.form_errors.append(sentence(str(exc)))
            else:
                db.session.commit()
                firstrun.setup_done(current_app.instance_path)
                sessions.sign_in(db.session, user)
                flash("Your admin account is ready, and you are signed in.", "success")
                return redirect(url_for("firstrun.welcome"))
    return render_template("firstrun/setup.html", form=form, refused=None), status


def _record_count() -> int:
    return (db.session.scalar(select(func.count(Contact.id))) or 0) + \
        (db.session.scalar(select(func.count(Candidate.id))) or 0)


@bp.route("/welcome")
def welcome():
    """Getting started: your mailbox, the CRM's records, Test Connection; each step says whether it is done."""
    user: User = current_user._get_current_object()
    account = user.mail_account
    return render_template("firstrun/welcome.html", account=account, records=_record_count(),
                           upload_form=CrmUploadForm())
