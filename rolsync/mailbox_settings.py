"""A saved mailbox's IMAP settings: its password decrypted, or its OAuth token fetched, for one use."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from rolsync import oauth
from rolsync.crypto import SecretBox
from rolsync.mail.hosts import HostPolicy
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
                 timeout: float = 30.0, *, host_policy: HostPolicy | None = None) -> ImapSettings:
    """The IMAP settings of an account; `providers` are the OAuth providers in use (Services.oauth_providers).

    With the deployment's `host_policy` (Services.host_policy) the import, Test
    Connection and every other use connect only where an admin allows.
    """
    policy = host_policy or HostPolicy()
    if account.uses_oauth:
        settings = oauth.imap_settings(account, secrets, providers, timeout)
        return dataclasses.replace(settings, host_policy=policy)
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
        host_policy=policy,
    )
