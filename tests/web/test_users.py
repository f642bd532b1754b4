"""Users (admins only): add, change role and name, switch off, reset a password; the last admin stays."""
from __future__ import annotations

from sqlalchemy import func, select

from rolsync.extensions import db
from rolsync.models import User
from tests.web.conftest import PASSWORD, sign_in


def _user(email: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def test_an_admin_adds_a_user_who_can_then_sign_in(app, admin):
    response = admin.client.post("/users/new", data={"email": "New.Person@Agency.example", "name": "New Person",
                                                     "password": "first-password-1", "role": "user"})
    assert response.status_code == 302
    created = _user("new.person@agency.example")
    assert created.name == "New Person" and created.role == "user"
    assert created.password_hash != "first-password-1"
    page = admin.client.get("/users").get_data(as_text=True)
    assert "new.person@agency.example" in page and "first-password-1" not in page
    sign_in(app.test_client(), "new.person@agency.example", "first-password-1")


def test_bad_new_users_are_refused_with_a_message(app, admin):
    count = lambda: db.session.scalar(select(func.count(User.id)))  # noqa: E731
    before = count()
    for data, message in (
        ({"email": "", "password": "long-enough-1"}, "Enter the user&#39;s e-mail address."),
        ({"email": "not-an-address", "password": "long-enough-1"}, "is not an e-mail address"),
        ({"email": admin.email, "password": "long-enough-1"}, "already exists"),
        ({"email": "short@agency.example", "password": "short"}, "at least 12 characters"),
        ({"email": "weak@agency.example", "password": "Password-2024!"}, "among the first ones guessers try"),
        ({"email": "same@agency.example", "password": "same@agency.example"}, "among the first ones guessers try"),
    ):
        response = admin.client.post("/users/new", data={"role": "user", **data})
        assert response.status_code == 422, data
        assert message in response.get_data(as_text=True), data
        assert "long-enough-1" not in response.get_data(as_text=True)
    assert count() == before


def test_an_admin_changes_role_name_and_access(app, admin, user):
    response = admin.client.post(f"/users/{user.id}", data={"name": "Uma Admin", "role": "admin", "active": "y"})
    assert response.status_code == 302
    changed = _user(user.email)
    assert (changed.name, changed.role, changed.active) == ("Uma Admin", "admin", True)
    assert user.client.get("/users").status_code == 200  # admin pages now open to them

    admin.client.post(f"/users/{user.id}", data={"name": "Uma Admin", "role": "user"})  # unticked: switched off
    assert _user(user.email).active is False
    assert user.client.get("/").status_code == 302


def test_the_last_admin_cannot_lose_the_role_or_be_switched_off(app, admin):
    for data in ({"name": "", "role": "user", "active": "y"}, {"name": "", "role": "admin"}):
        response = admin.client.post(f"/users/{admin.id}", data=data)
        assert response.status_code == 422
        assert "This is the last active admin" in response.get_data(as_text=True)
    assert _user(admin.email).is_admin and _user(admin.email).active


def test_a_reset_password_works_and_is_never_shown(app, admin, user):
    short = admin.client.post(f"/users/{user.id}/password", data={"password": "short"})
    assert short.status_code == 422 and "at least 12 characters" in short.get_data(as_text=True)
    response = admin.client.post(f"/users/{user.id}/password", data={"password": "reset-password-99"},
                                 follow_redirects=True)
    html = response.get_data(as_text=True)
    assert f"The password of {user.email} was reset." in html
    assert "reset-password-99" not in html
    sign_in(app.test_client(), user.email, "reset-password-99")
    assert app.test_client().post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 200


def test_unknown_users_are_not_found(admin):
    assert admin.client.get("/users/999999").status_code == 404
    assert admin.client.get("/users/999999/preferences").status_code == 404
