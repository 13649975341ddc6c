"""`manage.py reconcile`: the report, --limit / --since / --json, and exit codes for cron:
0 in sync, 1 discrepancies, 2 bad input, 3 broker unreachable."""

import json
import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bots.tests.factories import BotFactory
from reconciliation.models import ReconciliationRun
from tradebots.broker import OrderSide, get_broker
from trading import orders
from trading.tests.factories import TradeFactory

from .helpers import run_command

BASE_DIR = Path(__file__).resolve().parents[2]


def crash_leftover(bot) -> str:
    """An order of ours at the broker without a Trade."""
    client_order_id = orders.generate_client_order_id(bot)
    get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, client_order_id)
    return client_order_id


@pytest.fixture
def clean_books(transactional_db):
    bot = BotFactory(name="Apple RSI")
    orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal")
    return bot


def test_in_sync_exits_0(clean_books):
    output, code = run_command()

    assert code == 0
    assert "Compared 1 broker orders" in output
    assert "1 order synced, 0 discrepancies found; 0 external orders." in output
    assert "(window: all history up to " in output
    run = ReconciliationRun.objects.get()
    assert (run.trigger, run.started_by) == ("command", "manage.py reconcile")


def test_discrepancies_exit_1_and_are_listed(clean_books):
    missing = crash_leftover(clean_books)

    output, code = run_command()

    assert code == 1
    assert "1 order synced, 1 discrepancy found" in output
    line = next(line for line in output.splitlines() if missing in line)
    assert line.split()[0] == "missing_in_db"
    assert "Apple RSI" in line and "we have no Trade for it" in line


def test_json_prints_the_report(clean_books):
    missing = crash_leftover(clean_books)
    get_broker().submit_market_order("MSFT", Decimal("1"), OrderSide.BUY, "by-hand-1")

    output, code = run_command("--json", "--limit", "50")

    assert code == 1
    report = json.loads(output)
    assert report["synced_count"] == 1
    assert report["window"]["limit"] == 50
    assert [(d["kind"], d["client_order_id"]) for d in report["discrepancies"]] == [
        ("missing_in_db", missing)
    ]
    assert [o["client_order_id"] for o in report["external_orders"]] == ["by-hand-1"]
    assert report["last_checked"]


@pytest.mark.django_db
def test_since_narrows_the_window():
    TradeFactory(submitted_at="2020-01-01T00:00:00Z")  # old, and not at the broker

    assert run_command("--since", "2024-06-01")[1] == 0
    assert run_command()[1] == 1  # all of history: that old trade is missing at the broker
    assert ReconciliationRun.objects.first().since is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "--since: Enter an ISO 8601 date or date-time"),
        (["--since", "2999-01-01"], "--since: Must be in the past."),
        (["--since", "9999-12-31T23:59-05:00"], "--since: Must be in the past."),
        (["--since", "0001-01-01"], "--since: Must be on or after 1970-01-01"),
        (["--since", "0001-01-01T00:00+05:00"], "--since: Must be on or after 1970-01-01"),
        (["--since", "1969-12-31T23:59Z"], "--since: Must be on or after 1970-01-01"),
        (["--since", "2025-02-30"], "--since: Enter an ISO 8601 date or date-time"),
        (["--limit", "many"], "--limit: Enter a whole number."),
        (["--limit", "0"], "--limit: Ensure this value is greater than or equal to 1."),
        (["--limit", "10001"], "--limit: Ensure this value is less than or equal to 10000."),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    with pytest.raises(CommandError) as error:
        call_command("reconcile", *args, stdout=StringIO())

    assert error.value.returncode == 2
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
    assert not ReconciliationRun.objects.exists()


def test_an_unreachable_broker_exits_3(fake):
    fake.fail(500, times=10, method="GET", path="/v2/orders")

    with pytest.raises(CommandError) as error:
        call_command("reconcile", stdout=StringIO())

    assert error.value.returncode == 3
    assert str(error.value).startswith("The broker could not be reached: Alpaca error 500")


def test_the_real_process_exit_codes(clean_books, test_database_env):
    # Logs at INFO (channels, celery) also go to stderr; the command's own words are what count.
    env = {**os.environ, **test_database_env, "LOG_LEVEL": "WARNING"}

    def _manage(*args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "reconcile", *args],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    clean = _manage()
    assert (clean.returncode, clean.stderr) == (0, "")

    missing = crash_leftover(clean_books)
    drift = _manage("--json")
    assert drift.returncode == 1
    assert json.loads(drift.stdout)["discrepancies"][0]["client_order_id"] == missing
    assert drift.stderr.strip() == ""  # a report with discrepancies is no error of the command
    plain = _manage()
    assert plain.returncode == 1 and plain.stderr.strip() == ""
    assert "1 order synced, 1 discrepancy found" in plain.stdout

    bad = _manage("--since", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "CommandError: --since: Enter an ISO 8601 date or date-time, e.g. 2025-01-31T14:00Z."
    ]

    ancient = _manage("--since", "0001-01-01")
    assert ancient.returncode == 2
    assert ancient.stderr.strip().splitlines() == [
        "CommandError: --since: Must be on or after 1970-01-01: no broker order is older."
    ]
