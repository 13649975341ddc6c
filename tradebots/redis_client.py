"""The one Redis client of a process, for the app's own keys (locks, throttles, the request
budget); Celery and Channels keep their own connections."""

import functools

import redis
from django.conf import settings


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def redis_client() -> redis.Redis:
    return _client_for(settings.REDIS_URL)
