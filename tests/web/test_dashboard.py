"""The dashboard: the per-day chart, outcomes by kind, and every mailbox's state for admins."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from rolsync.extensions import db
from rolsync.history import OutcomeCount, imported_per_day, outcomes
from rolsync.models import ImportedMessage, User
from rolsync.web.dashboard.charts import day_chart, nice_step, outcome_chart


def _ledger(app, user_id: int, when: datetime, outcome: str = "imported", reason: str = "matched", n: int = 1):
    with app.app_context():
        for _ in range(n):
            key = f"mid:{user_id}-{when.isoformat()}-{outcome}-{reason}-{_}"
            db.session.add(ImportedMessage(user_id=user_id, dedupe_key=key, message_key=key, folder="INBOX",
                                           outcome=outcome, reason=reason, created_at=when))
        db.session.commit()


def test_messages_imported_per_day_counts_each_utc_day(app, user, other_user):
    today = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    _ledger(app, user.id, today, n=3)
    _ledger(app, user.id, today - timedelta(days=2), n=2)
    _ledger(app, user.id, today - timedelta(days=40), n=5)  # too old
    _ledger(app, user.id, today, outcome="skipped", reason="no_match")  # not imported
    _ledger(app, other_user.id, today, n=7)  # someone else's
    viewer = db.session.get(User, user.id)
    days = imported_per_day(db.session, viewer, days=30)
    assert len(days) == 30 and days[-1].day == today.date()
    assert days[-1].count == 3 and days[-3].count == 2 and sum(d.count for d in days) == 5


def test_the_chart_counts_mail_by_its_own_date(app, user):
    """Six months of mail imported today is spread over the days it was written, not one bar today."""
    today = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    with app.app_context():
        for i, days_ago in enumerate([0, 3, 3, 10, 200]):
            key = f"mid:dated-{i}"
            db.session.add(ImportedMessage(user_id=user.id, dedupe_key=key, message_key=key, folder="INBOX",
                                           outcome="imported", reason="matched", created_at=today,
                                           sent_at=today - timedelta(days=days_ago)))
        db.session.commit()
    _ledger(app, user.id, today - timedelta(days=5))  # no Date kept: counted on the day it was seen
    days = imported_per_day(db.session, db.session.get(User, user.id), days=30)
    counts = {(today.date() - d.day).days: d.count for d in days if d.count}
    assert counts == {0: 1, 3: 2, 5: 1, 10: 1}


def test_an_empty_chart_shows_no_scale(app, user):
    chart = day_chart(imported_per_day(db.session, db.session.get(User, user.id), days=30))
    assert chart.empty and [t.label for t in chart.ticks] == ["0"]
    html = user.client.get("/").get_data(as_text=True)
    svg = html[html.index('<svg class="chart chart-columns"'):]
    svg = svg[:svg.index("</svg>")]
    assert not re.search(r'class="axis-label" x="0" ', svg), "no number on an empty chart's value scale"
    assert "No mail of the last 30 days imported yet." in html


def test_outcomes_by_kind(app, user):
    now = datetime.now(timezone.utc)
    _ledger(app, user.id, now, n=4)
    _ledger(app, user.id, now, outcome="skipped", reason="own_domain", n=2)
    _ledger(app, user.id, now, outcome="warned", reason="duplicate_address")
    found = outcomes(db.session, db.session.get(User, user.id))
    assert [(c.outcome, c.reason, c.count) for c in found] == [
        ("imported", "matched", 4), ("skipped", "own_domain", 2), ("warned", "duplicate_address", 1)]
    assert found[1].label == "Skipped: mail between colleagues (own domain)"


def test_the_page_draws_svg_charts_without_script(app, user):
    today = datetime.now(timezone.utc)
    _ledger(app, user.id, today, n=3)
    _ledger(app, user.id, today, outcome="skipped", reason="no_match", n=1)
    html = user.client.get("/").get_data(as_text=True)
    assert "Messages imported, by the day they were written" in html and "Outcomes by kind" in html
    assert '<svg class="chart chart-columns"' in html
    assert html.count('class="bar bar-day"') == 1
    assert f"{today.strftime('%a %d %b')}: 3 imported" in html
    assert "Imported: matched a record" in html and "Skipped: no contact or candidate has the address" in html
    assert re.search(r'class="stat-value">3<', html)
    assert "<script>" not in html


def test_admins_see_every_mailbox_and_users_do_not(app, admin, user):
    from rolsync import accounts, resources

    with app.app_context():
        account = accounts.configure_mailbox(db.session, resources.get().secrets, db.session.get(User, user.id),
                                             accounts.MailboxForm(host="imap.agency.example", port=993,
                                                                  security="ssl", username=user.email,
                                                                  password="imap-secret-1"))
        account.last_error = "The mail server did not accept the username or password."
        db.session.commit()
    admin_html = admin.client.get("/").get_data(as_text=True)
    assert "Mailboxes" in admin_html and user.email in admin_html and "imap.agency.example" in admin_html
    assert "The mail server did not accept the username or password." in admin_html
    assert "imap-secret-1" not in admin_html
    user_html = user.client.get("/").get_data(as_text=True)
    assert "<h2>Mailboxes</h2>" not in user_html
    assert "The mail server did not accept the username or password." in user_html  # their own state


def test_chart_geometry():
    assert [nice_step(n) for n in (0, 3, 4, 7, 13, 40, 99, 1000)] == [1, 1, 1, 2, 5, 10, 50, 500]
    from rolsync.history import DayCount

    start = date(2026, 1, 1)
    chart = day_chart([DayCount(start + timedelta(days=i), c) for i, c in enumerate([0, 5, 10])], height=200)
    assert [c.value for c in chart.columns] == [0, 5, 10]
    assert chart.columns[0].height == 0
    assert chart.columns[2].y == chart.plot_top and chart.columns[1].height * 2 == chart.columns[2].height
    assert chart.labels[-1].label == "03 Jan"
    assert [t.label for t in chart.ticks] == ["0", "5", "10"]
    rows = outcome_chart([OutcomeCount("imported", "matched", 8), OutcomeCount("failed", "error", 2)])
    assert [(r.width, r.css) for r in rows.rows] == [(100.0, "imported"), (25.0, "failed")]
    assert day_chart([DayCount(start, 0)]).empty and outcome_chart([]).empty


def test_admins_see_the_import_queue(app, admin, user, import_jobs):
    from rolsync import accounts, jobs, resources
    from tests.web.conftest import clear_import_job

    with app.app_context():
        account = accounts.configure_mailbox(db.session, resources.get().secrets, db.session.get(User, user.id),
                                             accounts.MailboxForm(host="imap.agency.example", port=993,
                                                                  security="ssl", username=user.email,
                                                                  password="imap-secret-1"))
        db.session.commit()
        account_id = account.id
    clear_import_job(app, account_id)
    import_jobs.append(account_id)
    assert "Nothing queued, running or failed." in admin.client.get("/").get_data(as_text=True)
    with app.app_context():
        jobs.enqueue_import(resources.get().queue, account_id)
    html = admin.client.get("/").get_data(as_text=True)
    section = html[html.index("Import queue"):]
    assert user.email in section and ">Queued</span>" in section
    assert "Import queue" not in user.client.get("/").get_data(as_text=True)
