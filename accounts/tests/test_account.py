"""The account summary, realized gains per bot, and unmanaged positions."""

from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command

from accounts import services
from accounts.services import AccountSummary
from bots.tests.factories import BotFactory
from tradebots import account_refresh
from tradebots.asgi import application
from tradebots.broker import BrokerPosition, BrokerUnavailable, OrderSide, get_broker
from tradebots.broker.paper import exchange
from tradebots.broker.paper.broker import PaperBroker
from tradebots.tests.live_pages import declare
from trading.positions import find_unmanaged
from trading.tests.factories import PositionFactory, TradeFactory


def set_cash(amount: str) -> None:
    account = exchange.get_account()
    account.cash = Decimal(amount)
    account.save()


def held(symbol: str, qty: str, price: str = "100") -> BrokerPosition:
    qty, price = Decimal(qty), Decimal(price)
    return BrokerPosition(symbol, qty, Decimal("90"), price, qty * price, qty * (price - 90))


@pytest.fixture
def books(db):
    """Two bots (3,000 allocated), a closed win and a closed loss, one open position (1 share at
    $150: 150 deployed, so 2,850 reserved)."""
    set_cash("10000")
    winner = BotFactory(capital=Decimal("2000"))
    loser = BotFactory(capital=Decimal("1000"), symbol="MSFT")
    PositionFactory(bot=winner, closed=True, realized_pnl=Decimal("250.50"))
    PositionFactory(bot=loser, closed=True, realized_pnl=Decimal("-75.25"))
    PositionFactory(bot=winner, closed=True, realized_pnl=Decimal("24.75"))
    PositionFactory(bot=loser, qty=Decimal("1"))
    return winner, loser


def test_api_account_reports_every_figure(user_client, books):
    body = user_client.get("/api/account").json()

    assert body == {
        "broker": "paper_exchange",
        "broker_label": "Paper exchange (simulated)",
        "account_number": exchange.get_account().account_number,
        "equity": "10000",
        "cash": "10000",
        "buying_power": "10000",
        "portfolio_value": "10000",
        "allocated_capital": "3000",
        "reserved_capital": "2850",
        "deployed_capital": "150",
        "available_capital": "7150",
        "available_level": "healthy",
        "total_realized_gains": "200",
        "error": None,
    }


def test_api_account_through_alpaca(user_client, alpaca_fake):
    BotFactory(capital=Decimal("2500"))

    body = user_client.get("/api/account").json()

    assert body["broker"] == "alpaca_paper"
    assert body["broker_label"] == "Alpaca paper trading"
    assert body["account_number"] == exchange.get_account().account_number
    assert Decimal(body["buying_power"]) == Decimal("100000")
    assert Decimal(body["available_capital"]) == Decimal("97500")
    assert body["error"] is None


def test_broker_down_still_answers_200_with_our_books(user_client, books, monkeypatch):
    def down(self):
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "get_account", down)

    response = user_client.get("/api/account")

    assert response.status_code == 200
    body = response.json()
    assert body["error"] == "Broker unreachable: Alpaca unreachable: ConnectTimeout"
    for name in ("account_number", "equity", "cash", "buying_power", "available_capital"):
        assert body[name] is None
    assert body["allocated_capital"] == "3000"
    assert body["total_realized_gains"] == "200"
    assert "Broker unreachable" in user_client.get("/").content.decode()


@pytest.mark.parametrize(
    ("buying_power", "reserved", "level"),
    [("1000", "0", "healthy"), ("1000", "900", "healthy"), ("1000", "900.01", "low"),
     ("1000", "1000", "low"), ("1000", "1000.01", "over"), ("0", "0", "healthy")],
)  # fmt: skip
def test_available_capital_colour_thresholds(buying_power, reserved, level):
    summary = AccountSummary(
        broker="paper_exchange", broker_label="x", allocated_capital=Decimal("5000"),
        reserved_capital=Decimal(reserved), deployed_capital=Decimal(0),
        total_realized_gains=Decimal(0), buying_power=Decimal(buying_power),
    )  # fmt: skip

    assert summary.available_level == level


def test_a_fully_invested_account_is_not_over_committed(user_client):
    """Two bots bought with all their capital (one still has its last buy in flight): the
    buying power fell by what they spent, and nothing is counted twice."""
    set_cash("2500")
    whole = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=whole, qty=Decimal("8"), avg_entry_price=Decimal("125"))
    in_flight = BotFactory(capital=Decimal("1500"))
    PositionFactory(bot=in_flight, qty=Decimal("5"), avg_entry_price=Decimal("100"))
    TradeFactory(
        bot=in_flight, status="partially_filled", qty=Decimal("10"), filled_qty=Decimal("5"),
        expected_price=Decimal("200"),
    )  # fmt: skip
    set_cash("0")  # 1,000 + 500 spent; the 1,000 of the open order is held by the broker

    body = user_client.get("/api/account").json()
    html = user_client.get("/").content.decode()

    assert {name: body[name] for name in body if name.endswith("_capital")} == {
        "allocated_capital": "2500",
        "reserved_capital": "0",
        "deployed_capital": "2500",
        "available_capital": "0",
    }
    assert 'data-testid="available" class="level-healthy">$0.00' in html
    assert "Over-committed" not in html


