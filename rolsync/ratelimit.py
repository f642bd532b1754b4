"""A fixed-window counter in Redis, shared by every web process: used to slow down password guessing."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


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
