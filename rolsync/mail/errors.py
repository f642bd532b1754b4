"""Mailbox failures: one class per failure, each with a stable code, a plain sentence and a hint.

``classify()`` turns whatever the socket, ssl, imaplib or IMAPClient layers raised
into one of these. The sentence is written for a consultant, not an engineer,
and never quotes the raw exception: IMAP error texts can echo what was sent.
"""

from __future__ import annotations

import errno
import imaplib
import math
import re
import socket
import ssl

from imapclient.exceptions import LoginError

_UNSET = object()


class MailError(Exception):
    """Base of every mailbox failure; ``str()`` is the sentence shown to the user."""

    code = "mail_error"
    default_message = "Something went wrong while talking to the mail server."
    default_hint: str | None = None
    transient = False
    """True when trying again later may work without anyone changing anything."""

    def __init__(self, message: str | None = None, hint: str | None | object = _UNSET) -> None:
        self.message: str = message or self.default_message
        self.hint: str | None = self.default_hint if hint is _UNSET else hint  # type: ignore[assignment]
        super().__init__(self.message)

    def __reduce__(self):
        # Keep hint and extra attributes when pickled (worker processes, RQ);
        # the default would call __init__ with the message alone.
        return (_restore, (type(self), dict(self.__dict__)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


def _restore(cls: type[MailError], state: dict) -> MailError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message"))
    error.__dict__.update(state)
    return error


class AuthFailed(MailError):
    """The server refused the username or password."""

    code = "auth_failed"
    default_message = "The mail server did not accept the username or password."
    default_hint = (
        "Check the username (often your full e-mail address) and the password. "
        "If your account uses 2-step verification, you may need an app password "
        "instead of your usual password."
    )


OAUTH_RECONNECT_HINT = (
    "Reconnect the mailbox in Preferences (Configure Email Importing) and allow access again."
)


def oauth_login_refused() -> AuthFailed:
    """The mail server refused the access token of a mailbox connected with Google or Microsoft."""
    return AuthFailed(
        message="The mail server did not accept the access granted when the mailbox was connected.",
        hint=OAUTH_RECONNECT_HINT + " If that does not help, check that IMAP is turned on for the mailbox.",
    )


def oauth_access_revoked(message: str | None = None, hint: str | None = None) -> AuthFailed:
    """The provider refused the refresh token: the consent was withdrawn or has expired.

    Still ``auth_failed`` for the user, but marked ``access_revoked``: no retry
    can help, only the person can, by connecting the mailbox again.
    """
    error = AuthFailed(
        message=message or "The mailbox no longer allows rolsync to read it: the access was withdrawn "
                           "or has expired.",
        hint=hint or OAUTH_RECONNECT_HINT,
    )
    error.access_revoked = True
    return error


class OAuthProviderError(MailError):
    """The provider's token endpoint could not be reached or gave no usable answer."""

    code = "oauth_provider_error"
    default_message = "The sign-in service could not give rolsync a fresh access token just now."
    default_hint = "This is usually temporary; the import will try again."
    transient = True


GMAIL_ENABLE_IMAP_STEPS = (
    "To turn on IMAP in Gmail: sign in to Gmail in a browser, click the gear icon "
    "> See all settings, open the Forwarding and POP/IMAP tab, under IMAP access "
    "choose Enable IMAP, then click Save Changes."
)

MICROSOFT_ENABLE_IMAP_STEPS = (
    "For a Microsoft 365 mailbox, ask your administrator to turn on IMAP for it "
    "(Microsoft 365 admin center > Users > Active users > your name > Mail > "
    "Manage email apps > IMAP)."
)


class ImapDisabled(MailError):
    """The account exists and the password is right, but IMAP access is turned off."""

    code = "imap_disabled"
    default_message = "IMAP access is turned off for this mailbox."
    default_hint = GMAIL_ENABLE_IMAP_STEPS


class AppPasswordRequired(MailError):
    """The provider wants an app password (or a browser sign-in) instead of the usual password."""

    code = "app_password_required"
    default_message = (
        "The mail server wants an app password instead of your usual password."
    )
    default_hint = (
        "With 2-step verification turned on, a Google account needs an app password "
        "for mail programs. Create one (Google Account > Security > 2-Step "
        "Verification > App passwords) and enter it here instead of your usual "
        "password. If Gmail says to sign in via your web browser, sign in to Gmail "
        "once in a browser, then try again. Microsoft 365 and Outlook.com accept no "
        "password for IMAP: use Connect with Microsoft, which an admin sets up on "
        "the Providers page."
    )


class TlsError(MailError):
    """No trustworthy encrypted connection: certificate or handshake trouble."""

    code = "tls_error"
    default_message = "A secure connection to the mail server could not be established."
    default_hint = (
        "Use port 993 with SSL. If your company's mail server uses a certificate "
        "from the company's own certificate authority, upload that CA certificate."
    )


class Timeout(MailError):
    """The server did not answer in time."""

    code = "timeout"
    default_message = "The mail server did not answer in time."
    default_hint = (
        "Check the server name and port, then try again: the server may be busy, "
        "or a firewall may be silently blocking this port."
    )
    transient = True


class ConnectionRefused(MailError):
    """Nothing accepts connections at that host and port."""

    code = "connection_refused"
    default_message = "The mail server refused the connection on this port."
    default_hint = "Check the port: 993 for SSL, 143 for STARTTLS."


class DnsError(MailError):
    """The server name does not resolve."""

    code = "dns_error"
    default_message = "The mail server's name could not be found."
    default_hint = (
        "Check the spelling of the server name (for example imap.gmail.com or "
        "outlook.office365.com)."
    )


class HostNotAllowed(MailError):
    """The server's address is one rolsync may not connect to (its own machine, an internal network)."""

    code = "host_not_allowed"
    default_message = ("rolsync is not allowed to connect to this mail server: its address is on an internal "
                       "network or this machine.")
    default_hint = ("Check the server name (for example imap.gmail.com). If it is your company's own mail server, "
                    "ask an admin to allow it.")


class NotImap(MailError):
    """Something answered on the port, but not an IMAP server."""

    code = "not_imap"
    default_message = "Something answered on this port, but it is not an IMAP mail server."
    default_hint = (
        "Check the server name and port: IMAP uses 993 (SSL) or 143 (STARTTLS). "
        "Ports 25, 465 and 587 are for sending mail, 80 and 443 for web pages, "
        "110 and 995 for POP3."
    )


class NoSentFolder(MailError):
    """A warning, not a failure: no Sent folder was found, the Inbox still imports."""

    code = "no_sent_folder"
    default_message = "No Sent folder was found, so only the Inbox will be imported."
    default_hint = (
        "Sent mail is read from the folder the server marks as Sent, or else from "
        'a folder with a usual name such as "Sent" or "Sent Items".'
    )


class FolderNotFound(MailError):
    """A folder that was there before is gone (deleted or renamed)."""

    code = "folder_not_found"
    default_message = "A mail folder that was imported before no longer exists."
    default_hint = "If it was renamed, the next import looks for it again."


class ConnectionLost(MailError):
    """The connection dropped mid-session (BYE, reset, end of stream)."""

    code = "connection_lost"
    default_message = "The connection to the mail server was lost."
    default_hint = "This is usually temporary; the import will try again."
    transient = True


class ServerBusy(MailError):
    """The server asked us to slow down or has too many connections open."""

    code = "server_busy"
    default_message = "The mail server is busy and asked us to try again later."
    default_hint = "The import will try again later."
    transient = True

    def __init__(
        self,
        message: str | None = None,
        hint: str | None | object = _UNSET,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after
        """Seconds the server asked us to wait, when it said."""


class ServerError(MailError):
    """The server refused a request for a reason we do not recognise."""

    code = "server_error"
    default_message = "The mail server refused a request."
    default_hint = "If this keeps happening, ask your administrator to look at the import log."


class UnexpectedError(MailError):
    """Anything else; the original exception stays attached as ``__cause__``."""

    code = "unexpected_error"
    default_message = "Something unexpected went wrong while talking to the mail server."
    default_hint = "If this keeps happening, ask your administrator to look at the import log."


# -- classification ------------------------------------------------------

_THROTTLED = re.compile(
    r"request is throttled.*?suggested backoff time:\s*(\d+)\s*milli", re.I | re.S
)

# Checked in order against the server's words: the first match wins, so more
# specific phrases (an app password demand) come before the generic ones
# (authentication failed) that providers send alongside them.
_SERVER_TEXTS: list[tuple[tuple[str, ...], type[MailError], dict[str, str]]] = [
    (
        (
            "too many simultaneous connections",
            "too many connections",
            "maximum number of connections",
            "exceeded command or bandwidth limits",
            "[unavailable]",
            "[inuse]",
            "[limit]",
            "temporary system error",
            "server unavailable",
        ),
        ServerBusy,
        {},
    ),
    (
        (
            "application-specific password required",
            "application specific password required",
            "app password",
            "web login required",
            "[webalert",
            "log in via your web browser",
            "login via your web browser",
        ),
        AppPasswordRequired,
        {},
    ),
    (
        (
            "imap access is disabled",
            "imap is disabled",
            "imap access disabled",
            "not enabled for imap",
            "enable your account for imap",
        ),
        ImapDisabled,
        {},
    ),
    (
        # Exchange Online's answer when the password is right but IMAP is off.
        ("user is authenticated but not connected",),
        ImapDisabled,
        {"hint": MICROSOFT_ENABLE_IMAP_STEPS},
    ),
    (
        (
            "[privacyrequired]",
            "plaintext authentication disallowed",
            "logindisabled",
        ),
        TlsError,
        {
            "message": "The mail server accepts the password only over an encrypted connection.",
            "hint": "Use port 993 with SSL, or port 143 with STARTTLS.",
        },
    ),
    (
        (
            "[authenticationfailed]",
            "[authorizationfailed]",
            "authenticate failed",
            "login failed",
            "invalid credentials",
            "authentication failed",
            "incorrect username or password",
            "login failure",
            "invalid login",
            "bad username or password",
        ),
        AuthFailed,
        {},
    ),
    (
        (
            "[nonexistent]",
            "mailbox doesn't exist",
            "mailbox does not exist",
            "unknown mailbox",
            "no such mailbox",
            "folder not found",
        ),
        FolderNotFound,
        {},
    ),
]

# ssl.SSLError reasons for "the peer answered, but not with TLS".
PLAINTEXT_REPLY_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
    }
)

STARTTLS_PORT_HINT = (
    "This port seems to expect STARTTLS: choose STARTTLS with port 143, "
    "or SSL with port 993."
)


def classify(exc: BaseException) -> MailError:
    """Return the MailError that explains ``exc``; a MailError is returned unchanged."""
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, imaplib.IMAP4.error):
        return _classify_imap(exc)
    if isinstance(exc, ssl.SSLError):
        return classify_tls(exc)
    if isinstance(exc, socket.gaierror):
        return DnsError()
    if isinstance(exc, TimeoutError):
        return Timeout()
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused()
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError)):
        return ConnectionLost()
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ConnectionRefused(
                message="The mail server could not be reached from here.",
                hint="Check the server name; if it is right, the network may be down.",
            )
        return ConnectionLost()
    return UnexpectedError()


