"""The Redis rate limiter behind the sign-in page, on the real Redis."""
from __future__ import annotations

import time
import uuid

import pytest
from redis import Redis

from rolsync.ratelimit import Limit, RateLimiter
from tests.conftest import TEST_REDIS_URL


def test_a_key_is_blocked_at_the_limit_until_its_window_ends():
    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        limiter = RateLimiter(redis, f"test-{uuid.uuid4().hex}", Limit(attempts=3, window_seconds=2))
        assert [limiter.hit("jo@agency.example") for _ in range(2)] == [1, 2]
        assert limiter.retry_after("jo@agency.example") == 0
        limiter.hit("jo@agency.example")
        assert 1 <= limiter.retry_after("jo@agency.example") <= 2
        assert limiter.retry_after("someone-else@agency.example") == 0
        time.sleep(2.1)
        assert limiter.retry_after("jo@agency.example") == 0
        limiter.hit("jo@agency.example")
        limiter.reset("jo@agency.example")
        assert limiter.retry_after("jo@agency.example") == 0
        # Keys are hashed: no address sits in Redis in clear.
        assert not any(b"jo@agency" in key for key in redis.keys(f"rolsync:ratelimit:{limiter.namespace}:*"))
    finally:
        redis.close()


@pytest.mark.slow  # waits for a connection timeout
def test_without_redis_nobody_is_locked_out():
    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        limiter = RateLimiter(redis, "down", Limit(attempts=1, window_seconds=60))
        assert limiter.hit("jo@agency.example") == 0
        assert limiter.retry_after("jo@agency.example") == 0
        limiter.reset("jo@agency.example")
    finally:
        redis.close()
