"""GET /metrics for Prometheus: only from the configured addresses, or with the bearer token."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from rolsync import metrics, services
from rolsync.extensions import db

bp = Blueprint("metrics", __name__)


@bp.route("/metrics")
def scrape():
    """The Prometheus text format; 403 for anyone else (no sign-in page: a scraper cannot sign in)."""
    config = current_app.config
    if not metrics.allowed(request.remote_addr, request.headers.get("Authorization"), config["METRICS_NETWORKS"],
                           config.get("METRICS_TOKEN")):
        abort(403)
    body = metrics.exposition(db.session, services.get().queue, config)
    return Response(body, mimetype="text/plain", headers={"Content-Type": metrics.CONTENT_TYPE,
                                                         "Cache-Control": "no-store"})
