"""Is the system up? Database, Redis, and the Celery worker and beat (via their heartbeat)."""

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

HEARTBEAT_CACHE_KEY = "celery-heartbeat"
REDIS_TIMEOUT_SECONDS = 1


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("Database health check failed: %s", exc)
        return Check(False, f"unreachable ({type(exc).__name__})")
    return Check(True, connection.vendor)


def check_redis() -> Check:
    try:
        _health_client(settings.REDIS_URL).ping()
    except redis.RedisError as exc:
        logger.warning("Redis health check failed: %s", exc)
        return Check(False, f"unreachable ({type(exc).__name__})")
    return Check(True, "ok")


@functools.cache
def _health_client(url: str) -> redis.Redis:
    # One per process (a page asks on every load), with short timeouts: a hung Redis must not
    # hang the page that reports it.
    return redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )


def record_heartbeat() -> datetime:
    now = timezone.now()
    cache.set(HEARTBEAT_CACHE_KEY, now.isoformat(), timeout=None)
    return now


def last_heartbeat() -> datetime | None:
    try:
        value = cache.get(HEARTBEAT_CACHE_KEY)
    except redis.RedisError:  # the cache is Redis: down means "unknown", not a crashed page
        return None
    return datetime.fromisoformat(value) if value else None


def check_worker() -> Check:
    beat_at = last_heartbeat()
    if beat_at is None:
        return Check(False, "no heartbeat yet")
    age = timezone.now() - beat_at
    # Allow two missed beats before calling it down, so one slow tick does not flap the badge.
    if age > timedelta(seconds=3 * settings.HEARTBEAT_SECONDS):
        return Check(False, f"last heartbeat {int(age.total_seconds())} s ago")
    return Check(True, f"last heartbeat {int(age.total_seconds())} s ago")


def system_status() -> dict[str, Check]:
    return {
        "database": check_database(),
        "redis": check_redis(),
        "worker": check_worker(),
    }