def test_an_idle_bot_beyond_the_buying_power_is_over_committed(user_client):
    set_cash("500")
    BotFactory(capital=Decimal("1000"))

    body = user_client.get("/api/account").json()

    assert (body["reserved_capital"], body["available_capital"]) == ("1000", "-500")
    assert "Over-committed: bots reserve more than the buying power." in (
        user_client.get("/").content.decode()
    )


def test_dashboard_shows_the_account(user_client, books):
    html = user_client.get("/").content.decode()

    assert f"Account #{exchange.get_account().account_number}" in html
    for label in ("Total Account Value", "Cash", "Buying Power", "Total Realized Gains"):
        assert label in html
    assert 'data-testid="realized-gains" class="pos">$200.00' in html
    assert 'class="level-healthy">$7,150.00' in html
    assert 'data-testid="reserved">$2,850.00' in html
    assert 'data-testid="deployed">$150.00' in html
    assert "Available = buying power − reserved" in html


def test_dashboard_query_count_does_not_grow_with_bots_and_positions(
    user_client, books, django_assert_max_num_queries
):
    with django_assert_max_num_queries(50) as baseline:
        user_client.get("/")
    for _ in range(10):
        bot = BotFactory(capital=Decimal("1"))
        PositionFactory(bot=bot, closed=True)
        PositionFactory(bot=bot)

    with django_assert_max_num_queries(len(baseline.captured_queries)):
        user_client.get("/")


def test_realized_gains_per_bot_in_the_api(user_client, books, django_assert_max_num_queries):
    winner, loser = books

    with django_assert_max_num_queries(4):
        listed = {b["id"]: b for b in user_client.get("/api/bots").json()["results"]}
    single = user_client.get(f"/api/bots/{loser.pk}").json()

    assert listed[str(winner.pk)]["realized_gains"] == "275.25"
    assert listed[str(loser.pk)]["realized_gains"] == "-75.25"
    assert single["realized_gains"] == "-75.25"


def test_bot_cards_show_realized_gains_without_n_plus_one(
    user_client, books, django_assert_max_num_queries
):
    with django_assert_max_num_queries(30) as baseline:
        html = user_client.get("/bots/").content.decode()
    for _ in range(10):
        PositionFactory(bot=BotFactory(capital=Decimal("1")), closed=True)

    with django_assert_max_num_queries(len(baseline.captured_queries)):
        user_client.get("/bots/")

    assert 'data-testid="realized-gains">$275.25<' in html.replace('class="pos" ', "")


def test_the_account_command_prints_the_summary(books):
    out = StringIO()

    call_command("account", stdout=out)

    text = out.getvalue()
    assert f"Account #{exchange.get_account().account_number} (Paper exchange (simulated))" in text
    assert "Allocated to bots:" in text and "$3,000.00" in text
    assert "Reserved by bots:" in text and "$2,850.00" in text
    assert "Available:" in text and "$7,150.00" in text
    assert "Total realized gains:" in text and "$200.00" in text


# --- unmanaged positions -----------------------------------------------------------------------


def test_extra_shares_at_the_broker_are_unmanaged():
    (extra,) = find_unmanaged([held("AAPL", "15")], {"AAPL": Decimal("10")})

    assert (extra.symbol, extra.qty, extra.broker_qty) == ("AAPL", 5, 15)
    assert extra.market_value == Decimal("500.00")
    assert extra.unrealized_pl == Decimal("50.00")


def test_a_symbol_we_do_not_track_is_wholly_unmanaged():
    (extra,) = find_unmanaged([held("TSLA", "3")], {"AAPL": Decimal("10")})

    assert (extra.symbol, extra.qty) == ("TSLA", 3)


def test_two_bots_summing_to_the_brokers_quantity_leave_nothing_unmanaged(db):
    PositionFactory(symbol="AAPL", qty=Decimal("4"))
    PositionFactory(symbol="AAPL", qty=Decimal("6"))
    PositionFactory(symbol="AAPL", qty=Decimal("100"), closed=True)
    from trading.positions import tracked_quantities

    assert find_unmanaged([held("AAPL", "10")], tracked_quantities()) == []


