"""The dashboard page."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, render_template
from flask_login import current_user
from redis.exceptions import RedisError

from rolsync import jobs, resources
from rolsync.extensions import db
from rolsync.health import workers
from rolsync.history import account_overview, imported_per_day, last_finished_run, outcomes
from rolsync.job_state import job_state
from rolsync.schedule import next_scheduled_run
from rolsync.warning_queue import open_count
from rolsync.web.dashboard import bp
from rolsync.web.dashboard.charts import day_chart, outcome_chart


@bp.route("/")
def index():
    """Charts of the last 30 days; one's own mailbox; for admins every mailbox's state."""
    days = imported_per_day(db.session, current_user, days=30)
    kinds = outcomes(db.session, current_user, days=30)
    account = current_user.mail_account
    redis = resources.get().redis
    now = datetime.now(timezone.utc)
    overview, queue, owners, beats = [], None, {}, None
    if current_user.is_admin:
        for row in account_overview(db.session):
            overview.append((row, job_state(redis, row.account.id) if row.account else None))
            if row.account:
                owners[row.account.id] = row.user
        try:
            queue = jobs.queue_overview(resources.get().queue)
            beats = workers(redis, resources.get().queue)
        except RedisError:
            current_app.logger.warning("cannot read the import queue", exc_info=True)
    return render_template(
        "dashboard/index.html",
        day_chart=day_chart(days), outcome_chart=outcome_chart(kinds), days=days, kinds=kinds,
        imported_total=sum(d.count for d in days), account=account,
        job=job_state(redis, account.id) if account else None,
        last_run=last_finished_run(db.session, account.id) if account else None,
        next_run=next_scheduled_run(account, current_app.config["POLL_INTERVAL_SECONDS"], now) if account else None,
        open_warnings=open_count(db.session, current_user), overview=overview, queue=queue, owners=owners,
        workers=beats, now=now,
    )
