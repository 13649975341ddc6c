"""AlpacaBroker under the faults the fake Alpaca server injects: timeouts, 5xx, 429, rejections,
partial fills, fills at another price. alpaca-py's own HTTP code runs in every test."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradebots.broker.alpaca import AlpacaBroker
from tradebots.broker.base import (
    BrokerError,
    BrokerUnavailable,
    InsufficientBuyingPower,
    OrderQueryStatus,
    OrderRejected,
    OrderSide,
    RateLimited,
    TimeFrame,
)
from tradebots.broker.paper import exchange, market
from tradebots.broker.paper.models import PaperOrder
from trading.tests.fake_alpaca import FakeAlpaca

ORDERS = "/v2/orders"
CLIENT_ORDER_ID = "bot-5e1f00d2-9c1b7a3e"


def test_client_order_id_reaches_the_broker_unchanged(fake_alpaca):
    fake_alpaca.broker().submit_market_order("AAPL", Decimal("3"), OrderSide.BUY, CLIENT_ORDER_ID)

    (request,) = fake_alpaca.requests_to("POST", ORDERS)
    assert request.body["client_order_id"] == CLIENT_ORDER_ID
    assert request.body["symbol"] == "AAPL"
    assert request.body["side"] == "buy"
    assert request.body["type"] == "market"
    assert Decimal(str(request.body["qty"])) == 3


def test_timeout_after_the_broker_accepted_yields_exactly_one_order(fake_alpaca):
    fake_alpaca.faults.accept_then_timeout = 1
    broker = fake_alpaca.broker(read_timeout=0.5)

    order = broker.submit_market_order("AAPL", Decimal("2"), OrderSide.BUY, CLIENT_ORDER_ID)

    assert order.client_order_id == CLIENT_ORDER_ID
    assert order.status == "filled"
    assert order.filled_qty == 2
    assert PaperOrder.objects.count() == 1
    assert len(fake_alpaca.requests_to("POST", ORDERS)) == 1
    assert fake_alpaca.requests_to("GET", "/v2/orders:by_client_order_id")


def test_accepted_then_504_is_resolved_without_a_second_order(fake_alpaca):
    # alpaca-py retries a 504 by itself, POST included; the retry meets "client_order_id must be
    # unique", which means the order exists.
    fake_alpaca.faults.accept_then_504 = 1

    order = fake_alpaca.broker().submit_market_order(
        "AAPL", Decimal("2"), OrderSide.BUY, CLIENT_ORDER_ID
    )

    assert order.client_order_id == CLIENT_ORDER_ID
    assert PaperOrder.objects.count() == 1
    posts = fake_alpaca.requests_to("POST", ORDERS)
    assert len(posts) == 2
    assert {p.body["client_order_id"] for p in posts} == {CLIENT_ORDER_ID}


def test_a_5xx_before_acceptance_is_retried_under_the_same_client_order_id(fake_alpaca):
    fake_alpaca.fail(500, times=1, method="POST", path=ORDERS)

    order = fake_alpaca.broker().submit_market_order(
        "AAPL", Decimal("1"), OrderSide.BUY, CLIENT_ORDER_ID
    )

    assert order.status == "filled"
    assert PaperOrder.objects.count() == 1
    posts = fake_alpaca.requests_to("POST", ORDERS)
    assert [p.body["client_order_id"] for p in posts] == [CLIENT_ORDER_ID, CLIENT_ORDER_ID]


def test_an_order_whose_fate_cannot_be_learned_raises_unavailable_and_is_not_resent(fake_alpaca):
    fake_alpaca.fail(503, times=100)

    with pytest.raises(BrokerUnavailable):
        fake_alpaca.broker().submit_market_order(
            "AAPL", Decimal("1"), OrderSide.BUY, CLIENT_ORDER_ID
        )

    assert len(fake_alpaca.requests_to("POST", ORDERS)) == 1


def test_a_429_burst_is_survived(fake_alpaca):
    fake_alpaca.fail(429, times=2, path="/v2/account")

    account = fake_alpaca.broker().get_account()

    assert account.cash == Decimal("100000")
    assert len(fake_alpaca.requests_to("GET", "/v2/account")) == 3


def test_a_429_that_does_not_stop_is_reported_as_rate_limited(fake_alpaca):
    fake_alpaca.fail(429, times=100, path="/v2/account")

    with pytest.raises(RateLimited):
        fake_alpaca.broker().get_account()


def test_a_5xx_on_a_read_is_retried(fake_alpaca):
    fake_alpaca.fail(500, times=1, path="/v2/clock")

    assert fake_alpaca.broker().get_clock().is_open
    assert len(fake_alpaca.requests_to("GET", "/v2/clock")) == 2


def test_a_persistent_5xx_on_a_read_is_broker_unavailable(fake_alpaca):
    fake_alpaca.fail(502, times=100, path="/v2/positions", body="<html>Bad Gateway</html>")

    with pytest.raises(BrokerUnavailable, match="502"):
        fake_alpaca.broker().list_positions()

    assert len(fake_alpaca.requests_to("GET", "/v2/positions")) == 3


def test_a_hung_server_is_cut_off_by_the_timeout(fake_alpaca):
    fake_alpaca.faults.latency = 5
    broker = fake_alpaca.broker(read_timeout=0.3)
    started = time.monotonic()

    with pytest.raises(BrokerUnavailable, match="ReadTimeout"):
        broker.get_clock()

    # Three attempts of 0.3 s plus back-off: well short of the server's 5 s.
    assert time.monotonic() - started < 4


def test_an_unreachable_server_is_broker_unavailable(transactional_db):
    with FakeAlpaca() as fake:
        broker = fake.broker()
    # Stopped: nothing listens on its port any more.

    with pytest.raises(BrokerUnavailable, match="ConnectionError"):
        broker.get_account()


def test_a_rejection_is_an_order_rejected_with_the_brokers_message(fake_alpaca):
    fake_alpaca.faults.reject_orders = [
        (422, "qty must be > 0"),
        (403, "insufficient buying power"),
    ]
    broker = fake_alpaca.broker()

    with pytest.raises(OrderRejected, match="qty must be > 0"):
        broker.submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, "bot-5e1f00d2-00000001")
    with pytest.raises(InsufficientBuyingPower):
        broker.submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, "bot-5e1f00d2-00000002")

    assert PaperOrder.objects.count() == 0
    assert len(fake_alpaca.requests_to("POST", ORDERS)) == 2


def test_a_partial_fill_is_reported_as_such(fake_alpaca):
    fake_alpaca.faults.partial_fill_ratio = Decimal("0.5")
    broker = fake_alpaca.broker()

    order = broker.submit_market_order("AAPL", Decimal("10"), OrderSide.BUY, CLIENT_ORDER_ID)

    assert order.status == "partially_filled"
    assert (order.qty, order.filled_qty) == (10, 5)
    assert not order.is_final
    exchange.fill_remaining(PaperOrder.objects.get())
    completed = broker.get_order(order.id)
    assert (completed.status, completed.filled_qty) == ("filled", 10)


def test_a_fill_at_another_price_than_quoted_is_reported_exactly(fake_alpaca):
    fake_alpaca.faults.fill_price = Decimal("123.4567")

    order = fake_alpaca.broker().submit_market_order(
        "AAPL", Decimal("1"), OrderSide.BUY, CLIENT_ORDER_ID
    )

    assert order.filled_avg_price == Decimal("123.4567")


def test_wrong_keys_are_refused(fake_alpaca):
    broker = AlpacaBroker("PKWRONG", "wrong", base_url=fake_alpaca.url, data_url=fake_alpaca.url)

    with pytest.raises(BrokerError, match="401"):
        broker.get_account()


def test_iter_orders_follows_pages_without_losing_orders_sharing_a_timestamp(fake_alpaca):
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.now() - timedelta(minutes=1)
    for number in range(7):
        # Pairs share a submission instant, so page boundaries fall between equal timestamps.
        exchange.submit_order(
            symbol="KO", qty=Decimal("1"), side=OrderSide.BUY, order_type="market",
            client_order_id=f"bot-5e1f00d2-2000000{number}",
            now=start + timedelta(seconds=number // 2),
        )  # fmt: skip
    broker = fake_alpaca.broker(order_page_size=3)

    orders = list(broker.iter_orders(OrderQueryStatus.ALL))

    assert len(orders) == 7
    assert len({o.id for o in orders}) == 7
    assert len(fake_alpaca.requests_to("GET", ORDERS)) >= 3


def test_bars_follow_alpacas_pagination(fake_alpaca):
    fake_alpaca.bars_page_size = 7

    bars = fake_alpaca.broker().get_bars(["AAPL", "MSFT"], TimeFrame.HOUR_1, 20)

    assert {symbol: len(series) for symbol, series in bars.items()} == {"AAPL": 20, "MSFT": 20}
    requests = fake_alpaca.requests_to("GET", "/v2/stocks/bars")
    assert len(requests) > 2
    assert requests[0].query["feed"] == "iex"
    assert all(r.query["symbols"] == "AAPL,MSFT" for r in requests)


def test_bars_of_a_range_come_in_one_paged_request_series(fake_alpaca):
    fake_alpaca.bars_page_size = 40
    start = datetime(2026, 3, 2, tzinfo=UTC)
    end = start + timedelta(hours=100)

    bars = fake_alpaca.broker(data_feed="sip").get_bars_between(
        "AAPL", TimeFrame.HOUR_1, start, end
    )

    assert bars == market.bars_between("AAPL", TimeFrame.HOUR_1, start, end)
    requests = fake_alpaca.requests_to("GET", "/v2/stocks/bars")
    assert len(requests) == 3  # 40 + 40 + 20, alpaca-py following next_page_token
    assert all(r.query["symbols"] == "AAPL" for r in requests)
    assert all(r.query["feed"] == "sip" and r.query["limit"] == "10000" for r in requests)
    assert requests[0].query["start"].startswith("2026-03-02T00:00:00")


def test_an_unknown_symbol_has_no_bars_at_alpaca(fake_alpaca):
    start = datetime(2026, 3, 2, tzinfo=UTC)

    assert (
        fake_alpaca.broker().get_bars_between(
            "NOPE", TimeFrame.HOUR_1, start, start + timedelta(days=1)
        )
        == []
    )


def test_a_failing_bars_request_is_retried_then_reported(fake_alpaca):
    start = datetime(2026, 3, 2, tzinfo=UTC)
    fake_alpaca.fail(500, times=3, path="/v2/stocks/bars")

    with pytest.raises(BrokerUnavailable, match="Alpaca error 500"):
        fake_alpaca.broker().get_bars_between(
            "AAPL", TimeFrame.HOUR_1, start, start + timedelta(days=1)
        )

    assert len(fake_alpaca.requests_to("GET", "/v2/stocks/bars")) == 3
