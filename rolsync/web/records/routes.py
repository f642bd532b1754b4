"""Records: the list with search, one record's timeline of notes, its documents and addresses."""
from __future__ import annotations

import csv
import io

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from rolsync import crm, erasure, privacy, resources
from rolsync.extensions import db
from rolsync.records import (
    RecordError,
    RecordFilter,
    RecordNotFound,
    add_email,
    get_document,
    get_record,
    link_held_mail,
    record_notes,
    remove_email,
    search_records,
    shared_with,
)
from rolsync.warning_queue import open_warnings_for_address
from rolsync.web.access import actor, admin_required
from rolsync.web.downloads import send_stored
from rolsync.web.firstrun.forms import CrmUploadForm
from rolsync.web.preferences.forms import sentence
from rolsync.web.privacy.routes import ERASE_LABELS
from rolsync.web.records import bp
from rolsync.web.records.forms import (
    AddEmailForm,
    EraseForm,
    RecordSearchForm,
    RemoveEmailForm,
    RemoveNoteForm,
)

KINDS = ("contact", "candidate")

# Documents a browser might render or run are always sent as plain bytes.
SAFE_INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain",
                               "text/csv", "application/zip", "application/msword",
                               "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                               "application/vnd.ms-excel",
                               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})


@bp.route("/records")
def index():
    """Contacts and candidates, searched by name, address or company."""
    form = RecordSearchForm(formdata=request.args)
    kind = form.kind.data if form.kind.data in KINDS else None
    page = request.args.get("page", 1, type=int) or 1
    found = search_records(db.session, RecordFilter(text=form.q.data or "", kind=kind), page, viewer=current_user)
    return render_template("records/index.html", form=form, page=found, upload_form=CrmUploadForm(),
                           args={k: v for k, v in request.args.items() if k != "page"})


def _record(kind: str, record_id: int):
    """The record from the URL, or 404."""
    if kind not in KINDS:
        abort(404)
    try:
        return get_record(db.session, kind, record_id)
    except RecordNotFound:
        abort(404)


def _render_record(record, add_form: AddEmailForm, status: int = 200):
    """The record page, with the address form as submitted (errors included)."""
    return render_template("records/show.html", record=record, notes=record_notes(db.session, record, current_user),
                           add_form=add_form, remove_form=RemoveEmailForm(), remove_note_form=RemoveNoteForm(),
                           level_labels=privacy.NOTE_LEVEL_LABELS,
                           shared=shared_with(db.session, record)), status


@bp.route("/records/<kind>/<int:record_id>")
def show(kind: str, record_id: int):
    """A record: its details and addresses, and its notes as a timeline with their documents."""
    return _render_record(_record(kind, record_id), AddEmailForm(formdata=None))


@bp.route("/records/<kind>/<int:record_id>/emails", methods=["POST"])
def add_address(kind: str, record_id: int):
    """Add an address; mail the rules kept for it lands on the record now."""
    record = _record(kind, record_id)
    form = AddEmailForm()
    if not form.validate_on_submit():
        return _render_record(record, form, 422)
    try:
        email = add_email(db.session, record, form.address.data, resources.get().suppression_key)
    except RecordError as exc:
        db.session.rollback()
        form.address.errors = [*form.address.errors, sentence(str(exc))]
        return _render_record(record, form, 422)
    linked = link_held_mail(db.session, resources.get().documents, email.address, current_user,
                            queue=resources.get().queue)
    db.session.commit()
    flash(f"{email.address} was added.", "success")
    if linked:
        flash(f"{linked} message{'s' if linked != 1 else ''} kept for this address "
              f"{'are' if linked != 1 else 'is'} now on the record.", "success")
    others = shared_with(db.session, record).get(email.address)
    if others:
        flash(f"{', '.join(r.name for r in others)} also {'has' if len(others) == 1 else 'have'} this address, so "
              "mail from it will wait in Warnings until one record is chosen.", "info")
    return redirect(url_for("records.show", kind=kind, record_id=record_id))


