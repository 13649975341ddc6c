"""PostgreSQL connections under daphne: every request's sync code runs on a thread of its own,
so connections kept per thread (CONN_MAX_AGE) piled up until "too many clients". The pool bounds
them, whatever the load."""

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import psycopg
import pytest
import requests
from django.db import connection
from django.test import Client

from bots.tests.factories import BotFactory

POOL_MAX = 4
REQUESTS = 300
CONCURRENCY = 30
APPLICATION_NAME = "tradebots-pool-test"


class ConnectionSampler(threading.Thread):
    """Counts, every few milliseconds, the server's connections the daphne under test holds."""

    def __init__(self, conninfo: dict, database: str):
        super().__init__(daemon=True)
        self.conninfo, self.database = conninfo, database
        self.peak = 0
        self.samples = 0
        self.stopping = threading.Event()

    def run(self):
        with psycopg.connect(**self.conninfo, autocommit=True) as sampler:
            while not self.stopping.wait(0.01):
                (count,) = sampler.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name = %s",
                    (self.database, APPLICATION_NAME),
                ).fetchone()
                self.peak = max(self.peak, count)
                self.samples += 1

    def stop(self) -> int:
        self.stopping.set()
        self.join(timeout=10)
        return self.peak


def test_daphne_holds_no_more_connections_than_its_pool(
    transactional_db, user, test_database_env, start_daphne
):
    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is PostgreSQL's (psycopg_pool); CI runs this on it")
    BotFactory.create_batch(3)
    browser = Client()
    browser.force_login(user)
    cookies = {"sessionid": browser.cookies["sessionid"].value}
    database_url = test_database_env["DATABASE_URL"]
    tagged_url = f"{database_url}?{urlencode({'application_name': APPLICATION_NAME})}"
    settings = connection.settings_dict
    sampler = ConnectionSampler(
        {key: settings[name] for key, name in
         (("host", "HOST"), ("port", "PORT"), ("user", "USER"), ("password", "PASSWORD"))
         if settings[name]} | {"dbname": settings["NAME"]},
        settings["NAME"],
    )  # fmt: skip

    with start_daphne(
        DATABASE_URL=tagged_url,
        DATABASE_POOL_MIN_SIZE="1",
        DATABASE_POOL_MAX_SIZE=str(POOL_MAX),
        LOG_LEVEL="WARNING",
    ) as url:
        sampler.start()

        def load_bots_page(_):
            try:
                response = requests.get(
                    f"{url}/bots/", cookies=cookies, timeout=60, allow_redirects=False
                )
            except requests.RequestException as error:
                return repr(error)
            return None if response.status_code == 200 else f"HTTP {response.status_code}"

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            outcomes = list(pool.map(load_bots_page, range(REQUESTS)))
        peak = sampler.stop()

    assert [outcome for outcome in outcomes if outcome] == []
    assert sampler.samples > 10
    assert 1 <= peak <= POOL_MAX
