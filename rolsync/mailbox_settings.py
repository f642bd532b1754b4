"""A saved mailbox's IMAP settings: its password decrypted, or its OAuth token fetched, for one use."""
from __future__ import annotations

from collections.abc import Mapping

from rolsync import oauth
from rolsync.crypto import SecretBox
from rolsync.mail.imap import ImapSettings, Security
from rolsync.models import MailAccount


class NoPasswordSaved(ValueError):
    """A password mailbox without a password: settings saved by hand, or half-way."""

    code = "no_password"
    message = "The mailbox has no password saved."
    hint = "Enter the password in Preferences (Configure Email Importing) and save."

    def __init__(self) -> None:
        super().__init__(f"{self.message} {self.hint}")


def settings_for(account: MailAccount, secrets: SecretBox, providers: Mapping[str, oauth.OAuthProvider],
                 timeout: float = 30.0) -> ImapSettings:
    """The IMAP settings of an account; `providers` are the OAuth providers in use (Services.oauth_providers)."""
    if account.uses_oauth:
        return oauth.imap_settings(account, secrets, providers, timeout)
    if account.password_encrypted is None:
        raise NoPasswordSaved()
    return ImapSettings(
        host=account.host,
        port=account.port,
        security=Security(account.security),
        username=account.username,
        password=secrets.decrypt(account.password_encrypted),
        ca_pem=account.ca_pem,
        timeout=timeout,
    )
