"""Log lines an operator can ship: one line per event, plain or JSON, with the import's mailbox and run.

An import sets its mailbox id and run id in context variables (`import_context`);
`ImportContext`, a logging filter, copies them onto every record logged while
they are set, whichever module logs it. `configure` installs the handler on the
root logger of a worker or web process; `RedactOAuthQuery` (rolsync.redact)
runs on every line too, so an OAuth code in a request line never reaches a log.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timezone

from rolsync.redact import RedactOAuthQuery

mailbox_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("rolsync_mailbox_id", default=None)
run_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("rolsync_run_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"


@contextlib.contextmanager
def import_context(*, mailbox: int | None = None, run: int | None = None) -> Iterator[None]:
    """Name the mailbox (and run) on every log line inside the block; the outer values come back after."""
    tokens = []
    if mailbox is not None:
        tokens.append((mailbox_id, mailbox_id.set(mailbox)))
    if run is not None:
        tokens.append((run_id, run_id.set(run)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ImportContext(logging.Filter):
    """Put the current import's mailbox id and run id on a record (None outside an import)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mailbox, run = mailbox_id.get(), run_id.get()
        parts = [f"mailbox={mailbox}"] if mailbox is not None else []
        if run is not None:
            parts.append(f"run={run}")
        # Extra attributes, as logging's `extra=` sets them: formatters read them by name.
        record.__dict__.update(mailbox_id=mailbox, run_id=run, context=f" [{' '.join(parts)}]" if parts else "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, mailbox_id, run_id, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "mailbox_id": getattr(record, "mailbox_id", None),
            "run_id": getattr(record, "run_id", None),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format; a traceback stays on one line so each event is one line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            ImportContext().filter(record)
        return super().format(record).replace("\n", "\\n")


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def prepare(handler: logging.Handler, log_format: str) -> logging.Handler:
    """Give `handler` the format, the import's context and the OAuth redaction."""
    handler.setFormatter(formatter(log_format))
    for kind in (ImportContext, RedactOAuthQuery):
        if not any(isinstance(existing, kind) for existing in handler.filters):
            handler.addFilter(kind())
    return handler


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every log line of this process to stderr in `log_format` ("text" or "json")."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "rolsync", False):
            root.removeHandler(handler)
    handler = prepare(logging.StreamHandler(sys.stderr), log_format)
    handler.rolsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic announces each of its plugins at INFO whenever it is imported: noise in every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
