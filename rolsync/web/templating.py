"""What every template gets: filters for dates, sizes and counts, and the navigation's open-warning count."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask, g
from flask_login import current_user
from markupsafe import Markup, escape

from rolsync import labels
from rolsync.extensions import db
from rolsync.models import as_utc
from rolsync.warning_queue import open_count


def init_templating(app: Flask) -> None:
    """Register the filters, the duration helper and the navigation's context on `app`."""

    @app.context_processor
    def navigation():
        if not current_user.is_authenticated:
            return {}
        if "open_warnings" not in g:
            g.open_warnings = open_count(db.session, current_user)
        return {"nav_open_warnings": g.open_warnings}

    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_date, "date")
    app.add_template_filter(format_size, "filesize")
    app.add_template_filter(format_count, "count")
    app.add_template_global(format_duration, "duration")
    # Codes the product keeps, in words (rolsync.labels): no page shows a class name, rule key or code.
    app.add_template_filter(labels.rule_label, "rule_label")
    app.add_template_filter(labels.error_sentence, "error_sentence")
    app.add_template_filter(labels.attachment_reason_label, "attachment_reason")
    app.add_template_filter(labels.warning_kind_label, "warning_kind")
    app.add_template_filter(labels.reason_label, "reason_label")
    app.add_template_filter(labels.outcome_label, "outcome_label")


def format_datetime(value: datetime | None, empty: str = "—") -> Markup:
    """A <time> element in UTC; the page's script shows it in the reader's own time zone."""
    if value is None:
        return Markup(escape(empty))
    value = as_utc(value).astimezone(timezone.utc)
    return Markup('<time datetime="{iso}">{text}</time>').format(
        iso=value.isoformat(timespec="seconds"), text=value.strftime("%Y-%m-%d %H:%M UTC"))


def format_date(value) -> str:
    return value.strftime("%d %b") if value else ""


def format_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def format_duration(start: datetime | None, end: datetime | None) -> str:
    """'took 3 s', 'took 2 min 5 s' for an import run; empty when it has not finished."""
    if start is None or end is None:
        return ""
    seconds = max(0, int((as_utc(end) - as_utc(start)).total_seconds()))
    if seconds < 60:
        return f"took {seconds} s"
    return f"took {seconds // 60} min {seconds % 60} s"


def format_count(value: int | None) -> str:
    return f"{value or 0:,}"
