"""Who may do what: every route for a signed-out visitor, the owner, another user and an admin; CSRF on every POST."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.web.conftest import PASSWORD, add_user, clear_import_job, sign_in
from tests.web.seed import seed_crm, seed_duplicate_warning

ANON, OWNER, OTHER, ADMIN = "anonymous", "owner", "other user", "admin"


def _configure_mailbox(app, user_id: int) -> int:
    from rolsync import accounts, resources
    from rolsync.extensions import db
    from rolsync.models import User

    with app.app_context():
        user = db.session.get(User, user_id)
        account = accounts.configure_mailbox(db.session, resources.get().secrets, user, accounts.MailboxForm(
            host="imap.agency.example", port=993, security="ssl", username=user.email, password="imap-secret-1"))
        db.session.commit()
        return account.id


@pytest.fixture
def world(app, import_jobs):
    """An owner with a mailbox, a warning and a record with a document; another user; an admin."""
    owner = add_user(app, name="Owner")
    other = add_user(app, name="Other")
    admin = add_user(app, admin=True, name="Admin")
    account_id = _configure_mailbox(app, owner.id)
    clear_import_job(app, account_id)
    import_jobs.append(account_id)
    seeded = seed_crm(app, owner.id)
    warning_id = seed_duplicate_warning(app, owner.id)
    clients = {ANON: app.test_client()}
    for who, user in ((OWNER, owner), (OTHER, other), (ADMIN, admin)):
        clients[who] = app.test_client()
        sign_in(clients[who], user.email)
    return {"owner": owner, "warning": warning_id, "seeded": seeded, "clients": clients}


def _routes(world) -> list[tuple[str, str, dict, dict[str, int]]]:
    """(method, path, form data, expected status per person)."""
    u = world["owner"].id
    w = world["warning"]
    s = world["seeded"]
    page = {OWNER: 200, OTHER: 200, ADMIN: 200}
    own_only = {OWNER: 200, OTHER: 403, ADMIN: 200}
    admin_only = {OWNER: 403, OTHER: 403, ADMIN: 200}
    warning = {OWNER: 302, OTHER: 404, ADMIN: 302}
    return [
        ("GET", "/", {}, page),
        ("GET", "/preferences", {}, page),
        ("GET", "/preferences/password", {}, page),
        ("GET", "/preferences/import-status.json", {}, page),
        ("GET", f"/users/{u}/preferences", {}, own_only),
        ("GET", f"/users/{u}/import-status.json", {}, own_only),
        ("GET", "/warnings", {}, page),
        ("GET", f"/warnings/{w}/message.eml", {}, {OWNER: 200, OTHER: 404, ADMIN: 200}),
        ("GET", "/records", {}, page),
        ("GET", f"/records/contact/{s.carol_id}", {}, page),
        ("GET", f"/documents/{s.document_id}", {}, page),
        ("GET", "/history", {}, page),
        ("GET", "/privacy", {}, admin_only),
        ("GET", f"/records/contact/{s.carol_id}/erase", {}, admin_only),
        ("POST", "/privacy/capture", {}, {OWNER: 403, OTHER: 403, ADMIN: 422}),
        ("POST", "/privacy/lift", {}, {OWNER: 403, OTHER: 403, ADMIN: 422}),
        ("POST", f"/users/{u}/preferences/privacy", {}, {OWNER: 302, OTHER: 403, ADMIN: 302}),
        ("GET", "/rules", {}, admin_only),
        ("GET", "/rules/versions", {}, admin_only),
        ("POST", "/rules", {"action": "add_rule"}, {OWNER: 403, OTHER: 403, ADMIN: 200}),
        ("POST", "/rules/versions/1/roll-back", {}, {OWNER: 403, OTHER: 403, ADMIN: 404}),
        ("GET", "/users", {}, admin_only),
        ("GET", "/users/new", {}, admin_only),
        ("GET", f"/users/{u}", {}, admin_only),
        ("GET", "/admin/mail-providers", {}, admin_only),
        ("POST", "/admin/mail-providers/google", {}, {OWNER: 403, OTHER: 403, ADMIN: 422}),
        ("POST", "/admin/mail-providers/google/remove", {}, {OWNER: 403, OTHER: 403, ADMIN: 302}),
        ("POST", "/admin/mail-providers/yahoo", {}, {OWNER: 403, OTHER: 403, ADMIN: 404}),
        ("POST", f"/users/{u}/preferences/mailbox", {}, {OWNER: 422, OTHER: 403, ADMIN: 422}),
        ("POST", f"/users/{u}/preferences/import", {}, {OWNER: 302, OTHER: 403, ADMIN: 302}),
        ("POST", f"/warnings/{w}/retry", {}, warning),
        ("POST", f"/warnings/{w}/attach", {"record": f"contact:{s.dan_id}"}, warning),
        ("POST", f"/warnings/{w}/attach-all", {}, warning),
        ("POST", f"/warnings/{w}/dismiss", {}, warning),
        ("POST", f"/warnings/{w}/reopen", {}, warning),
        ("POST", "/warnings/dismiss", {"warning_ids": str(w)}, {OWNER: 302, OTHER: 302, ADMIN: 302}),
        ("POST", f"/records/contact/{s.dana_id}/emails", {"address": "dana@other.example"},
         {OWNER: 302, OTHER: 422, ADMIN: 422}),  # then it is already there
        ("POST", f"/users/{u}", {"name": "Owner", "role": "user", "active": "y"},
         {OWNER: 403, OTHER: 403, ADMIN: 302}),
        ("POST", "/users/new", {}, {OWNER: 403, OTHER: 403, ADMIN: 422}),
        # Late: erasing Dan erases Dana (their shared address) and the warning about it.
        ("POST", f"/records/contact/{s.dan_id}/erase", {}, {OWNER: 403, OTHER: 403, ADMIN: 302}),
        # Last: a reset ends the owner's session.
        ("POST", f"/users/{u}/password", {"password": PASSWORD}, {OWNER: 403, OTHER: 403, ADMIN: 302}),
    ]


def test_the_authorisation_matrix(world):
    failures = []
    for method, path, data, expected in _routes(world):
        for who in (ANON, OWNER, OTHER, ADMIN):
            client = world["clients"][who]
            response = client.open(path, method=method, data=data)
            response.close()  # a file download holds its file open until then
            if who == ANON:
                ok = response.status_code == 302 and urlsplit(response.location).path == "/login"
                wanted = "302 to /login"
            else:
                ok = response.status_code == expected[who]
                wanted = expected[who]
            if not ok:
                failures.append(f"{method} {path} as {who}: {response.status_code}, expected {wanted}")
    assert not failures, "\n".join(failures)


def test_another_users_warnings_and_history_stay_hidden(app, world):
    other = world["clients"][OTHER]
    assert "Budget for the new hire" not in other.get("/warnings").get_data(as_text=True)
    assert "Budget for the new hire" not in other.get("/history").get_data(as_text=True)
    assert "Budget for the new hire" in world["clients"][ADMIN].get("/warnings").get_data(as_text=True)
    assert "Budget for the new hire" in world["clients"][OWNER].get("/history").get_data(as_text=True)


def test_admins_see_admin_links_and_users_do_not(world):
    nav = re.compile(r'<nav class="mainnav".*?</nav>', re.S)
    user_nav = nav.search(world["clients"][OWNER].get("/").get_data(as_text=True)).group(0)
    admin_nav = nav.search(world["clients"][ADMIN].get("/").get_data(as_text=True)).group(0)
    for link in ("Preferences", "Warnings", "Records", "Import history"):
        assert f">{link}" in user_nav and f">{link}" in admin_nav
    for link in ("Import rules", "Users", "Providers"):
        assert f">{link}<" not in user_nav
        assert f">{link}<" in admin_nav


def _post_routes(app, world) -> list[str]:
    """Every POST route of the app, with its ids filled in."""
    values = {"user_id": world["owner"].id, "warning_id": world["warning"], "kind": "contact",
              "record_id": world["seeded"].carol_id, "email_id": 1, "version": 1,
              "provider": "google", "note_id": world["seeded"].note_id, "item_id": world["warning"]}
    paths = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods:
            path = rule.rule
            for name in rule.arguments:
                path = re.sub(rf"<(?:\w+:)?{name}>", str(values[name]), path)
            paths.append(path)
    return sorted(set(paths))


def test_every_post_without_a_csrf_token_is_refused(app, world):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        paths = _post_routes(app, world)
        assert len(paths) >= 15
        for who in (ANON, OWNER, ADMIN):
            for path in paths:
                response = world["clients"][who].post(path, data={"record": "contact:1", "address": "x@y.example"})
                assert response.status_code == 400, (who, path, response.status_code)
                if who != ANON:
                    assert "The form has expired" in response.get_data(as_text=True)
        # Nothing happened: the warning is still open.
        assert "Attach to this record" in world["clients"][OWNER].get("/warnings").get_data(as_text=True)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_a_post_with_the_pages_csrf_token_is_accepted(app, world):
    from tests.web.conftest import csrf_token

    app.config["WTF_CSRF_ENABLED"] = True
    try:
        owner = world["clients"][OWNER]
        token = csrf_token(owner, "/warnings")
        response = owner.post(f"/warnings/{world['warning']}/dismiss", data={"csrf_token": token})
        assert response.status_code == 302
        assert "The warning was dismissed." in owner.get("/warnings").get_data(as_text=True)
        # A token from another session does not do.
        other_token = csrf_token(world["clients"][ADMIN], "/warnings")
        response = owner.post(f"/warnings/{world['warning']}/reopen", data={"csrf_token": other_token})
        assert response.status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
