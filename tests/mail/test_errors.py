"""classify() on constructed exceptions and the server texts real providers send."""

from __future__ import annotations

import errno
import imaplib
import pickle
import socket
import ssl

import pytest
from imapclient.exceptions import LoginError

from rolsync.mail import errors
from rolsync.mail.errors import (
    AppPasswordRequired,
    AuthFailed,
    ConnectionLost,
    ImapDisabled,
    MailError,
    ServerBusy,
    classify,
)

CONTRACT_CODES = {
    "auth_failed", "imap_disabled", "app_password_required", "tls_error", "timeout",
    "connection_refused", "dns_error", "not_imap", "no_sent_folder",
}


def ssl_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower().replace('_', ' ')}")
    exc.reason = reason
    return exc


def cert_error(verify_message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {verify_message}"
    )
    exc.verify_message = verify_message
    exc.verify_code = 18
    return exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        # Gmail
        (LoginError("b'[ALERT] Application-specific password required: "
                    "https://support.google.com/accounts/answer/185833 (Failure)'"),
         "app_password_required"),
        (LoginError("b'[ALERT] Please log in via your web browser: "
                    "https://support.google.com/mail/accounts/answer/78754 (Failure)'"),
         "app_password_required"),
        (LoginError("b'[WEBALERT https://accounts.google.com/signin/continue] Web login required.'"),
         "app_password_required"),
        (LoginError("b'[ALERT] Your account is not enabled for IMAP use. Please visit your "
                    "Gmail settings page and enable your account for IMAP access. (Failure)'"),
         "imap_disabled"),
        (LoginError("b'[AUTHENTICATIONFAILED] Invalid credentials (Failure)'"), "auth_failed"),
        (LoginError("command: LOGIN => [ALERT] Too many simultaneous connections. (Failure)"),
         "server_busy"),
        (imaplib.IMAP4.abort("[UNAVAILABLE] Temporary System Error"), "server_busy"),
        # Microsoft
        (LoginError("b'AUTHENTICATE failed.'"), "auth_failed"),
        (LoginError("b'LOGIN failed.'"), "auth_failed"),
        (imaplib.IMAP4.error("select failed: User is authenticated but not connected."),
         "imap_disabled"),
        (LoginError("b'IMAP access is disabled for this account'"), "imap_disabled"),
        # Dovecot and RFC 5530 codes
        (LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"), "auth_failed"),
        (LoginError("b'[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
                    "(SSL/TLS) connections.'"), "tls_error"),
        (imaplib.IMAP4.error("select failed: [NONEXISTENT] Mailbox doesn't exist: Sent"),
         "folder_not_found"),
        (imaplib.IMAP4.error("status failed: [SERVERBUG] Internal error"), "server_error"),
        (LoginError("b'Something odd'"), "auth_failed"),
        # imaplib's own words
        (imaplib.IMAP4.abort("socket error: EOF"), "connection_lost"),
        (imaplib.IMAP4.abort("command: FETCH => socket error: EOF"), "connection_lost"),
        (imaplib.IMAP4.abort("unexpected response: b'220 smtp.example ESMTP'"), "not_imap"),
        (imaplib.IMAP4.abort("socket error: timed out"), "timeout"),
        # Sockets and TLS
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns_error"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection_refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "connection_refused"),
        (TimeoutError("timed out"), "timeout"),
        (socket.timeout("The handshake operation timed out"), "timeout"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "connection_lost"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), "connection_lost"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "connection_lost"),
        (cert_error("self-signed certificate in certificate chain"), "tls_error"),
        (cert_error("Hostname mismatch, certificate is not valid for 'imap.example.com'."),
         "tls_error"),
        (cert_error("certificate has expired"), "tls_error"),
        (ssl_error("WRONG_VERSION_NUMBER"), "tls_error"),
        (ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), "tls_error"),
        (ValueError("a bug"), "unexpected_error"),
    ],
)
def test_classify(exc: BaseException, code: str) -> None:
    error = classify(exc)
    assert isinstance(error, MailError)
    assert error.code == code
    assert error.message
    assert str(error) == error.message


def test_microsoft_throttling_carries_retry_after() -> None:
    exc = imaplib.IMAP4.error(
        "command: UID => Request is throttled. Suggested Backoff Time: 190176 milliseconds"
    )
    error = classify(exc)
    assert isinstance(error, ServerBusy)
    assert error.transient
    assert error.retry_after == 191


def test_gmail_connection_limit_has_no_retry_after() -> None:
    error = classify(imaplib.IMAP4.abort("[ALERT] Too many simultaneous connections. (Failure)"))
    assert isinstance(error, ServerBusy)
    assert error.retry_after is None


