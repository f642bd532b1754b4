"""The command line of CONTRACT §2: names, exit codes, one-line errors, and what each changes."""
from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import func, select

from rolsync.extensions import db
from rolsync.models import Candidate, Contact, RuleSetVersion, User


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_users_create_hashes_the_password_and_refuses_bad_input(sqlite_app):
    result = run(sqlite_app, "users", "create", "Admin@Agency.example", "--password-stdin", "--admin",
                 "--name", "Ada Admin", input="correct horse\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert (user.email, user.name, user.role) == ("admin@agency.example", "Ada Admin", "admin")
    assert user.password_hash != "correct horse" and user.check_password("correct horse")

    again = run(sqlite_app, "users", "create", "admin@agency.example", "--password-stdin", input="another one\n")
    assert again.exit_code != 0 and "already exists" in again.output
    short = run(sqlite_app, "users", "create", "b@agency.example", "--password-stdin", input="short\n")
    assert short.exit_code != 0 and "at least 12" in short.output
    for weak in ("password", "password1234", "Welcome2024!", "123456789012", "aaaaaaaaaaaa", "b@agency.example"):
        refused = run(sqlite_app, "users", "create", "b@agency.example", "--password-stdin", input=weak + "\n")
        assert refused.exit_code != 0 and refused.output.count("\n") == 1, weak
        assert "at least 12" in refused.output or "among the first ones guessers try" in refused.output, weak
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_crm_load_is_idempotent_and_a_bad_file_changes_nothing(app, tmp_path):
    good = tmp_path / "crm.csv"
    good.write_text("kind,name,email,company\n"
                    "contact,Carol Client,Carol@Client.example,Client Ltd\n"
                    "candidate,Cathy Candidate,cathy@candidates.example,\n")
    first = run(app, "crm", "load", str(good))
    assert first.exit_code == 0, first.output
    assert "2 new" in first.output
    second = run(app, "crm", "load", str(good))
    assert second.exit_code == 0 and "0 new" in second.output
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 1
    assert db.session.scalar(select(func.count()).select_from(Candidate)) == 1
    contact = db.session.scalar(select(Contact))
    assert contact.emails[0].address == "carol@client.example" and contact.company.name == "Client Ltd"

    bad = tmp_path / "bad.csv"
    bad.write_text("kind,name,email,company\ncontact,New Person,new@client.example,X\nlead,Who,who@x.example,\n")
    result = run(app, "crm", "load", str(bad))
    assert result.exit_code != 0 and "line 3" in result.output
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 1

    header = tmp_path / "header.csv"
    header.write_text("name,email\nA,a@b.example\n")
    assert run(app, "crm", "load", str(header)).exit_code != 0


def test_rules_round_trip_and_a_bad_file_changes_nothing(app, tmp_path):
    exported = run(app, "rules", "export")
    assert exported.exit_code == 0
    rules = json.loads(exported.output)
    assert rules["first_run"] == {"inbox": 100, "sent": 100, "inbox_since": None, "sent_since": None}
    rules["first_run"]["inbox"] = 25
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    assert run(app, "rules", "import", str(path)).exit_code == 0
    assert json.loads(run(app, "rules", "export").output) == rules

    for content in ("{not json", json.dumps({**rules, "images": {"mode": "sometimes"}})):
        path.write_text(content)
        result = run(app, "rules", "import", str(path))
        assert result.exit_code != 0
        assert "images.mode" in result.output or "not valid JSON" in result.output
    assert json.loads(run(app, "rules", "export").output) == rules
    assert db.session.scalar(select(func.count()).select_from(RuleSetVersion)) == 1


def test_rules_import_of_deeply_nested_json_is_a_one_line_error(app, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    result = run(app, "rules", "import", str(path))
    assert result.exit_code == 1
    assert "nests too deeply" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, RecursionError)
    assert db.session.scalar(select(func.count()).select_from(RuleSetVersion)) == 0


def test_mail_configure_refuses_bad_values_with_a_message(sqlite_app, tmp_path):
    run(sqlite_app, "users", "create", "jo@agency.example", "--password-stdin", input="jo-password-123\n")
    base = ["mail", "configure", "jo@agency.example", "--username", "jo@agency.example", "--password-stdin"]
    bad_host = run(sqlite_app, *base, "--host", "imap example com", input="x\n")
    assert bad_host.exit_code != 0 and "server name" in bad_host.output
    bad_port = run(sqlite_app, *base, "--host", "imap.agency.example", "--port", "70000", input="x\n")
    assert bad_port.exit_code != 0 and "1 to 65535" in bad_port.output
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    bad_ca = run(sqlite_app, *base, "--host", "imap.agency.example", "--ca-file", str(ca), input="x\n")
    assert bad_ca.exit_code != 0 and "PEM" in bad_ca.output
    nobody = run(sqlite_app, "mail", "configure", "nobody@agency.example", "--host", "imap.agency.example",
                 "--username", "u", "--password-stdin", input="x\n")
    assert nobody.exit_code != 0 and "no user" in nobody.output


def test_mail_test_reports_success_and_a_wrong_password(consultant, tmp_path):
    ok = consultant.cli("mail", "test", consultant.email)
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[0] == "Mailbox connection successful"

    wrong = consultant.cli("mail", "configure", consultant.email, "--host", consultant.dovecot.host,
                           "--port", str(consultant.dovecot.ssl_port), "--username", consultant.username,
                           "--password-stdin", "--ca-file", str(tmp_path / "ca.pem"), input="wrong-password\n")
    assert wrong.exit_code == 0
    failed = consultant.cli("mail", "test", consultant.email)
    assert failed.exit_code == 1
    assert "auth_failed" in failed.output
    assert "wrong-password" not in failed.output
    # Once, on stderr, on one line: nothing on stdout for a script to mistake for a result.
    assert failed.stdout == "" and len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("Error: auth_failed: The mail server did not accept")


def test_mail_test_over_starttls(app, dovecot, tmp_path):
    from tests.conftest import make_consultant

    consultant = make_consultant(app, dovecot, tmp_path, security="starttls")
    result = consultant.cli("mail", "test", consultant.email)
    assert result.exit_code == 0, result.output
    assert "Mailbox connection successful" in result.output


def test_a_certificate_the_system_does_not_trust_is_a_tls_error(app, dovecot, tmp_path):
    from tests.conftest import make_consultant

    consultant = make_consultant(app, dovecot, tmp_path, ca=False)
    result = consultant.cli("mail", "test", consultant.email)
    assert result.exit_code == 1
    assert "tls_error" in result.output


def test_mail_import_for_an_unknown_user_fails_with_one_line(sqlite_app):
    result = run(sqlite_app, "mail", "import", "nobody@agency.example")
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0 and "no user" in result.output


def test_rolling_back_makes_an_earlier_version_active_as_a_new_version(app):
    from rolsync.rules import default_rules
    from rolsync.rules.store import active_version, roll_back, save_version, versions

    first = default_rules()
    second = default_rules()
    second["images"]["mode"] = "keep"
    save_version(db.session, first, author="ada@agency.example", comment="start")
    save_version(db.session, second, author="ada@agency.example", comment="keep images")
    roll_back(db.session, 1, author="bob@agency.example")
    db.session.commit()
    assert [v.version for v in versions(db.session)] == [3, 2, 1]
    current = active_version(db.session)
    assert (current.version, current.definition["images"]["mode"], current.comment) == (
        3, "exclude_all", "rolled back to version 1")
    assert sum(v.active for v in versions(db.session)) == 1


def test_setup_url_prints_a_new_one_time_address_until_an_admin_exists(sqlite_app):
    first = run(sqlite_app, "users", "setup-url", "--url", "http://127.0.0.1:5050")
    assert first.exit_code == 0
    token = re.search(r"http://127\.0\.0\.1:5050/setup\?token=([\w-]+)$", first.output.strip()).group(1)
    stored = (Path(sqlite_app.instance_path) / "setup-token.sha256").read_text()
    assert token not in stored
    second = run(sqlite_app, "users", "setup-url", "--url", "http://127.0.0.1:5050")
    assert token not in second.output  # a new token each time; the old one is dead
    assert (Path(sqlite_app.instance_path) / "setup-token.sha256").read_text() != stored

    created = run(sqlite_app, "users", "create", "boss@agency.example", "--password-stdin", "--admin",
                  input="a-long-password\n")
    assert created.exit_code == 0
    after = run(sqlite_app, "users", "setup-url", "--url", "http://127.0.0.1:5050")
    assert after.exit_code == 0 and "setup" not in after.output and "has an admin" in after.output
    assert not (Path(sqlite_app.instance_path) / "setup-token.sha256").exists()


def test_mail_test_with_an_unreadable_secret_is_a_one_line_error(consultant):
    from rolsync.models import MailAccount

    account = db.session.scalar(select(MailAccount))
    account.password_encrypted = "gAAAAABnot-a-token-under-these-keys"
    db.session.commit()
    result = consultant.cli("mail", "test", consultant.email)
    assert result.exit_code == 1
    assert result.output.startswith("Error: secret_unreadable: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_secrets_rotate_re_encrypts_everything_under_the_newest_key(consultant, monkeypatch):
    """Put a new key first, rotate, drop the old key: every mailbox still opens."""
    from cryptography.fernet import Fernet

    from rolsync import create_app, resources
    from rolsync.models import MailAccount
    from tests.conftest import ENCRYPTION_KEY

    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("ROLSYNC_ENCRYPTION_KEYS", f"{new_key},{ENCRYPTION_KEY}")
    both = create_app({"TESTING": True})
    with both.app_context():
        result = both.test_cli_runner().invoke(args=["secrets", "rotate"])
        assert result.exit_code == 0, result.output
        assert "Re-encrypted 1 secret(s) with the newest key" in result.output
    monkeypatch.setenv("ROLSYNC_ENCRYPTION_KEYS", new_key)
    newest_only = create_app({"TESTING": True})
    with newest_only.app_context():
        from rolsync.extensions import db as db_
        account = db_.session.scalar(select(MailAccount))
        assert resources.get().secrets.decrypt(account.password_encrypted) == consultant.password
        tested = newest_only.test_cli_runner().invoke(args=["mail", "test", consultant.email])
        assert tested.exit_code == 0, tested.output
        db_.session.remove()
        db_.engine.dispose()
    with both.app_context():
        db.engine.dispose()


def test_mail_configure_cannot_re_point_a_mailbox_without_its_password(sqlite_app, caplog):
    from rolsync.models import MailAccount

    run(sqlite_app, "users", "create", "jo@agency.example", "--password-stdin", input="jo-password-123\n")
    base = ["mail", "configure", "jo@agency.example", "--username", "jo@agency.example", "--password-stdin"]
    assert run(sqlite_app, *base, "--host", "imap.agency.example", input="imap-secret-1\n").exit_code == 0
    moved = run(sqlite_app, *base, "--host", "imap.attacker.example", input="\n")
    assert moved.exit_code != 0 and moved.output.count("\n") == 1
    assert db.session.scalar(select(MailAccount)).host == "imap.agency.example"
    caplog.set_level("INFO", logger="rolsync.audit")
    assert run(sqlite_app, *base, "--host", "imap2.agency.example", input="imap-secret-1\n").exit_code == 0
    audit = [r.getMessage() for r in caplog.records if r.name == "rolsync.audit"]
    assert any("flask mail configure" in line and "imap.agency.example:993 -> imap2.agency.example:993" in line
               for line in audit), audit
    assert not any("imap-secret-1" in line for line in audit)
