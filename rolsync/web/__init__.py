"""The web panel's blueprints, and what every page shares: security, error pages, template helpers."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Register every area of the panel on `app` (the factory calls this)."""
    from rolsync.web import (
        auth,
        dashboard,
        firstrun,
        history,
        intake,
        mailboxes,
        metrics,
        oauth,
        preferences,
        privacy,
        probes,
        providers,
        records,
        rules,
        users,
        warnings,
    )
    from rolsync.web.errors import init_error_pages
    from rolsync.web.security import init_security
    from rolsync.web.templating import init_templating

    init_security(app)
    init_error_pages(app)
    init_templating(app)
    for area in (probes, auth, firstrun, dashboard, preferences, oauth, warnings, intake, records, history, users,
                 mailboxes, rules, providers, privacy, metrics):
        app.register_blueprint(area.bp)
