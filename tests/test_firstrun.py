"""rolsync.firstrun: the one-time setup token and the first admin, on both databases."""
from __future__ import annotations

import pytest

from rolsync import accounts, firstrun
from rolsync.extensions import db
from rolsync.models import Role, User

WANTED = firstrun.FirstAdmin(email="owner@agency.example", password="a-long-password", name="Owner")


def test_the_token_creates_one_admin_once(app):
    instance = app.instance_path
    token = firstrun.issue_token(instance)
    assert firstrun.needs_setup(db.session)
    with pytest.raises(firstrun.SetupTokenInvalid):
        firstrun.create_first_admin(db.session, instance, token + "x", WANTED)

    # Refused values keep the token valid, so the person can correct them.
    with pytest.raises(accounts.AccountErrors) as refused:
        firstrun.create_first_admin(db.session, instance, token,
                                    firstrun.FirstAdmin(email="nope", password="short"))
    assert [e.field for e in refused.value.errors] == ["email", "password"]
    assert firstrun.token_matches(instance, token)

    user = firstrun.create_first_admin(db.session, instance, token, WANTED)
    db.session.commit()
    firstrun.setup_done(instance)
    assert user.role == Role.ADMIN.value and not firstrun.needs_setup(db.session)
    assert not firstrun.token_matches(instance, token)
    with pytest.raises(firstrun.SetupClosed):
        firstrun.create_first_admin(db.session, instance, token, WANTED)
    assert db.session.scalar(db.select(db.func.count(User.id))) == 1


def test_a_new_token_kills_the_old_one(app):
    old = firstrun.issue_token(app.instance_path)
    new = firstrun.issue_token(app.instance_path)
    assert not firstrun.token_matches(app.instance_path, old)
    assert firstrun.token_matches(app.instance_path, new)
    assert not firstrun.token_matches(app.instance_path, None) and not firstrun.token_matches(app.instance_path, "")


def test_the_setup_token_stays_out_of_the_access_log():
    from rolsync.redact import redact_query

    line = '127.0.0.1 - - "GET /setup?token=Zx9-secret_token HTTP/1.1" 200 -'
    assert "Zx9-secret_token" not in redact_query(line) and "/setup?token=[redacted]" in redact_query(line)
