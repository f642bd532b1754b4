"""Prometheus metrics, computed when scraped from what every process shares: the database and Redis.

Web processes, workers and the CLI are separate processes, often on separate
machines, so no process's memory holds the totals. prometheus_client's
multiprocess mode would add them up only across the processes of one machine
(through files in one directory), so it is not used. Instead:

* messages by outcome and reason, and mailboxes by state, are read from the
  database at each scrape (the ledger is the record of every decision, so the
  counter is exact and survives restarts; erasing a person's data lowers it,
  which Prometheus reads as a counter reset);
* polls and their durations are recorded by whoever ran the import, in Redis
  hashes (HINCRBY, one round trip per run), and read back at each scrape;
* the queue's depth is read from RQ's registries.

Each scrape builds its own CollectorRegistry: nothing is kept between scrapes.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolsync.models import ImportedMessage

if TYPE_CHECKING:
    from rolsync.importer import ImportResult

log = logging.getLogger(__name__)

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds in seconds: an idle poll takes tens of milliseconds, a first import minutes."""
KEY = "rolsync:{queue}:metrics:{name}"
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _key(queue_name: str, name: str) -> str:
    return KEY.format(queue=queue_name, name=name)


def observed(redis: Redis, queue_name: str, run: Callable[[], ImportResult]) -> ImportResult:
    """Run one import (`run`), recording it as a poll with its duration, whether it worked or raised."""
    started = time.monotonic()
    try:
        result = run()
    except BaseException:
        record_run(redis, queue_name, time.monotonic() - started, ok=False, messages=0)
        raise
    read = sum(result.total(name) for name in ("imported", "skipped", "warnings", "failed", "already"))
    record_run(redis, queue_name, time.monotonic() - started, ok=True, messages=read)
    return result


def record_run(redis: Redis, queue_name: str, seconds: float, *, ok: bool, messages: int) -> None:
    """Count one import run (a poll) and its duration; an import that read mail is timed separately too.

    Never raises: metrics must not fail an import.
    """
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hincrby(_key(queue_name, "polls"), "ok" if ok else "error", 1)
        _observe(pipe, _key(queue_name, "poll_seconds"), seconds)
        if messages:
            _observe(pipe, _key(queue_name, "import_seconds"), seconds)
        pipe.execute()
    except RedisError:
        log.warning("could not record the import run's metrics in Redis", exc_info=True)


def _observe(pipe, key: str, seconds: float) -> None:
    for bound in BUCKETS:
        if seconds <= bound:
            pipe.hincrby(key, repr(bound), 1)
            break
    else:
        pipe.hincrby(key, "+Inf", 1)
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", seconds)


class RolsyncCollector(Collector):
    """Every metric of one scrape, read from the database, Redis and RQ."""

    def __init__(self, session: Session, queue: Queue, config: dict):
        self.session = session
        self.queue = queue
        self.config = config

    def collect(self) -> Iterator:
        yield self._messages()
        yield self._mailboxes()
        try:
            yield from self._runs()
            yield self._queue_depth()
        except RedisError:
            log.warning("Redis did not answer the metrics scrape", exc_info=True)

    def _messages(self) -> CounterMetricFamily:
        family = CounterMetricFamily("rolsync_messages", "Messages the import decided on, by outcome and reason.",
                                     labels=["outcome", "reason"])
        rows = self.session.execute(
            select(ImportedMessage.outcome, ImportedMessage.reason, func.count(ImportedMessage.id))
            .group_by(ImportedMessage.outcome, ImportedMessage.reason))
        for outcome, reason, count in sorted(rows, key=lambda r: (r[0], r[1] or "")):
            family.add_metric([outcome, reason or ""], count)
        return family

    def _mailboxes(self) -> GaugeMetricFamily:
        from rolsync.mailboxes import state_counts

        family = GaugeMetricFamily("rolsync_mailboxes", "Mailboxes in each state.", labels=["state"])
        for state, count in state_counts(self.session, self.config).items():
            family.add_metric([state], count)
        return family

    def _runs(self) -> Iterable:
        redis, name = self.queue.connection, self.queue.name
        polls = redis.hgetall(_key(name, "polls"))
        family = CounterMetricFamily("rolsync_polls", "Import runs (polls) of a mailbox, by result.",
                                     labels=["result"])
        for result in ("ok", "error"):
            family.add_metric([result], int(polls.get(result.encode(), 0)))
        yield family
        for metric, help_text in (
                ("poll_seconds", "How long an import run (a poll) took, whatever it found."),
                ("import_seconds", "How long an import run that read at least one message took.")):
            yield self._histogram(f"rolsync_{metric.replace('_seconds', '_duration_seconds')}", help_text,
                                  redis.hgetall(_key(name, metric)))

    @staticmethod
    def _histogram(name: str, help_text: str, stored: dict) -> HistogramMetricFamily:
        values = {key.decode(): value for key, value in stored.items()}
        cumulative, buckets = 0, []
        for bound in BUCKETS:
            cumulative += int(values.get(repr(bound), 0))
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", cumulative + int(values.get("+Inf", 0))))
        return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=float(values.get("sum", 0)))

    def _queue_depth(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("rolsync_queue_jobs", "Jobs on the import queue, by state.", labels=["state"])
        queue = self.queue
        family.add_metric(["queued"], queue.count)
        family.add_metric(["scheduled"], ScheduledJobRegistry(queue=queue).count)
        family.add_metric(["running"], StartedJobRegistry(queue=queue).count)
        family.add_metric(["failed"], FailedJobRegistry(queue=queue).count)
        return family


def exposition(session: Session, queue: Queue, config: dict) -> bytes:
    """The Prometheus text format of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RolsyncCollector(session, queue, config))
    return generate_latest(registry)


def allowed(remote_addr: str | None, authorization: str | None, networks: list, token: str | None) -> bool:
    """A scrape from an allowed address, or one that shows the token (`Authorization: Bearer <token>`)."""
    if token and authorization and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization.removeprefix("Bearer ").strip().encode(), token.encode()):
            return True
    if not remote_addr or not networks:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in networks)
