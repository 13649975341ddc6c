"""Every discrepancy kind made to happen on purpose, through the real order path and the
gateway, on the paper exchange and on AlpacaBroker against the fake Alpaca server."""

import uuid
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from bots.tests.factories import BotFactory
from reconciliation import services
from reconciliation.models import ReconciliationRun
from tradebots.broker import OrderSide, get_broker
from tradebots.broker.paper import exchange
from tradebots.broker.paper.models import PaperOrder
from trading import orders
from trading.models import Trade


def reconcile(**options) -> ReconciliationRun:
    return services.reconcile(trigger=ReconciliationRun.Trigger.COMMAND, **options)


def found(run) -> set[tuple[str, str]]:
    return {(d["kind"], d["client_order_id"]) for d in run.discrepancies}


def stall_the_sync(trade: Trade) -> None:
    """As if the order sync had not touched the trade for longer than the grace period."""
    long_ago = timezone.now() - services.in_flight_grace() - timedelta(seconds=1)
    Trade.objects.filter(pk=trade.pk).update(updated_at=long_ago)


def test_a_clean_run_reports_nothing(broker_side):
    bot = BotFactory()
    orders.place_order(bot, "buy", Decimal("5"), "RSI buy signal")
    orders.place_order(bot, "sell", Decimal("5"), "RSI sell signal")
    refused = orders.place_order(bot, "buy", Decimal("1000000"), "RSI buy signal")
    assert refused.status == Trade.Status.REJECTED

    run = reconcile()

    assert run.outcome == ReconciliationRun.Outcome.IN_SYNC
    assert (run.orders_checked, run.synced_count, run.discrepancy_count) == (2, 2, 0)
    assert run.external_count == run.in_flight == run.unlinked_trades == 0


def test_a_crash_between_submit_and_trade_write_is_missing_in_db(broker_side):
    bot = BotFactory(name="Crashy")
    orders.place_order(bot, "buy", Decimal("1"), "RSI buy signal")
    client_order_id = orders.generate_client_order_id(bot)
    # The order left; the process died before its Trade was stored.
    order = get_broker().submit_market_order("AAPL", Decimal("3"), OrderSide.BUY, client_order_id)

    run = reconcile()

    assert found(run) == {("missing_in_db", client_order_id)}
    (missing,) = run.discrepancies
    assert missing["order_id"] == order.id
    assert missing["bot"] == {"id": str(bot.pk), "name": "Crashy", "prefix": bot.short_id}
    assert missing["broker"].startswith("filled, buy 3/3 AAPL @ $")
    assert run.synced_count == 1


def test_an_order_the_broker_refused_recorded_as_filled_is_missing_in_broker(broker_side):
    bot = BotFactory()
    trade = orders.place_order(bot, "buy", Decimal("1000000"), "RSI buy signal")
    assert (trade.status, trade.order_id) == (Trade.Status.REJECTED, None)
    # Our books wrongly say it filled.
    Trade.objects.filter(pk=trade.pk).update(
        status=Trade.Status.FILLED, filled_qty=Decimal("1000000"), price=Decimal("180")
    )

    run = reconcile()

    assert found(run) == {("missing_in_broker", trade.client_order_id)}
    assert run.discrepancies[0]["trade_id"] == trade.pk


def test_an_order_rejected_at_the_broker_recorded_as_filled_is_a_status_mismatch(broker_side):
    bot = BotFactory()
    trade = orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal")
    assert trade.status == Trade.Status.FILLED
    # The broker takes it back: rejected after all, nothing filled.
    PaperOrder.objects.filter(pk=trade.order_id).update(
        status="rejected", filled_qty=0, filled_avg_price=None, filled_at=None
    )

    run = reconcile()

    assert found(run) == {
        ("status_mismatch", trade.client_order_id),
        ("qty_mismatch", trade.client_order_id),
        ("price_mismatch", trade.client_order_id),
    }
    status = next(d for d in run.discrepancies if d["kind"] == "status_mismatch")
    assert (status["ours"], status["broker"]) == ("filled", "rejected")


def test_a_fill_at_another_price_than_recorded_is_a_price_mismatch(broker_side):
    bot = BotFactory()
    broker_side.fill_at(Decimal("123.45"))
    trade = orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    assert trade.price == Decimal("123.45")  # the order path stores the broker's price...
    assert reconcile().discrepancy_count == 0
    # ...had it stored the quote it saw instead:
    Trade.objects.filter(pk=trade.pk).update(price=Decimal("123.40"))

    run = reconcile()

    assert found(run) == {("price_mismatch", trade.client_order_id)}
    (price,) = run.discrepancies
    assert (price["ours"], price["broker"]) == ("123.40", "123.45")
    assert price["detail"] == "Average fill price: ours $123.40, broker $123.45."


