"""Fixtures for every app's tests: real Redis, a real Celery worker, real daphne, Chromium."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

BASE_DIR = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Chromium has no internet here: without these it keeps dialling out and slows everything down.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # Several pages are open at once in the live-update tests; none may be throttled as hidden.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
SERVER_START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Fixtures that make a test slow enough to leave out of `make test-fast`, and the marker each gets.
SLOW_FIXTURE_MARKERS = {
    "celery_worker": "celery",
    "transactional_db": "transactional",
    "live_server": "transactional",
}


def pytest_collection_modifyitems(items):
    """Mark tests by what they need, so that `make test-fast` can leave them out: a Celery
    worker (``celery``) or a database truncated after each test (``transactional``)."""
    for item in items:
        for fixture in item.fixturenames:
            if fixture in SLOW_FIXTURE_MARKERS:
                item.add_marker(SLOW_FIXTURE_MARKERS[fixture])
        database = item.get_closest_marker("django_db")
        if database is not None and database.kwargs.get("transaction"):
            item.add_marker("transactional")


@pytest.fixture(autouse=True)
def _never_a_real_broker(settings):
    """Keys in a developer's .env must not send test orders to Alpaca: tests use the paper
    exchange unless they point an AlpacaBroker at the fake server themselves."""
    settings.ALPACA_API_KEY = settings.ALPACA_SECRET_KEY = ""
    # Unthrottled: the account summary is pushed on commit, not by a task some later test's
    # worker would run.
    settings.ACCOUNT_REFRESH_SECONDS = 0


@pytest.fixture
def admin_user(db):
    """pytest-django's admin (used by ``admin_client``) with the factory's password, hashed once
    per run instead of once per test."""
    from accounts.tests.factories import UserFactory

    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def user(db):
    """A trader: may change bots, sell and reconcile."""
    from accounts.tests.factories import UserFactory

    return UserFactory(role="trader")


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def viewer(db):
    """A viewer: sees every page, changes nothing."""
    from accounts.tests.factories import UserFactory

    return UserFactory(role="viewer")


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def socket_headers(client, user):
    """Headers of a logged-in browser for a WebsocketCommunicator on /ws/updates/."""
    client.force_login(user)
    return [
        (b"host", b"127.0.0.1"),
        (b"origin", b"http://127.0.0.1"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]


@pytest.fixture
def alpaca_fake(transactional_db, settings):
    """The fake Alpaca server, with the settings pointing get_broker() at it: the app talks to
    it through AlpacaBroker and real alpaca-py (short timeouts, no retry sleeps)."""
    from trading.tests.fake_alpaca import API_KEY, SECRET_KEY, FakeAlpaca

    with FakeAlpaca() as fake:
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = API_KEY, SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.url
        settings.ALPACA_READ_TIMEOUT_SECONDS = 0.5
        settings.ALPACA_RETRY_WAIT_SECONDS = 0
        yield fake


@pytest.fixture
def buying_power(db):
    """Set the paper exchange's buying power (its cash, as it has no margin)."""
    from tradebots.broker.paper import exchange

    def set_buying_power(amount: str) -> Decimal:
        account = exchange.get_account()
        account.cash = Decimal(amount)
        account.save()
        return account.cash

    return set_buying_power


@pytest.fixture
def log_in():
    """Log a browser page in through the real login form."""
    from accounts.tests.factories import DEFAULT_PASSWORD

    def log_in_page(page, base_url, user):
        page.goto(base_url + "/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", DEFAULT_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("h1:has-text('Dashboard')")

    return log_in_page


@pytest.fixture
def elsewhere():
    """Run ``action()`` as another process's code would, in a thread of its own with its own
    database connection (Playwright's event loop owns the test's thread), and return what it
    returned."""
    import threading

    from django.db import connection

    def run_elsewhere(action):
        outcome = {}

        def work():
            try:
                outcome["value"] = action()
            finally:
                connection.close()

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        return outcome.get("value")

    return run_elsewhere


@pytest.fixture
def wait_until_watching():
    """Wait until a page's live-updates socket has joined ``groups`` (its ``#live-watching``
    confirms each declaration): a push sent earlier would miss the page."""

    def wait(page, *groups: str) -> None:
        selector = "".join(f'[data-watching~="{group}"]' for group in groups)
        page.wait_for_selector(f"#live-watching{selector}", state="attached")

    return wait


@pytest.fixture
def celery_worker():
    """A real Celery worker (in a thread of this process) consuming from the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from tradebots.celery import app

    # Tasks queued by earlier tests (verifications, throttled refreshes) are not this test's.
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        yield app


def _database_env_for_subprocess() -> dict[str, str]:
    """Point another process at the test database this session created (and at no broker)."""
    from django.db import connection

    no_broker = {"ALPACA_API_KEY": "", "ALPACA_SECRET_KEY": ""}
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return {**no_broker, "SQLITE_PATH": str(database["NAME"]), "DATABASE_URL": ""}
    url = urlparse(os.environ["DATABASE_URL"])
    return {**no_broker, "DATABASE_URL": url._replace(path="/" + database["NAME"]).geturl()}


@pytest.fixture
def test_database_env(django_db_setup) -> dict[str, str]:
    """Environment for a subprocess (manage.py, daphne) that must use the test database."""
    return _database_env_for_subprocess()


@contextlib.contextmanager
def running_daphne(log_path: Path, **env: str):
    """A daphne process serving the app as `make run` starts it, on the test database (with
    ``env`` on top); yields its base URL once /healthz answers, stops it afterwards."""
    port = free_port()
    env = {**os.environ, **_database_env_for_subprocess(), **env}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "tradebots.asgi:application"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"daphne did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def start_daphne(django_db_setup, tmp_path):
    """A daphne of the test's own with more variables: ``with start_daphne(VAR="x") as url:``."""
    return lambda **env: running_daphne(tmp_path / "daphne.log", **env)


@pytest.fixture(scope="session")
def daphne_url(django_db_setup, tmp_path_factory):
    """The real ASGI server (HTTP + WebSocket) as `make run` starts it, on the test database."""
    with running_daphne(tmp_path_factory.mktemp("daphne") / "daphne.log") as url:
        yield url


@pytest.fixture
def page(monkeypatch):
    """A fresh headless Debian Chromium page, driven by Playwright (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the test makes
    # around the browser are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # A context of its own, so a test can open more pages sharing the login.
        page = browser.new_context().new_page()
        page.context.set_default_timeout(10_000)
        yield page
        browser.close()
        # While Playwright's loop runs, the ORM works on a connection local to that context,
        # which the test database teardown cannot see; close it here.
        connections.close_all()
