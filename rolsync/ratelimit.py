"""Counters and gates in Redis, shared by every web process: they slow down password guessing."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


# DECR only a counter that still exists: a DECR after the window ended would leave a key with no expiry.
_RELEASE = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Limit:
    attempts: int
    window_seconds: int


class RateLimiter:
    """Counts events per key in windows of `limit.window_seconds`; a key is blocked at `limit.attempts`.

    The counter lives in Redis (SET NX EX + INCR in one transaction), so any
    number of web processes on any number of machines share it. When Redis
    cannot be reached the limiter lets requests through and logs it: the
    passwords themselves are still checked, and a Redis outage must not lock
    every user out of the panel.
    """

    def __init__(self, redis: Redis, namespace: str, limit: Limit):
        self.redis = redis
        self.namespace = namespace
        self.limit = limit

    def _key(self, key: str) -> str:
        # Hashed: keys hold e-mail addresses and IP addresses, which need not sit in Redis in clear.
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        return f"rolsync:ratelimit:{self.namespace}:{digest}"

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again; 0 when it is not blocked."""
        try:
            pipe = self.redis.pipeline()
            pipe.get(self._key(key))
            pipe.ttl(self._key(key))
            count, ttl = pipe.execute()
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not limiting", exc_info=True)
            return 0
        if count is None or int(count) < self.limit.attempts:
            return 0
        return max(int(ttl), 1)

    def attempt(self, key: str) -> int:
        """Count an attempt *before* it is made; returns the seconds to wait (0: go ahead).

        Counting first, in one transaction, is what makes the limit hold under
        parallel requests: of 40 at once, exactly `attempts` are let through.
        An attempt that turns out to be legitimate can hand its place back with
        `release`.
        """
        try:
            pipe = self.redis.pipeline()
            pipe.set(self._key(key), 0, ex=self.limit.window_seconds, nx=True)
            pipe.incr(self._key(key))
            pipe.ttl(self._key(key))
            _, count, ttl = pipe.execute()
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not limiting", exc_info=True)
            return 0
        if int(count) <= self.limit.attempts:
            return 0
        return max(int(ttl), 1)

    def count(self, key: str) -> int:
        """Events counted for `key` in the current window."""
        try:
            value = self.redis.get(self._key(key))
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not counting", exc_info=True)
            return 0
        return int(value or 0)

    def release(self, key: str) -> None:
        """Give back one attempt counted by `attempt` (it was a successful sign-in, not a guess)."""
        try:
            self.redis.eval(_RELEASE, 1, self._key(key))
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not released", exc_info=True)

    def hit(self, key: str) -> int:
        """Count one event for `key`; returns the count in the current window."""
        try:
            pipe = self.redis.pipeline()
            # SET NX starts a window only when none is running (works on any Redis version).
            pipe.set(self._key(key), 0, ex=self.limit.window_seconds, nx=True)
            pipe.incr(self._key(key))
            _, count = pipe.execute()
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not counting", exc_info=True)
            return 0
        return int(count)

    def reset(self, key: str) -> None:
        try:
            self.redis.delete(self._key(key))
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not reset", exc_info=True)


class Gate:
    """Lets one attempt per `delay` through for a key, whoever makes it (SET NX PX: atomic across processes).

    Used for an account that strangers guess at from many addresses: it slows
    the guessing to one try per delay without ever locking the account for
    longer than that delay, so the real user is never shut out for long.
    """

    def __init__(self, redis: Redis, namespace: str):
        self.redis = redis
        self.namespace = namespace

    def _key(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        return f"rolsync:gate:{self.namespace}:{digest}"

    def pass_through(self, key: str, delay_seconds: float) -> float:
        """0 when this attempt may go ahead (and starts the next delay); else the seconds until the gate opens."""
        if delay_seconds <= 0:
            return 0
        try:
            if self.redis.set(self._key(key), 1, px=max(1, int(delay_seconds * 1000)), nx=True):
                return 0
            remaining = self.redis.pttl(self._key(key))
        except RedisError:
            log.warning("rate limiter: Redis unreachable; not limiting", exc_info=True)
            return 0
        return max(int(remaining), 1) / 1000