def test_a_partial_fill_we_missed_is_a_quantity_and_status_mismatch(broker_side):
    bot = BotFactory()
    broker_side.fill_partially(Decimal("0.5"))
    trade = orders.place_order(bot, "buy", Decimal("10"), "RSI buy signal")
    assert (trade.status, trade.filled_qty) == (Trade.Status.PARTIALLY_FILLED, 5)

    # Still open and followed by the order sync: in flight, not judged.
    run = reconcile()
    assert (run.discrepancy_count, run.in_flight) == (0, 1)

    # The rest fills at the broker while our sync has stalled.
    exchange.fill_remaining(PaperOrder.objects.get(pk=trade.order_id), price=trade.price)
    stall_the_sync(trade)

    run = reconcile()

    assert found(run) == {
        ("status_mismatch", trade.client_order_id),
        ("qty_mismatch", trade.client_order_id),
    }
    qty = next(d for d in run.discrepancies if d["kind"] == "qty_mismatch")
    assert (qty["ours"], qty["broker"]) == ("5 of 10", "10 of 10")

    # The order sync catches up; reconciliation reported, it did not edit.
    trade.refresh_from_db()
    assert trade.filled_qty == 5
    orders.sync_open_orders()
    assert reconcile().outcome == ReconciliationRun.Outcome.IN_SYNC


def test_an_order_placed_by_hand_is_external_not_a_discrepancy(broker_side):
    bot = BotFactory()
    orders.place_order(bot, "buy", Decimal("1"), "RSI buy signal")
    by_hand = str(uuid.uuid4())  # what Alpaca assigns an order placed in its dashboard
    get_broker().submit_market_order("MSFT", Decimal("2"), OrderSide.BUY, by_hand)

    run = reconcile()

    assert run.discrepancy_count == 0 and run.synced_count == 1
    (external,) = run.external_orders
    assert (external["client_order_id"], external["symbol"], external["qty"]) == (
        by_hand,
        "MSFT",
        "2",
    )


# Pagination and the window, through the fake Alpaca server


def test_orders_are_read_across_pages(fake):
    bot = BotFactory()
    # One bot per order: a bot holding a position places no further buy.
    placed = [
        orders.place_order(BotFactory(), "buy", Decimal("1"), "RSI buy signal") for _ in range(7)
    ]
    missing = orders.generate_client_order_id(bot)
    get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, missing)
    by_hand = str(uuid.uuid4())
    get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, by_hand)
    fake.received.clear()

    run = reconcile(broker=fake.broker(order_page_size=3))

    assert len(fake.requests_to("GET", "/v2/orders")) >= 4  # 9 orders, 3 a page
    assert run.orders_checked == 9
    assert run.synced_count == len(placed) == 7
    assert found(run) == {("missing_in_db", missing)}
    assert [order["client_order_id"] for order in run.external_orders] == [by_hand]


def test_a_limit_cuts_the_window_across_pages(fake):
    placed = [
        orders.place_order(BotFactory(), "buy", Decimal("1"), "RSI buy signal") for _ in range(8)
    ]
    fake.received.clear()

    run = reconcile(broker=fake.broker(order_page_size=3), limit=5)

    assert len(fake.requests_to("GET", "/v2/orders")) == 2  # stops once it has 5 of the 8
    assert run.limit_reached and run.orders_checked == 5
    assert run.window_start == placed[3].submitted_at  # the 5th newest
    assert run.discrepancy_count == 0 and run.synced_count == 5  # older trades not judged


def test_since_through_the_fake(fake):
    bot = BotFactory()
    early = orders.place_order(bot, "buy", Decimal("1"), "RSI buy signal")
    since = timezone.now()
    late = [
        orders.place_order(BotFactory(), "buy", Decimal("1"), "RSI buy signal") for _ in range(2)
    ]
    PaperOrder.objects.filter(pk=early.order_id).delete()  # would be missing, but is before since
    PaperOrder.objects.filter(pk=late[0].order_id).delete()  # missing, inside the window

    run = reconcile(broker=fake.broker(order_page_size=3), since=since)

    assert run.orders_checked == 1
    assert found(run) == {("missing_in_broker", late[0].client_order_id)}
    since_sent = fake.requests_to("GET", "/v2/orders")[0].query["after"]
    assert since_sent.startswith(since.strftime("%Y-%m-%dT%H:%M:%S"))


def test_an_unreachable_alpaca_gives_a_failed_run(fake):
    fake.fail(500, times=10, method="GET", path="/v2/orders")

    run = reconcile()

    assert run.failed
    assert "could not be reached" in run.error
    assert ReconciliationRun.objects.get().outcome == ReconciliationRun.Outcome.FAILED