@bp.route("/records/<kind>/<int:record_id>/emails/<int:email_id>/remove", methods=["POST"])
def remove_address(kind: str, record_id: int, email_id: int):
    """Remove an address; if it settles a duplicate, point to the warning's Retry."""
    record = _record(kind, record_id)
    if not RemoveEmailForm().validate_on_submit():
        abort(400)
    try:
        address = remove_email(db.session, record, email_id)
    except RecordError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("records.show", kind=kind, record_id=record_id))
    db.session.commit()
    flash(f"{address} was removed from {record.name}.", "success")
    waiting = [w for w in open_warnings_for_address(db.session, address)
               if current_user.is_admin or w.user_id == current_user.id]
    if waiting:
        # The duplicate may be gone now: the queue's Retry imports the kept message.
        flash(f"{len(waiting)} open warning{'s are' if len(waiting) != 1 else ' is'} about {address}. "
              "If the address now belongs to one record, open Warnings and choose Retry to import the message.",
              "info")
    return redirect(url_for("records.show", kind=kind, record_id=record_id))


@bp.route("/records/<kind>/<int:record_id>/notes/<int:note_id>/remove", methods=["POST"])
def remove_note(kind: str, record_id: int, note_id: int):
    """Remove a note that came from one's own mailbox; the import will not bring it back."""
    _record(kind, record_id)
    if not RemoveNoteForm().validate_on_submit():
        abort(400)
    try:
        privacy.remove_note(db.session, resources.get().documents, current_user, note_id)
    except privacy.PrivacyError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("The note was removed; rolsync will not import that message again.", "success")
    return redirect(url_for("records.show", kind=kind, record_id=record_id))


@bp.route("/records/<kind>/<int:record_id>/erase", methods=["GET", "POST"])
@admin_required
def erase(kind: str, record_id: int):
    """Erase a person: first the counts of what goes, then (on confirming) everything, and the address is blocked."""
    record = _record(kind, record_id)
    plan = erasure.plan_record_erasure(db.session, record)
    form = EraseForm()
    if form.validate_on_submit():
        svc = resources.get()
        audit = erasure.erase_person(db.session, svc.documents, svc.suppression_key, plan, erased_by=actor())
        counts = audit.counts
        flash(f"The person was erased: {counts['notes']} notes, {counts['documents']} documents and "
              f"{counts['warnings']} warnings are gone, and their address{'es are' if len(plan.addresses) != 1 else ' is'}"
              " blocked from imports and loads.", "success")
        return redirect(url_for("privacy.index"))
    counts = plan.counts.as_json()
    return render_template("records/erase.html", record=record, form=form, plan=plan,
                           counts=[(label, counts[key]) for key, label in ERASE_LABELS])


@bp.route("/documents/<int:document_id>")
def download(document_id: int):
    """A document, always as a download (Content-Disposition: attachment) and never sniffed."""
    try:
        document = get_document(db.session, document_id, current_user)
    except RecordNotFound:
        abort(404)
    store = resources.get().documents
    if not store.exists(document.sha256):
        abort(404)
    content_type = document.content_type.lower().split(";")[0].strip()
    mimetype = content_type if content_type in SAFE_INLINE_TYPES else "application/octet-stream"
    response = send_stored(store, document.sha256, mimetype=mimetype,
                           download_name=document.filename or f"document-{document.id}", etag=document.sha256)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Mail content: never kept by a browser's or a proxy's cache.
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/records/load", methods=["POST"])
@admin_required
def load_csv():
    """Load records from an uploaded CSV with the loader of `flask crm load` (a bad file changes nothing)."""
    form = CrmUploadForm()
    back = _safe_back(request.form.get("next")) or url_for("records.index")
    upload = form.file.data if form.validate_on_submit() else None
    if upload is None or not getattr(upload, "filename", ""):
        flash("Choose a CSV file to load.", "error")
        return redirect(back)
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        flash("The file is not a UTF-8 CSV file; nothing was loaded. Save it as CSV (UTF-8) and try again.",
              "error")
        return redirect(back)
    try:
        rows = crm.read_rows(csv.DictReader(io.StringIO(text, newline="")))
    except (crm.CrmLoadError, csv.Error) as exc:
        flash(f"Nothing was loaded: {exc}.", "error")
        return redirect(back)
    added, unchanged = crm.load_rows(db.session, rows, resources.get().documents)
    db.session.commit()
    flash(f"Loaded {added} new record{'s' if added != 1 else ''}"
          f"{f'; {unchanged} were already there' if unchanged else ''}.", "success")
    return redirect(back)


def _safe_back(target: str | None) -> str | None:
    """Only a path on this site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target
