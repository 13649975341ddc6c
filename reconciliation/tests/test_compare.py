"""The comparison itself, on broker orders made by hand: matching, every kind, the window, the
cases left out, and the number of queries."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bots.tests.factories import BotFactory
from reconciliation import schemas, services
from reconciliation.models import ReconciliationRun
from tradebots.broker import BrokerError
from trading.models import Position, Trade
from trading.orders import generate_client_order_id
from trading.tests.factories import PositionFactory, TradeFactory

from .helpers import ListBroker, held, make_order, order_for, unreachable

pytestmark = pytest.mark.django_db

NOW = timezone.now


def reconcile(orders, **options) -> ReconciliationRun:
    return services.reconcile(
        trigger=ReconciliationRun.Trigger.COMMAND, broker=ListBroker(orders), **options
    )


def trade_at(moment, **fields) -> Trade:
    """A Trade whose order left at ``moment`` (written 50 ms before, as the order path does)."""
    trade = TradeFactory(submitted_at=moment, **fields)
    Trade.objects.filter(pk=trade.pk).update(created_at=moment - timedelta(milliseconds=50))
    trade.refresh_from_db()
    return trade


def kinds(run) -> list[str]:
    return sorted(d["kind"] for d in run.discrepancies)


# Agreement and each kind


def test_orders_that_agree_are_synced():
    trades = [TradeFactory() for _ in range(3)]

    run = reconcile([order_for(trade) for trade in trades])

    assert run.outcome == ReconciliationRun.Outcome.IN_SYNC
    assert (run.orders_checked, run.synced_count, run.discrepancy_count) == (3, 3, 0)
    assert run.discrepancies == [] and run.external_orders == []
    assert run.summary == "3 orders synced, 0 discrepancies found"


def test_an_order_of_ours_without_a_trade_is_missing_in_db_and_names_its_bot():
    bot = BotFactory(name="Apple RSI")
    client_order_id = generate_client_order_id(bot)

    run = reconcile([make_order(client_order_id, order_id="ord-1")])

    assert run.outcome == ReconciliationRun.Outcome.DISCREPANCIES
    (found,) = run.discrepancies
    assert found["kind"] == "missing_in_db"
    assert found["bot"] == {"id": str(bot.pk), "name": "Apple RSI", "prefix": bot.short_id}
    assert (found["order_id"], found["client_order_id"]) == ("ord-1", client_order_id)
    assert (found["symbol"], found["side"], found["trade_id"]) == ("AAPL", "buy", None)
    assert found["ours"] is None
    assert found["broker"] == "filled, buy 10/10 AAPL @ $150.25"
    assert "no Trade" in found["detail"]


def test_a_deleted_bots_order_is_still_ours():
    run = reconcile([make_order("bot-0badc0de-12345678")])

    (found,) = run.discrepancies
    assert found["kind"] == "missing_in_db"
    assert found["bot"] == {"id": None, "name": None, "prefix": "0badc0de"}


def test_an_unmanaged_close_without_its_trade_is_ours_too():
    manual = make_order("manual-0123456789ab")
    recorded = TradeFactory(bot=None, client_order_id="manual-ba9876543210", symbol="SPY")
    look_alike = make_order("manual-sale-of-spy")  # typed by a person: not the app's pattern

    run = reconcile([manual, order_for(recorded), look_alike])

    (found,) = run.discrepancies
    assert (found["kind"], found["client_order_id"]) == ("missing_in_db", "manual-0123456789ab")
    assert found["bot"] == {"id": None, "name": None, "prefix": None}
    assert run.synced_count == 1
    assert [o["client_order_id"] for o in run.external_orders] == ["manual-sale-of-spy"]


def test_a_trade_the_broker_does_not_have_is_missing_in_broker():
    trade = TradeFactory(price=Decimal("150.25"))

    run = reconcile([])

    (found,) = run.discrepancies
    assert found["kind"] == "missing_in_broker"
    assert found["trade_id"] == trade.pk
    assert found["client_order_id"] == trade.client_order_id
    assert found["bot"]["name"] == trade.bot.name
    assert found["ours"] == "filled, buy 10/10 AAPL @ $150.25"
    assert found["broker"] is None


def test_status_price_and_quantity_are_each_reported():
    trade = TradeFactory(price=Decimal("150.25"))

    run = reconcile([order_for(trade, status="partially_filled", filled_qty="4", price="151.00")])

    assert kinds(run) == ["price_mismatch", "qty_mismatch", "status_mismatch"]
    by_kind = {d["kind"]: d for d in run.discrepancies}
    assert by_kind["status_mismatch"]["ours"] == "filled"
    assert by_kind["status_mismatch"]["broker"] == "partially_filled"
    assert by_kind["qty_mismatch"]["detail"] == "Filled: ours 10, broker 4."
    assert (
        by_kind["price_mismatch"]["detail"] == "Average fill price: ours $150.25, broker $151.00."
    )
    assert all(d["trade_id"] == trade.pk for d in run.discrepancies)
    assert run.synced_count == 0


def test_broker_statuses_are_read_in_our_vocabulary():
    accepted = TradeFactory(status=Trade.Status.ACCEPTED)
    Trade.objects.filter(pk=accepted.pk).update(updated_at=NOW() - timedelta(hours=1))

    run = reconcile([order_for(accepted, status="new")])

    assert run.discrepancies == [] and run.synced_count == 1


@pytest.mark.parametrize(
    ("ours", "broker", "differs"),
    [
        ("150.25", "150.2549", False),  # the same to the cent
        ("150.2500", "150.25", False),
        ("150.25", "150.255", True),  # rounds half up to 150.26
        ("150.25", "150.26", True),
        (None, "150.25", True),
    ],
)
def test_prices_are_compared_to_the_cent(ours, broker, differs):
    trade = TradeFactory(price=Decimal(ours) if ours else None)

    run = reconcile([order_for(trade, price=broker)])

    assert ("price_mismatch" in kinds(run)) is differs


def test_an_ordered_quantity_difference_is_a_quantity_mismatch():
    trade = TradeFactory()

    run = reconcile([order_for(trade, qty="12", filled_qty="10")])

    (found,) = run.discrepancies
    assert found["kind"] == "qty_mismatch"
    assert found["detail"] == "Filled: ours 10, broker 10. Ordered: ours 10, broker 12."


def test_orders_not_placed_by_a_bot_are_listed_as_external():
    trade = TradeFactory()
    by_hand = make_order("my-manual-order", order_id="ord-hand", status="filled")

    run = reconcile([order_for(trade), by_hand])

    assert run.discrepancies == [] and run.synced_count == 1
    assert run.external_count == 1
    (external,) = run.external_orders
    assert external["client_order_id"] == "my-manual-order"
    assert external["order_id"] == "ord-hand"
    assert (external["qty"], external["filled_avg_price"], external["status"]) == (
        "10",
        "150.25",
        "filled",
    )


# Trades from before linking, intents in flight, orders never sent


def test_a_trade_without_client_order_id_is_matched_on_order_id():
    trade = TradeFactory(client_order_id=None, order_id="legacy-1", price=Decimal("150.25"))

    run = reconcile([make_order("some-other-id", order_id="legacy-1", price="150.99")])

    assert run.external_count == 0
    (found,) = run.discrepancies
    assert (found["kind"], found["trade_id"], found["client_order_id"]) == (
        "price_mismatch",
        trade.pk,
        "some-other-id",
    )


def test_trades_with_neither_id_are_left_out_and_counted():
    TradeFactory(client_order_id=None, order_id=None)
    TradeFactory(client_order_id=None, order_id=None)

    run = reconcile([])

    assert run.discrepancies == []
    assert run.unlinked_trades == 2


def test_a_trade_still_in_flight_is_not_judged():
    fresh = TradeFactory(status=Trade.Status.PENDING, order_id=None, filled_qty=0, price=None)
    followed = TradeFactory(status=Trade.Status.ACCEPTED, filled_qty=0, price=None)

    run = reconcile([order_for(followed, status="filled", filled_qty="10", price="150.25")])

    assert run.discrepancies == []
    assert run.in_flight == 2
    assert fresh.pk  # written, not yet sent: the order sync sends or abandons it


def test_an_open_trade_the_sync_stopped_following_is_judged(settings):
    stale = TradeFactory(status=Trade.Status.ACCEPTED, filled_qty=0, price=None)
    lost = TradeFactory(status=Trade.Status.UNKNOWN, order_id=None, filled_qty=0, price=None)
    long_ago = NOW() - services.in_flight_grace() - timedelta(seconds=1)
    Trade.objects.update(updated_at=long_ago)

    run = reconcile([order_for(stale, status="filled", filled_qty="10", price="150.25")])

    assert run.in_flight == 0
    assert {(d["kind"], d["trade_id"]) for d in run.discrepancies} == {
        ("status_mismatch", stale.pk),
        ("qty_mismatch", stale.pk),
        ("price_mismatch", stale.pk),
        ("missing_in_broker", lost.pk),
    }


def test_refused_or_abandoned_intents_are_not_expected_at_the_broker():
    TradeFactory(status=Trade.Status.REJECTED, order_id=None, filled_qty=0, price=None)
    TradeFactory(status=Trade.Status.CANCELED, order_id=None, filled_qty=0, price=None)
    canceled_at_broker = TradeFactory(status=Trade.Status.CANCELED, filled_qty=0, price=None)

    run = reconcile([])

    assert [(d["kind"], d["trade_id"]) for d in run.discrepancies] == [
        ("missing_in_broker", canceled_at_broker.pk)
    ]


# The window


def test_with_the_limit_reached_only_trades_after_the_oldest_order_are_judged():
    now = NOW()
    orders = [order_for(trade_at(now - timedelta(minutes=minutes))) for minutes in (1, 2, 3, 4)]
    inside = trade_at(now - timedelta(minutes=2, seconds=30))  # between fetched orders
    at_edge = trade_at(now - timedelta(minutes=3))  # same instant as the oldest fetched
    trade_at(now - timedelta(minutes=10))  # older history
    orders.append(make_order(submitted_at=now - timedelta(minutes=9)))  # beyond the limit

    run = reconcile(orders, limit=3)

    assert run.limit_reached
    assert run.window_start == now - timedelta(minutes=3)
    assert run.orders_checked == 3 and run.synced_count == 3
    assert [(d["kind"], d["trade_id"]) for d in run.discrepancies] == [
        ("missing_in_broker", inside.pk)
    ]
    assert at_edge.pk not in {d["trade_id"] for d in run.discrepancies}


def test_since_bounds_the_window():
    now = NOW()
    since = now - timedelta(hours=1)
    trade_at(since - timedelta(seconds=1))  # before the window: not judged
    after = trade_at(since + timedelta(seconds=1))
    old_order = make_order(submitted_at=since - timedelta(minutes=5))

    run = reconcile([old_order], since=since)

    assert run.limit == services.MAX_LIMIT and not run.limit_reached
    assert run.window_start == since
    assert run.orders_checked == 0
    assert [(d["kind"], d["trade_id"]) for d in run.discrepancies] == [
        ("missing_in_broker", after.pk)
    ]


def test_when_the_broker_has_fewer_orders_than_the_limit_all_history_is_judged():
    ancient = trade_at(NOW() - timedelta(days=400))

    run = reconcile([], limit=100)

    assert run.window_start is None and not run.limit_reached
    assert [d["trade_id"] for d in run.discrepancies] == [ancient.pk]


def test_trades_written_after_the_check_started_are_not_judged():
    trade_at(NOW() + timedelta(seconds=30))

    run = reconcile([])

    assert run.discrepancies == []


def test_open_orders_are_compared_but_do_not_count_towards_the_limit():
    now = NOW()
    closed = [trade_at(now - timedelta(minutes=m)) for m in (2, 4)]
    resting = trade_at(
        now - timedelta(minutes=1), status=Trade.Status.ACCEPTED, filled_qty=0, price=None
    )
    Trade.objects.filter(pk=resting.pk).update(updated_at=now - timedelta(hours=1))
    orders = [order_for(closed[0]), order_for(closed[1]), order_for(resting, status="new")]

    run = reconcile(orders, limit=2)

    assert run.orders_checked == 3 and run.synced_count == 3
    assert run.window_start == now - timedelta(minutes=4)


def test_an_order_matches_its_trade_written_long_before_the_window():
    now = NOW()
    trade = trade_at(now - timedelta(minutes=1))
    Trade.objects.filter(pk=trade.pk).update(created_at=now - timedelta(days=2))
    orders = [order_for(trade)]

    with CaptureQueriesContext(connection) as queries:
        run = reconcile(orders, limit=1)

    assert run.discrepancies == [] and run.synced_count == 1
    assert any("IN (" in query["sql"] for query in queries.captured_queries)


# Failures, the report, queries


def test_an_unreachable_broker_gives_a_failed_run():
    TradeFactory()

    run = services.reconcile(trigger=ReconciliationRun.Trigger.COMMAND, broker=unreachable())

    run.refresh_from_db()
    assert run.failed
    assert run.error == "The broker could not be reached: Alpaca unreachable: ConnectTimeout"
    assert run.summary.startswith("Failed: The broker could not be reached")
    assert run.discrepancies == []


def test_a_broker_that_refuses_gives_a_failed_run_saying_so():
    refused = BrokerError("Alpaca refused the request (403): forbidden")

    run = services.reconcile(trigger="command", broker=ListBroker(error=refused))

    assert run.failed
    assert run.error == (
        "The broker refused to list its orders: Alpaca refused the request (403): forbidden"
    )


def test_limit_and_since_together_whichever_is_narrower():
    now = NOW()
    trades = [trade_at(now - timedelta(minutes=m)) for m in (1, 2, 3)]
    orders = [order_for(trade) for trade in trades]
    since = now - timedelta(minutes=10)

    run = reconcile(orders, limit=2, since=since)

    assert run.limit_reached and run.window_start == trades[1].submitted_at
    assert run.orders_checked == 2 and run.discrepancies == []


def test_the_comparison_never_changes_a_trade():
    trade = TradeFactory(price=Decimal("150.25"))
    before = list(Trade.objects.values())

    reconcile([order_for(trade, status="canceled", filled_qty="3", price="149.00")])

    assert list(Trade.objects.values()) == before


def test_the_report_has_the_issue_shape():
    trade = TradeFactory()
    run = reconcile([order_for(trade), make_order("by-hand")], limit=100)

    body = schemas.report(run)

    assert body["synced_count"] == 1
    assert body["discrepancies"] == [] and len(body["external_orders"]) == 1
    assert body["last_checked"] == run.started_at.isoformat().replace("+00:00", "Z")
    assert body["window"] == {
        "start": None,
        "end": run.window_end.isoformat().replace("+00:00", "Z"),
        "limit": 100,
        "since": None,
        "limit_reached": False,
    }


def test_the_default_is_the_last_100_closed_orders():
    run = reconcile([])

    assert run.limit == services.DEFAULT_LIMIT == 100


def _scenario(count: int) -> list:
    bots = [BotFactory() for _ in range(3)]
    orders = []
    for n in range(count):
        bot = bots[n % 3]
        if n % 10 == 0:  # ours, no trade
            orders.append(make_order(generate_client_order_id(bot)))
        elif n % 10 == 1:
            orders.append(make_order(f"hand-{n}"))
        else:
            orders.append(order_for(TradeFactory(bot=bot)))
    return orders


def _holdings(count: int) -> list:
    """``count`` bots holding 10 shares each of their own symbol; the broker holds all but the
    first symbol (one position_mismatch)."""
    positions = [PositionFactory(symbol=f"S{n}", bot__symbol=f"S{n}") for n in range(count)]
    return [held(p.symbol, "10") for p in positions[1:]]


def test_the_number_of_queries_does_not_grow_with_the_orders_or_positions():
    counts = []
    for size in (20, 200):
        Trade.objects.all().delete()
        Position.objects.all().delete()
        orders = _scenario(size)
        positions = _holdings(size // 10)
        broker = ListBroker(orders, positions=positions)
        with CaptureQueriesContext(connection) as queries:
            run = services.reconcile(trigger="command", broker=broker, limit=size)
        assert run.orders_checked == size and run.holdings_checked == size // 10
        assert run.discrepancy_count == size // 10 + 1
        assert broker.position_calls == 1
        counts.append(len(queries))

    # The window's trades, the bots, one __in, our holdings, the stored run.
    assert counts[0] == counts[1] <= 5
