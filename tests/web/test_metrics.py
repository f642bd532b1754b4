"""GET /metrics: refused to outsiders, and counting a real import through the real Dovecot, Redis and database."""
from __future__ import annotations

import ipaddress

from prometheus_client.parser import text_string_to_metric_families

from devkit.builders import build_message

TOKEN = "scrape-token-0123456789"


def _allow(app, cidrs: str = "198.51.0.0/16", token: str | None = TOKEN) -> None:
    app.config["METRICS_NETWORKS"] = [ipaddress.ip_network(c) for c in cidrs.split(",") if c]
    app.config["METRICS_TOKEN"] = token


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_an_outsider_is_refused(app, client):
    _allow(app)
    outsider = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outsider).status_code == 403
    assert client.get("/metrics", environ_base=outsider,
                      headers={"Authorization": "Bearer wrong-token"}).status_code == 403
    assert client.get("/metrics", environ_base=outsider,
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.2.3"}).status_code == 200
    _allow(app, cidrs="", token=None)
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403, \
        "nothing configured: nobody"


def test_a_real_import_is_counted(consultant, crm, app, client):
    _allow(app)
    consultant.deliver("INBOX", build_message(from_="carol@client.example", to=consultant.email, subject="Hi"))
    consultant.deliver("INBOX", build_message(from_="nobody@nowhere.example", to=consultant.email, subject="?"))
    consultant.import_now()
    consultant.import_now()  # an idle poll

    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.0.7"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(response.get_data(as_text=True))
    assert samples[("rolsync_messages_total", (("outcome", "imported"), ("reason", "matched")))] == 1
    assert samples[("rolsync_messages_total", (("outcome", "skipped"), ("reason", "no_match")))] == 1
    assert samples[("rolsync_polls_total", (("result", "ok"),))] == 2
    assert samples[("rolsync_poll_duration_seconds_count", ())] == 2
    assert samples[("rolsync_import_duration_seconds_count", ())] == 1, "only the run that read mail"
    assert samples[("rolsync_poll_duration_seconds_sum", ())] > 0
    assert samples[("rolsync_mailboxes", (("state", "healthy"),))] == 1
    assert samples[("rolsync_queue_jobs", (("state", "queued"),))] == 0
