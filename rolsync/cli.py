"""The `flask` commands of CONTRACT §2: thin wrappers over the domain code."""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from rolsync import accounts, crm, jobs, metrics, resources, schedule, stored_secrets
from rolsync.crypto import SecretUnreadable
from rolsync.extensions import db
from rolsync.mail.errors import MailError
from rolsync.mail.imap import test_connection
from rolsync.models import Candidate, Contact, ImportWarning, Note, Role, User
from rolsync.rules import RuleSetInvalid
from rolsync.rules.store import active_rules, save_version

users_cli = AppGroup("users", help="Manage the people who sign in.")
crm_cli = AppGroup("crm", help="Load contacts and candidates.")
mail_cli = AppGroup("mail", help="Mailbox settings, connection tests and imports.")
rules_cli = AppGroup("rules", help="The import rules as JSON.")
notes_cli = AppGroup("notes", help="The notes the import made.")
warnings_cli = AppGroup("warnings", help="The warning queue.")
secrets_cli = AppGroup("secrets", help="The encrypted mailbox passwords and tokens.")
records_cli = AppGroup("records", help="Contacts and candidates: their past mail, erasing a person.")


def _read_secret_from_stdin(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise click.ClickException(f"no {what} on standard input")
    return value


def _user(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with the e-mail {email}; add one with `flask users create`")
    return user


def _account(email: str):
    user = _user(email)
    if user.mail_account is None:
        raise click.ClickException(f"{user.email} has no mailbox settings; save them with `flask mail configure`")
    return user.mail_account


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@users_cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--name", default="", help="The user's name as the panel shows it.")
def create_user(email: str, password_stdin: bool, admin: bool, name: str) -> None:
    """Add a user who can sign in."""
    password = _read_secret_from_stdin("password")
    try:
        user = accounts.create_user(db.session, email, password, name=name,
                                    role=Role.ADMIN if admin else Role.USER)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Created {user.role} {user.email}")


@crm_cli.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def load_crm(file: str) -> None:
    """Load contacts and candidates from a CSV file (kind,name,email,company)."""
    with open(file, newline="", encoding="utf-8-sig") as fh:
        try:
            rows = crm.read_rows(csv.DictReader(fh))
        except crm.CrmLoadError as exc:
            raise click.ClickException(str(exc)) from exc
    rows, erased = crm.without_suppressed(db.session, resources.get().suppression_key, rows)
    added, unchanged = crm.load_rows(db.session, rows, resources.get().documents)
    db.session.commit()
    click.echo(f"Loaded {added} new record(s); {unchanged} already present")
    if erased:
        click.echo(f"Left out {erased} row(s) whose address belongs to an erased person "
                   "(an admin can lift that on the Privacy page)", err=True)


@mail_cli.command("configure")
@click.argument("email")
@click.option("--host", required=True, help="IMAP server host name.")
@click.option("--port", type=int, default=993, show_default=True)
@click.option("--security", type=click.Choice(["ssl", "starttls"]), default="ssl", show_default=True)
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="PEM file of a company CA that signs the server's certificate.")
def configure_mail(email, host, port, security, username, password_stdin, ca_file) -> None:
    """Save a user's mailbox settings; the password is stored encrypted."""
    password = _read_secret_from_stdin("password")
    ca_pem = None
    if ca_file:
        with open(ca_file, encoding="ascii", errors="replace") as fh:
            ca_pem = fh.read()
    try:
        accounts.configure_mailbox(
            db.session, resources.get().secrets, _user(email),
            accounts.MailboxForm(host=host, port=port, security=security, username=username,
                                 password=password, ca_pem=ca_pem),
            actor="flask mail configure",
        )
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Saved the mailbox settings of {email}")


@mail_cli.command("test")
@click.argument("email")
def test_mail(email: str) -> None:
    """Connect and log in: `Mailbox connection successful`, or what is wrong."""
    account = _account(email)
    try:
        settings = resources.get().imap_settings(account, 15)
    except SecretUnreadable as exc:
        raise click.ClickException(f"secret_unreadable: {SecretUnreadable.message}; or, if the encryption key "
                                   "changed, put the old key back in ROLSYNC_ENCRYPTION_KEYS") from exc
    report = test_connection(settings)
    if not report.ok:
        # Once, on stderr, on one line: the stable code first (scripts match it), then the words.
        hint = f" {report.hint}" if report.hint else ""
        click.echo(f"Error: {report.code}: {report.message}{hint}".replace("\n", " "), err=True)
        sys.exit(1)
    click.echo(report.message)
    if report.hint:
        click.echo(f"Hint: {report.hint}")
    for warning in report.warnings:
        click.echo(f"Warning: {warning.code}: {warning.message}")


@mail_cli.command("import")
@click.argument("email")
def import_mail(email: str) -> None:
    """Import everything new for the user now, in this process."""
    from redis.exceptions import RedisError

    from rolsync.importer import ImportLimits, UidValidityUnstable, import_until_caught_up

    account = _account(email)
    svc = resources.get()
    config = svc.config
    # Share the workers' per-mailbox lock when Redis is there, kept alive as a
    # job keeps it; without Redis the import still runs (and stays idempotent).
    seconds = config["IMPORT_LOCK_SECONDS"]
    lock = svc.redis.lock(jobs.lock_key(account.id), timeout=seconds, blocking_timeout=seconds * 2,
                          thread_local=False)
    try:
        locked = lock.acquire()
    except RedisError:
        locked = None
    if locked is False:
        raise click.ClickException("another import of this mailbox is running; try again when it has finished")
    keeper = jobs.LockKeeper(lock, seconds, svc.redis).start() if locked else None
    # "Everything new now": no time limit, unlike a job's run.
    limits = dataclasses.replace(ImportLimits.from_config(config), run_seconds=None)
    try:
        total = import_until_caught_up(
            db.session, account, secrets=svc.secrets, store=svc.documents, providers=svc.oauth_providers,
            limits=limits, progress=keeper.progress_check(account.id) if keeper else None,
            host_policy=svc.host_policy, observe=functools.partial(metrics.observed, svc.redis, svc.queue.name))
    except MailError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    except (UidValidityUnstable, jobs.ImportLockLost) as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        if keeper is not None:
            keeper.stop()
            try:
                lock.release()
            except RedisError:  # LockError included: it expired, nothing of ours to release
                pass
    click.echo(json.dumps(total.as_json(), ensure_ascii=False))


@mail_cli.command("reconcile")
@click.argument("email")
def reconcile_mail(email: str) -> None:
    """The server's count of each folder at the last poll set against what rolsync did with each message."""
    from rolsync import reconcile

    account = _account(email)
    _print_json(reconcile.report(db.session, account))


@mail_cli.command("enqueue")
@click.argument("email", required=False)
@click.option("--all", "all_accounts", is_flag=True, help="Every enabled mailbox.")
def enqueue_mail(email: str | None, all_accounts: bool) -> None:
    """Put an import job on the queue for the user (or every enabled mailbox)."""
    if bool(email) == all_accounts:
        raise click.ClickException("give either an EMAIL or --all")
    if not all_accounts:
        account = _account(email or "")
        job, created = jobs.enqueue_import(resources.get().queue, account.id)
        click.echo(job.id)
        if not created:
            click.echo(f"{account.user.email}: an import is already {_job_words(job)}; not queued twice",
                       err=True)
        return
    # --all: one readable line per mailbox (the job ids serve no one reading a list).
    accounts_to_run = schedule.enabled_accounts(db.session)
    if not accounts_to_run:
        click.echo("No enabled mailbox to import.")
    for account in accounts_to_run:
        job, created = jobs.enqueue_import(resources.get().queue, account.id)
        click.echo(f"{account.user.email}: " + ("import queued" if created
                                                 else f"an import is already {_job_words(job)}; not queued twice"))


def _job_words(job) -> str:
    """'queued', 'running' or 'waiting to retry' for an RQ job, in words."""
    status = str(getattr(job.get_status(), "value", job.get_status()) or "queued")
    return {"started": "running", "scheduled": "waiting to retry", "deferred": "queued"}.get(status, status)


@users_cli.command("setup-url")
@click.option("--url", "base", default=None, metavar="URL",
              help="The panel's address (default: ROLSYNC_PUBLIC_URL, else http://127.0.0.1:5000).")
def setup_url(base: str | None) -> None:
    """While no admin exists: print the one-time address that creates the first admin (a new token each time)."""
    from flask import current_app

    from rolsync import firstrun

    base = (base or current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
    if not firstrun.needs_setup(db.session):
        firstrun.forget_token(current_app.instance_path)
        click.echo(f"rolsync has an admin; sign in at {base}/login")
        return
    token = firstrun.issue_token(current_app.instance_path)
    click.echo(f"rolsync has no admin yet. Create the first one (this address works once): {base}/setup?token={token}")


@rules_cli.command("export")
def export_rules() -> None:
    """Print the active rule set as JSON."""
    _print_json(active_rules(db.session).definition)


@rules_cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_rules(file) -> None:
    """Make the rule set in FILE the active one (a bad file changes nothing)."""
    try:
        data = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise click.ClickException(f"{file.name} nests too deeply to be a rule set; the rule set was not changed"
                                   ) from exc
    try:
        version = save_version(db.session, data, author="flask rules import", comment=f"imported from {file.name}")
    except RuleSetInvalid as exc:
        db.session.rollback()
        raise click.ClickException(f"the rule set was not changed: {exc}") from exc
    except RecursionError as exc:
        db.session.rollback()
        raise click.ClickException(f"{file.name} nests too deeply to be a rule set; the rule set was not changed"
                                   ) from exc
    db.session.commit()
    click.echo(f"Rule set version {version.version} is now active")


@notes_cli.command("export")
@click.option("--visible-to", "visible_to", metavar="EMAIL",
              help="Only the notes this user may see in the panel (private mailboxes' notes are left out "
                   "unless they are the user's own or the user is an admin).")
def export_notes(visible_to: str | None) -> None:
    """Print notes as JSON: every note of every mailbox, private mailboxes' included, unless --visible-to."""
    from rolsync.privacy import note_visible

    viewer = _user(visible_to) if visible_to else None
    notes = db.session.scalars(select(Note).where(note_visible(viewer)).order_by(Note.id))
    _print_json([_note_json(note) for note in notes])


def _record_email(record: Contact | Candidate) -> str | None:
    addresses = sorted(record.emails, key=lambda e: e.id)
    return addresses[0].address if addresses else None


def _note_json(note: Note) -> dict:
    record = note.record
    return {
        "record_kind": record.kind.value,
        "record_id": record.id,
        "record_email": _record_email(record),
        "user": note.user.email,
        "folder": note.folder,
        "message_id": note.message_id,
        "subject": note.subject,
        "direction": note.direction,
        "date": note.sent_at.isoformat() if note.sent_at else None,
        "from": note.from_addr,
        "to": note.to_addrs,
        "cc": note.cc_addrs,
        "body": note.body,
        "capture_level": note.capture_level,
        "documents": [
            {"filename": d.filename, "content_type": d.content_type, "size": d.size, "sha256": d.sha256}
            for d in note.documents
        ],
    }


@warnings_cli.command("export")
def export_warnings() -> None:
    """Print every warning as JSON."""
    warnings = db.session.scalars(select(ImportWarning).order_by(ImportWarning.id))
    _print_json([
        {
            "kind": w.kind,
            "user": w.user.email,
            "message_id": w.message_id,
            "subject": w.subject,
            "address": w.address,
            "records": w.records or [],
            "status": w.status,
            "detail": w.detail,
        }
        for w in warnings
    ])


@secrets_cli.command("rotate")
def rotate_secrets() -> None:
    """Re-encrypt every stored secret with the newest key (the first of ROLSYNC_ENCRYPTION_KEYS)."""
    result = stored_secrets.rotate_all(db.session, resources.get().secrets)
    db.session.commit()
    click.echo(f"Re-encrypted {result.rotated} secret(s) with the newest key")
    if result.unreadable:
        click.echo(f"{result.unreadable} secret(s) could not be read with any configured key and were left as "
                   "they are: keep the key they need, or have those mailboxes saved again", err=True)
        sys.exit(1)



COUNT_LABELS = {
    "records": "records", "notes": "notes", "documents": "documents", "ledger_entries": "ledger entries",
    "warnings": "warnings", "intake_items": "intake items", "held_messages": "held messages",
}


@records_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Erase without asking.")
def erase_record(email: str, yes: bool) -> None:
    """Erase the person with this address: records, notes, documents, mail traces; then suppress the address."""
    from rolsync import erasure

    try:
        plan = erasure.plan_erasure(db.session, email)
    except erasure.ErasureError as exc:
        raise click.ClickException(f"{exc.message} {exc.hint}".strip()) from exc
    counts = plan.counts.as_json()
    for key, label in COUNT_LABELS.items():
        click.echo(f"{label}: {counts[key]}")
    if not yes and not click.confirm("Erase all of this for good?", default=False):
        raise click.ClickException("nothing was erased")
    svc = resources.get()
    audit = erasure.erase_person(db.session, svc.documents, svc.suppression_key, plan, erased_by="flask records erase")
    click.echo(f"Erased; the address is now suppressed (erasure {audit.id})")


@records_cli.command("backfill")
@click.argument("email")
@click.option("--user", "user_email", required=True, help="Whose mailbox to search.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Only mail from this day on (YYYY-MM-DD).")
def backfill_record_cli(email: str, user_email: str, since) -> None:
    """Import the past mail of the record with address EMAIL from USER's mailbox, in this process."""
    from rolsync.backfill import BackfillError, backfill_record
    from rolsync.mail.parse import normalise_address
    from rolsync.matching import find_records
    from rolsync.models import RecordKind

    address = normalise_address(email)
    matches = find_records(db.session, [address or ""]).get(address or "")
    records = (matches.contacts or matches.candidates) if matches else []
    if not records:
        raise click.ClickException(f"no contact or candidate has the address {email}")
    if len(records) > 1:
        raise click.ClickException(f"{email} belongs to {len(records)} records; remove the duplicate first")
    ref = records[0]
    record = db.session.get(Contact, ref.id) if ref.kind is RecordKind.CONTACT else db.session.get(Candidate, ref.id)
    if record is None:
        raise click.ClickException(f"no contact or candidate has the address {email}")
    account = _account(user_email)
    svc = resources.get()
    config = svc.config
    try:
        result = backfill_record(db.session, account, record, since=since.date() if since else None,
                                 secrets=svc.secrets, store=svc.documents, redis=svc.redis,
                                 queue_name=svc.queue.name, lock_seconds=config["IMPORT_LOCK_SECONDS"],
                                 fetch_batch=config["IMPORT_FETCH_BATCH"], timeout=config["IMAP_TIMEOUT"],
                                 providers=svc.oauth_providers, host_policy=svc.host_policy)
    except BackfillError as exc:
        raise click.ClickException(f"{exc} {exc.hint}".strip()) from exc
    except MailError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_json()))


def register_commands(app: Flask) -> None:
    for group in (users_cli, crm_cli, mail_cli, rules_cli, notes_cli, warnings_cli, secrets_cli, records_cli):
        app.cli.add_command(group)
