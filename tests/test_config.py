"""Settings that protect a deployment: production refuses weak ones, files and keys are kept safe."""
from __future__ import annotations

import os
import stat

import pytest

from rolsync.config import ConfigError, load_config


def _production(monkeypatch, secret_key: str) -> None:
    monkeypatch.setenv("ROLSYNC_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secret_key)
    monkeypatch.setenv("ROLSYNC_ENCRYPTION_KEYS", "x")


def test_production_refuses_a_short_secret_key(monkeypatch, tmp_path):
    _production(monkeypatch, "s")
    with pytest.raises(ConfigError, match="SECRET_KEY is 1 characters long; production needs at least 32"):
        load_config(str(tmp_path))
    _production(monkeypatch, "k" * 32)
    config = load_config(str(tmp_path))
    # Production's default: mail servers on internal addresses are refused unless an admin allows them.
    assert config["IMAP_ALLOW_PRIVATE"] is False


def test_development_allows_the_loopback_mail_server(monkeypatch, tmp_path):
    monkeypatch.delenv("ROLSYNC_ENV", raising=False)
    assert load_config(str(tmp_path))["IMAP_ALLOW_PRIVATE"] is True
    monkeypatch.setenv("ROLSYNC_IMAP_ALLOW_PRIVATE", "perhaps")
    with pytest.raises(ConfigError, match="ROLSYNC_IMAP_ALLOW_PRIVATE must be true or false"):
        load_config(str(tmp_path))


def test_the_sqlite_database_and_its_wal_are_private(sqlite_app, tmp_path):
    from rolsync.extensions import db
    from rolsync.models import User

    db.session.add(User(email="mode@agency.example", password_hash="x"))
    db.session.commit()
    path = db.engine.url.database
    for name in (path, path + "-wal", path + "-shm"):
        assert os.path.exists(name), name
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name


def test_an_existing_world_readable_database_is_narrowed(monkeypatch, tmp_path):
    from rolsync import create_app

    path = tmp_path / "old.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("ROLSYNC_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("ROLSYNC_ENCRYPTION_KEYS", "")
    monkeypatch.delenv("ROLSYNC_ENCRYPTION_KEYS")
    create_app({"TESTING": True})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_lost_development_key_is_not_silently_replaced(monkeypatch, tmp_path):
    """Secrets stored under the instance key, then the key file goes: the app refuses to start, and says why."""
    from rolsync import create_app
    from rolsync.extensions import db
    from rolsync.models import OAuthClient
    from rolsync.models import utcnow as now

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'dev.db'}")
    monkeypatch.setenv("ROLSYNC_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("ROLSYNC_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("SECRET_KEY", "dev-" + "k" * 40)
    app = create_app({"TESTING": True})  # no tables yet, nothing stored: a key is made
    key_file = tmp_path / "instance" / "encryption.key"
    assert key_file.exists()
    with app.app_context():
        from flask_migrate import upgrade

        from rolsync import services

        upgrade()
        db.session.add(OAuthClient(provider="google", client_id="id", updated_at=now(),
                                   client_secret_encrypted=services.get().secrets.encrypt("s")))
        db.session.commit()
        db.engine.dispose()
    key_file.unlink()
    with pytest.raises(ConfigError) as info:
        create_app({"TESTING": True})
    message = str(info.value)
    assert "encryption.key is missing, but the database holds 1 secret(s)" in message
    assert "Restore the file from a backup" in message
    assert not key_file.exists()