def test_imap_disabled_hint_walks_through_gmail_settings() -> None:
    error = classify(LoginError("b'[ALERT] Your account is not enabled for IMAP use.'"))
    assert isinstance(error, ImapDisabled)
    for step in ("gear icon", "See all settings", "Forwarding and POP/IMAP",
                 "Enable IMAP", "Save Changes"):
        assert step in error.hint


def test_microsoft_imap_disabled_hint_talks_about_microsoft() -> None:
    error = classify(imaplib.IMAP4.error("User is authenticated but not connected."))
    assert "Microsoft" in error.hint


def test_app_password_hint_names_both_providers() -> None:
    error = classify(LoginError("b'[ALERT] Application-specific password required'"))
    assert isinstance(error, AppPasswordRequired)
    assert "Google" in error.hint and "Microsoft" in error.hint


def test_tls_hints_never_suggest_turning_verification_off() -> None:
    for exc in (cert_error("self-signed certificate"), ssl_error("WRONG_VERSION_NUMBER"),
                ssl_error("TLSV1_ALERT_PROTOCOL_VERSION")):
        hint = classify(exc).hint.lower()
        for phrase in ("disable", "turn off", "ignore", "skip", "insecure"):
            assert phrase not in hint


def test_plaintext_reply_to_ssl_points_at_starttls() -> None:
    error = classify(ssl_error("WRONG_VERSION_NUMBER"))
    assert "STARTTLS" in error.hint and "143" in error.hint


def test_server_words_never_reach_the_message() -> None:
    # A server that echoes what it was sent must not leak it into the UI.
    for exc in (
        LoginError("b'[AUTHENTICATIONFAILED] LOGIN bob hunter2 rejected'"),
        imaplib.IMAP4.error("BAD command LOGIN bob hunter2"),
        imaplib.IMAP4.abort("unexpected response: b'hunter2'"),
        ValueError("hunter2"),
    ):
        error = classify(exc)
        assert "hunter2" not in error.message
        assert "hunter2" not in (error.hint or "")
        assert "hunter2" not in repr(error)


def test_mail_errors_pass_through_unchanged() -> None:
    original = AuthFailed()
    assert classify(original) is original


def test_transient_errors_are_the_retryable_ones() -> None:
    transient = {cls.code for cls in _all_error_classes() if cls.transient}
    assert transient == {"timeout", "connection_lost", "server_busy", "oauth_provider_error"}
    assert ConnectionLost().transient


def test_codes_are_unique_and_cover_the_contract() -> None:
    codes = [cls.code for cls in _all_error_classes()]
    assert len(codes) == len(set(codes))
    assert CONTRACT_CODES <= set(codes)
    for cls in _all_error_classes():
        error = cls()
        assert error.message.endswith(".")
        assert error.hint is None or error.hint.endswith(".")


def test_message_and_hint_can_be_overridden() -> None:
    error = AuthFailed(message="Custom.", hint=None)
    assert (error.message, error.hint, str(error)) == ("Custom.", None, "Custom.")


def test_errors_survive_pickling() -> None:
    # Worker processes and RQ pickle exceptions; the hint and retry_after must stay.
    error = pickle.loads(pickle.dumps(ServerBusy(hint="Wait.", retry_after=30)))
    assert (type(error), error.message, error.hint, error.retry_after) == (
        ServerBusy, ServerBusy.default_message, "Wait.", 30)
    assert str(error) == error.message


def _all_error_classes() -> list[type[MailError]]:
    return [
        value for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, MailError) and value is not MailError
    ]


@pytest.mark.parametrize("text", [
    # Gmail, after its base64 JSON challenge {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}
    "[AUTHENTICATIONFAILED] Invalid credentials (Failure)",
    # Microsoft 365 (Exchange Online)
    "AUTHENTICATE failed.",
    # Dovecot's oauth2 passdb
    "[AUTHENTICATIONFAILED] Authentication failed.",
    # a server that does not offer XOAUTH2 at all
    "AUTHENTICATE command error: BAD [b'Unsupported authentication mechanism.']",
])
def test_a_refused_access_token_asks_to_reconnect(text: str) -> None:
    error = errors.classify_oauth_login(text)
    assert type(error) is AuthFailed and error.code == "auth_failed"
    assert "Reconnect" in error.hint and "password" not in error.message
    assert not getattr(error, "access_revoked", False)


def test_oauth_login_keeps_the_more_specific_provider_answers() -> None:
    disabled = errors.classify_oauth_login("User is authenticated but not connected.")
    assert isinstance(disabled, ImapDisabled) and "Microsoft 365" in disabled.hint
    assert isinstance(errors.classify_oauth_login("[UNAVAILABLE] Too many simultaneous connections"), ServerBusy)


def test_a_revoked_consent_is_auth_failed_and_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(errors.oauth_access_revoked()))
    assert error.code == "auth_failed" and error.access_revoked
    assert "Reconnect" in error.hint
