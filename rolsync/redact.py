"""Keep OAuth callback values (and the first run's setup token) out of the access log.

Google and Microsoft send the browser back to ``/oauth/<provider>/callback``
with a one-time authorisation ``code`` (and ``state``) in the query string,
and werkzeug's development server (``make run``, the demo) logs every request
line in full. The code is short-lived and useless without the PKCE verifier
and the client secret, but it is a credential all the same: it has no place
in a log.
"""
from __future__ import annotations

import logging
import re

# A parameter in a query string, or URL-encoded inside another one (the sign-in
# page's ``next=/oauth/google/callback%3Fcode%3D...``).
_SECRET_PARAMETERS = re.compile(
    r"(?P<name>(?:[?&]|%3F|%26)(?:code|state|id_token|access_token|refresh_token|session_state|token)(?:=|%3D))"
    r"(?:(?!%26)[^&\s\"])*",
    re.IGNORECASE,
)


def redact_query(text: str) -> str:
    """`text` with the values of OAuth query parameters replaced by "[redacted]"."""
    return _SECRET_PARAMETERS.sub(r"\g<name>[redacted]", text)


class RedactOAuthQuery(logging.Filter):
    """A logging filter that redacts OAuth query values from a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_query(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install(logger_name: str = "werkzeug") -> None:
    """Add the filter to `logger_name` once, however many apps a process creates."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, RedactOAuthQuery) for existing in logger.filters):
        logger.addFilter(RedactOAuthQuery())
