"""Encryption at rest for mailbox secrets (Fernet, with key rotation)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from rolsync.config import ConfigError, read_or_create_secret


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""

    message = (
        "The stored mailbox password cannot be decrypted with the current keys; "
        "save the password again in Preferences"
    )


class SecretBox:
    """Encrypts and decrypts short secrets with the newest of several keys.

    The first key encrypts; every key decrypts, so an operator rotates by
    putting a new key first and keeping the old ones until `rotate` has run.
    """

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])

    @classmethod
    def from_config(cls, configured: str | None, instance_path: str,
                    stored_secrets: Callable[[], int] = lambda: 0) -> SecretBox:
        """The keys from the environment, else the instance folder's key, made on first use.

        A missing key file is made only when nothing is stored encrypted yet
        (`stored_secrets` counts what is): a new key would silently turn every
        saved mailbox password into noise.
        """
        if configured:
            return cls([k.strip() for k in configured.split(",") if k.strip()])
        path = Path(instance_path) / "encryption.key"
        if not path.exists():
            stored = stored_secrets()
            if stored:
                raise ConfigError(
                    f"{path} is missing, but the database holds {stored} secret(s) encrypted with the key it "
                    "held. Restore the file from a backup (or put that key in ROLSYNC_ENCRYPTION_KEYS). If the "
                    "key is lost for good, put a new key in ROLSYNC_ENCRYPTION_KEYS (python -c \"from "
                    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\") and have every "
                    "mailbox password and OAuth connection entered again.")
        key = read_or_create_secret(path, lambda: Fernet.generate_key().decode())
        return cls([key])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretUnreadable(SecretUnreadable.message) from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")
