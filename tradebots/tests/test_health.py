import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

# Nothing listens on port 1: the connection is refused at once.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_is_open_and_reports_database_and_redis(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is True


def test_healthz_answers_503_when_redis_is_down(client):
    with override_settings(REDIS_URL=UNREACHABLE_REDIS):
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True


def test_healthz_answers_503_when_the_database_is_down(client, monkeypatch):
    from django.db import OperationalError, connection

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


def test_worker_status_follows_the_heartbeat(settings):
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from tradebots import health

    health.record_heartbeat()
    fresh = health.check_worker()
    stale_time = timezone.now() - timedelta(seconds=4 * settings.HEARTBEAT_SECONDS)
    cache.set(health.HEARTBEAT_CACHE_KEY, stale_time.isoformat())
    stale = health.check_worker()

    assert fresh.ok is True
    assert stale.ok is False
    assert stale.detail.startswith("last heartbeat")


def test_system_status_partial_lists_each_component(user_client):
    html = user_client.get("/system/status/").content.decode()

    assert 'id="system-status"' in html
    for name in ("Database", "Redis", "Worker"):
        assert f"<strong>{name}</strong>" in html


def test_the_redis_cache_keeps_one_pool_however_many_cache_objects_django_builds():
    # Under ASGI every request runs in a fresh context and Django builds a new cache object for
    # it; the pool (and its connections) must outlive it, or each request opens a connection.
    from django.core.cache import caches

    first, second = (caches.create_connection("default") for _ in range(2))
    assert first is not second
    first.set("pool-probe", "ok")

    assert second.get("pool-probe") == "ok"
    assert first._cache._get_connection_pool(True) is second._cache._get_connection_pool(True)


def test_the_health_check_reuses_its_redis_connection():
    from tradebots import health
    from tradebots.redis_client import redis_client

    connections_before = redis_client().info("stats")["total_connections_received"]
    for _ in range(5):
        assert health.check_redis().ok

    opened = redis_client().info("stats")["total_connections_received"] - connections_before
    assert opened <= 1
