"""Health probes for load balancers and orchestrators: `/healthz` (alive) and `/readyz` (able to work)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from rolsync.extensions import db
from rolsync.health import readiness

bp = Blueprint("probes", __name__)


@bp.route("/healthz")
def healthz():
    """200 while the process answers; it reads nothing, so a slow database never restarts a healthy server."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """200 when the database, Redis and the document store answer and the schema is current; 503 otherwise.

    Only ok/failing per component: the reasons go to the log, not to whoever asks.
    """
    results = readiness(current_app._get_current_object(), db.session)
    ready = all(results.values())
    body = {"status": "ok" if ready else "failing",
            "checks": {check.value: "ok" if ok else "failing" for check, ok in results.items()}}
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
