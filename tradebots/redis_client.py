"""The one Redis client of a process, for the app's own keys (locks, throttles, the request
budget), and the connection pool Django's Redis cache shares; Celery and Channels keep their own
connections."""

import functools
import threading

import redis
from django.conf import settings


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def redis_client() -> redis.Redis:
    return _client_for(settings.REDIS_URL)


class ProcessConnectionPool(redis.ConnectionPool):
    """Django's cache (``OPTIONS["pool_class"]``) with one pool per server and options for the
    whole process. Under ASGI each request runs in a fresh context, so Django builds a new cache
    object per request and, with the stock pool class, a new pool: one TCP connection to Redis
    opened and dropped per request."""

    _pools: dict = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url, **options):
        key = (url, tuple(sorted((name, repr(value)) for name, value in options.items())))
        with cls._lock:
            if key not in cls._pools:
                cls._pools[key] = super().from_url(url, **options)
            return cls._pools[key]
