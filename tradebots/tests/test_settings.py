"""Settings read from the environment at start-up, in a fresh process each (as daphne, Celery
and manage.py read them)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PRINT_SETTINGS = """
import json
from django.conf import settings
database = settings.DATABASES["default"]
print(json.dumps({
    "secret_key_from_env": settings.SECRET_KEY == "x" * 50,
    "pool": database.get("OPTIONS", {}).get("pool"),
    "conn_max_age": database["CONN_MAX_AGE"],
    "health_checks": database["CONN_HEALTH_CHECKS"],
    "cooloff_seconds": settings.AXES_COOLOFF_TIME.total_seconds(),
    "failure_limit": settings.AXES_FAILURE_LIMIT,
}))
"""


def start(tmp_path, **env) -> subprocess.CompletedProcess:
    """Configure Django in a new process with these variables (the rest from a clean slate)."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "DEBUG", "HTTPS", "DATABASE_URL"}
        and not key.startswith(("DATABASE_POOL_", "LOGIN_"))
    }
    code = f"import django; django.setup()\n{PRINT_SETTINGS}"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "tradebots.settings",
             "TRADEBOTS_VAR_DIR": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def settings_of(tmp_path, **env) -> dict:
    process = start(tmp_path, **env)
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    process = start(tmp_path, DEBUG="false", HTTPS="true")

    assert process.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set in production" in process.stderr
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("env", "from_env"),
    [
        ({"DEBUG": "false", "HTTPS": "true", "SECRET_KEY": "x" * 50}, True),
        ({"DEBUG": "false", "HTTPS": "false"}, False),  # local: generated into var/
        ({"DEBUG": "true", "HTTPS": "true"}, False),
    ],
)
def test_a_secret_key_is_generated_only_outside_production(tmp_path, env, from_env):
    assert settings_of(tmp_path, **env)["secret_key_from_env"] is from_env
    assert (tmp_path / "secret_key").exists() is not from_env


def test_postgresql_uses_psycopgs_pool_sized_from_the_environment(tmp_path):
    figures = settings_of(
        tmp_path,
        DATABASE_URL="postgres://tradebots@db.internal:5432/tradebots",
        DATABASE_POOL_MIN_SIZE="2",
        DATABASE_POOL_MAX_SIZE="7",
        DATABASE_POOL_TIMEOUT_SECONDS="4.5",
    )

    assert figures["pool"] == {"min_size": 2, "max_size": 7, "timeout": 4.5}
    assert figures["conn_max_age"] == 0  # the pool hands connections back after each request
    assert figures["health_checks"] is True


def test_sqlite_has_no_pool(tmp_path):
    assert settings_of(tmp_path)["pool"] is None


@pytest.mark.parametrize(("low", "high"), [("5", "2"), ("-1", "3"), ("0", "0")])
def test_impossible_pool_sizes_refuse_to_start(tmp_path, low, high):
    process = start(tmp_path, DATABASE_POOL_MIN_SIZE=low, DATABASE_POOL_MAX_SIZE=high)

    assert process.returncode != 0
    assert "DATABASE_POOL_MAX_SIZE must be at least 1" in process.stderr


def test_login_throttling_comes_from_the_environment(tmp_path):
    figures = settings_of(tmp_path, LOGIN_FAILURE_LIMIT="3", LOGIN_COOLOFF_MINUTES="30")

    assert (figures["failure_limit"], figures["cooloff_seconds"]) == (3, 1800)
