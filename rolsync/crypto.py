"""Encryption at rest for mailbox secrets (Fernet, with key rotation)."""
from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from rolsync.config import read_or_create_secret


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
    def from_config(cls, configured: str | None, instance_path: str) -> "SecretBox":
        if configured:
            return cls([k.strip() for k in configured.split(",") if k.strip()])
        key = read_or_create_secret(
            Path(instance_path) / "encryption.key", lambda: Fernet.generate_key().decode()
        )
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