def test_a_short_at_the_broker_is_unmanaged_as_a_negative_quantity():
    (short,) = find_unmanaged([held("SPY", "-7")], {})

    assert short.qty == -7


def test_tracking_more_than_the_broker_holds_is_not_unmanaged():
    assert find_unmanaged([held("AAPL", "5")], {"AAPL": Decimal("8")}) == []


@pytest.mark.django_db(transaction=True)
def test_the_api_lists_managed_and_unmanaged_positions_apart(user_client, settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    from trading.orders import place_order

    bot = BotFactory(name="Holder", symbol="AAPL")
    place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    get_broker().submit_market_order("AAPL", Decimal("2"), OrderSide.BUY, "placed-by-hand-1")
    get_broker().submit_market_order("KO", Decimal("3"), OrderSide.BUY, "placed-by-hand-2")

    managed = user_client.get("/api/positions").json()["results"]
    unmanaged = {
        row["symbol"]: row for row in user_client.get("/api/positions/unmanaged").json()["results"]
    }

    assert [(r["bot_name"], r["symbol"], r["qty"]) for r in managed] == [("Holder", "AAPL", "4")]
    assert set(unmanaged) == {"AAPL", "KO"}
    assert (unmanaged["AAPL"]["qty"], unmanaged["KO"]["qty"]) == ("2", "3")
    assert Decimal(unmanaged["KO"]["current_price"]) > 0
    assert unmanaged["KO"]["unrealized_pl"] is not None

    html = user_client.get("/trading/positions/").content.decode()
    assert html.count('data-testid="unmanaged-row"') == 2
    assert ">Unmanaged<" in html


@pytest.mark.django_db(transaction=True)
def test_a_fill_refreshes_the_account_summary_on_open_dashboards(
    socket_headers, settings, celery_worker, monkeypatch
):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    settings.ACCOUNT_REFRESH_SECONDS = 0.2
    monkeypatch.setattr(account_refresh, "_refresh_known_until", 0.0)
    from trading.orders import place_order

    bot = BotFactory()

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        await declare(communicator, "dashboard")
        await sync_to_async(place_order)(bot, "buy", Decimal("1"), "RSI buy signal")
        messages = []
        while not any('id="account-summary"' in m for m in messages):
            messages.append(await communicator.receive_from(timeout=10))
        await communicator.disconnect()
        return messages

    summary = next(m for m in async_to_sync(scenario)() if 'id="account-summary"' in m)

    cash = exchange.get_account().cash
    assert f"${cash:,.2f}" in summary


@pytest.mark.django_db(transaction=True)
def test_many_fills_schedule_one_account_refresh_per_window(settings, monkeypatch):
    """However many fills, one broker call per ACCOUNT_REFRESH_SECONDS, and none in the order
    path itself."""
    from accounts import tasks
    from tradebots.broker.paper.broker import PaperBroker
    from tradebots.redis_client import redis_client
    from trading.orders import place_order

    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    settings.ACCOUNT_REFRESH_SECONDS = 60
    monkeypatch.setattr(account_refresh, "_refresh_known_until", 0.0)
    redis_client().delete(account_refresh.REFRESH_SCHEDULED_KEY)
    scheduled = []
    monkeypatch.setattr(
        tasks.refresh_account_summary, "apply_async", lambda *a, **kw: scheduled.append(kw)
    )
    account_calls = []
    real_get_account = PaperBroker.get_account
    monkeypatch.setattr(
        PaperBroker, "get_account", lambda self: account_calls.append(1) or real_get_account(self)
    )

    for bot in BotFactory.create_batch(5):
        place_order(bot, "buy", Decimal("1"), "RSI buy signal", verify=False)

    assert scheduled == [{"countdown": 60}]
    assert account_calls == []
    redis_client().delete(account_refresh.REFRESH_SCHEDULED_KEY)


def test_the_api_status_is_the_dashboards_system_panel(user_client, request):
    from django.core.cache import cache

    from tradebots.health import record_heartbeat
    from trading.engine import MARKET_STATUS_CACHE_KEY

    record_heartbeat()
    request.addfinalizer(lambda: cache.delete(MARKET_STATUS_CACHE_KEY))
    cache.set(MARKET_STATUS_CACHE_KEY, {
        "is_open": True, "next_open": "2026-12-01T14:30:00+00:00",
        "next_close": "2026-11-30T21:00:00+00:00", "checked_at": "2026-11-30T15:00:00+00:00",
    })  # fmt: skip

    body = user_client.get("/api/status").json()

    assert body["database"]["ok"] and body["redis"] == {"ok": True, "detail": "ok"}
    assert body["worker"]["ok"] is True
    assert body["market"] == {
        "is_open": True,
        "next_open": "2026-12-01T14:30:00Z",
        "next_close": "2026-11-30T21:00:00Z",
        "checked_at": "2026-11-30T15:00:00Z",
    }


@pytest.mark.django_db
def test_page_loads_within_the_refresh_window_share_one_broker_reading(settings, monkeypatch):
    """Open dashboards cost the broker one account call per ACCOUNT_REFRESH_SECONDS; the
    refresh pushed after a change always reads afresh."""
    from django.core.cache import cache

    settings.ACCOUNT_REFRESH_SECONDS = 60
    cache.delete(services.BROKER_ACCOUNT_CACHE_KEY)
    account_calls = []
    real_get_account = PaperBroker.get_account
    monkeypatch.setattr(
        PaperBroker, "get_account", lambda self: account_calls.append(1) or real_get_account(self)
    )

    first, second = services.account_summary(), services.account_summary()
    assert len(account_calls) == 1
    assert second.buying_power == first.buying_power

    exchange.submit_order(
        symbol="AAPL", qty=Decimal(1), side="buy", order_type="market", client_order_id="cache-1"
    )
    refreshed = services.account_summary(fresh=True)
    assert len(account_calls) == 2
    assert refreshed.cash < first.cash
    assert services.account_summary().cash == refreshed.cash  # the fresh reading is shared
    assert len(account_calls) == 2


@pytest.mark.django_db
def test_bot_changes_that_move_the_figures_refresh_the_account(
    django_capture_on_commit_callbacks, monkeypatch
):
    """Creating and deleting a bot and changing its capital refresh the dashboards' account
    summary; renaming it does not."""
    from accounts import tasks
    from bots import services as bot_services

    refreshes = []
    monkeypatch.setattr(
        tasks.refresh_account_summary, "apply", lambda *a, **kw: refreshes.append("refresh")
    )
    data = {"name": "Apple", "symbol": "AAPL", "capital": Decimal("1000"), "timeframe": "5Min"}

    with django_capture_on_commit_callbacks(execute=True):
        bot = bot_services.create_bot(data, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        bot_services.update_bot(bot, {"name": "Apple two"}, "alice")
    assert refreshes == ["refresh"]
    with django_capture_on_commit_callbacks(execute=True):
        bot_services.update_bot(bot, {"capital": Decimal("500")}, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        bot_services.delete_bot(bot, "alice")
    assert refreshes == ["refresh"] * 3


def test_a_fresh_process_knows_the_refresh_task_by_name():
    """tradebots.account_refresh names the task without importing accounts: a process that
    never imported accounts.tasks itself (a daphne) still finds it once Django is set up."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import django; django.setup(); from tradebots.celery import app; "
        "from tradebots.account_refresh import REFRESH_TASK; assert REFRESH_TASK in app.tasks"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tradebots.settings"},
    )


@pytest.mark.django_db
def test_the_account_value_is_kept_over_time_and_old_readings_dropped(settings, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from accounts import tasks
    from accounts.models import EquitySnapshot

    settings.EQUITY_KEEP_DAYS = 30
    old = EquitySnapshot.objects.create(
        taken_at=timezone.now() - timedelta(days=31), equity=Decimal("1"), cash=Decimal("1")
    )

    tasks.snapshot_equity()
    services.push_account_summary()  # every refresh keeps its reading too

    kept = list(EquitySnapshot.objects.all())
    assert old not in kept and len(kept) == 2
    assert kept[-1].equity == get_broker().get_account().equity
    # Readings in the same second are one point of the chart.
    assert services.equity_series()[-1]["value"] == str(kept[-1].equity)
    assert settings.CELERY_BEAT_SCHEDULE["snapshot-equity"]["task"] == tasks.snapshot_equity.name


@pytest.mark.django_db
def test_no_reading_no_snapshot(monkeypatch):
    from accounts.models import EquitySnapshot

    def unreachable(fresh):
        raise BrokerUnavailable("down")

    monkeypatch.setattr(services, "_broker_account", unreachable)

    assert services.snapshot_equity() is None
    assert not EquitySnapshot.objects.exists()


@pytest.mark.django_db
def test_a_long_equity_history_is_thinned_to_hours(monkeypatch):
    from datetime import UTC, datetime, timedelta

    from accounts.models import EquitySnapshot

    monkeypatch.setattr(services, "MAX_EQUITY_POINTS", 5)
    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    EquitySnapshot.objects.bulk_create(
        EquitySnapshot(taken_at=start + timedelta(minutes=5 * i), equity=Decimal(100 + i), cash=0)
        for i in range(36)  # three hours every five minutes
    )

    series = services.equity_series()

    assert [p["value"] for p in series] == ["105.50", "117.50", "129.50"]  # each hour's mean
    assert [p["time"] for p in series] == [int(start.timestamp()) + 3600 * h for h in range(3)]