def classify_server_text(text: str) -> MailError | None:
    """Recognise a provider's words (Gmail, Microsoft, RFC 5530 codes); None if unknown."""
    throttled = _THROTTLED.search(text)
    if throttled:
        return ServerBusy(retry_after=math.ceil(int(throttled.group(1)) / 1000))
    lowered = text.lower()
    for phrases, error_class, overrides in _SERVER_TEXTS:
        if any(phrase in lowered for phrase in phrases):
            return error_class(**overrides)
    return None


def classify_oauth_login(text: str) -> MailError:
    """Explain a refused XOAUTH2 login from the server's words.

    The providers answer a bad or expired token with their generic failure:
    Gmail with ``NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)`` after
    a base64 JSON challenge naming the scope it wanted, Microsoft with
    ``NO AUTHENTICATE failed.``, Dovecot with ``[AUTHENTICATIONFAILED]``. For a
    token these mean "connect again", not "check the password". Anything more
    specific (IMAP switched off, throttling) keeps its own class.
    """
    known = classify_server_text(text)
    if known is None or isinstance(known, AuthFailed):
        return oauth_login_refused()
    return known


def classify_tls(exc: ssl.SSLError) -> TlsError | ConnectionLost:
    """Explain a failed or broken TLS session."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _certificate_error(exc)
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return ConnectionLost()
    if getattr(exc, "reason", None) in PLAINTEXT_REPLY_REASONS:
        return TlsError(
            message="The server on this port did not answer with SSL.",
            hint=STARTTLS_PORT_HINT,
        )
    if getattr(exc, "reason", None) in ("NO_CERTIFICATE_OR_CRL_FOUND", "PEM_LIB"):
        return bad_ca_certificate()
    return TlsError()


def bad_ca_certificate() -> TlsError:
    """The uploaded CA certificate is not a readable PEM certificate."""
    return TlsError(
        message="The CA certificate could not be read.",
        hint=(
            "Upload the certificate as a PEM file: text that starts with "
            "-----BEGIN CERTIFICATE-----."
        ),
    )


def _certificate_error(exc: ssl.SSLCertVerificationError) -> TlsError:
    reason = (exc.verify_message or "").lower()
    if "hostname mismatch" in reason or "ip address mismatch" in reason:
        return TlsError(
            message="The mail server's certificate is for a different server name.",
            hint=(
                "Enter the server name exactly as your provider gives it "
                "(for example outlook.office365.com), with port 993 and SSL."
            ),
        )
    if "expired" in reason:
        return TlsError(
            message="The mail server's certificate has expired.",
            hint="Ask your mail administrator to renew the server's certificate.",
        )
    return TlsError(
        message="The mail server's certificate could not be verified.",
        hint=(
            "If your company's mail server uses a certificate from the company's "
            "own certificate authority, upload that CA certificate. Otherwise check "
            "the server name, and use port 993 with SSL."
        ),
    )


def _classify_imap(exc: imaplib.IMAP4.error) -> MailError:
    text = str(exc)
    known = classify_server_text(text)
    if known is not None:
        return known
    if isinstance(exc, LoginError):
        return AuthFailed()
    if isinstance(exc, imaplib.IMAP4.abort):
        lowered = text.lower()
        if "unexpected response" in lowered or "unterminated line" in lowered:
            return NotImap()
        if "timed out" in lowered:
            return Timeout()
        return ConnectionLost()
    return ServerError()
