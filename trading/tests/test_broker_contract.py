"""One contract, two brokers: every test runs against PaperBroker and against AlpacaBroker talking
through real alpaca-py to the fake Alpaca server, so the two cannot drift apart."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradebots.broker.base import (
    Account,
    Bar,
    BrokerPosition,
    InsufficientBuyingPower,
    InsufficientQuantity,
    NotFound,
    Order,
    OrderQueryStatus,
    OrderRejected,
    OrderSide,
    OrderType,
    TimeFrame,
)
from tradebots.broker.paper import market
from tradebots.broker.paper.market import latest_price

STARTING_CASH = Decimal("100000")


def test_account_reports_money_as_decimal(broker):
    account = broker.get_account()

    assert isinstance(account, Account)
    assert account.account_number.startswith("PA")
    assert account.cash == STARTING_CASH
    assert account.equity == STARTING_CASH
    assert account.buying_power == STARTING_CASH
    assert account.portfolio_value == STARTING_CASH
    assert all(
        isinstance(value, Decimal)
        for value in (account.cash, account.equity, account.buying_power, account.portfolio_value)
    )
    assert account.status == "ACTIVE"
    assert account.trading_blocked is False


def test_market_buy_fills_and_carries_the_client_order_id(broker):
    order = broker.submit_market_order(
        "AAPL", Decimal("10"), OrderSide.BUY, "bot-1a2b3c4d-00000001"
    )

    assert isinstance(order, Order)
    assert order.client_order_id == "bot-1a2b3c4d-00000001"
    assert (order.symbol, order.side, order.type) == ("AAPL", OrderSide.BUY, OrderType.MARKET)
    assert order.status == "filled"
    assert order.is_final
    assert order.qty == order.filled_qty == Decimal("10")
    assert isinstance(order.filled_avg_price, Decimal)
    quoted = latest_price("AAPL", datetime.now(UTC))
    assert abs(order.filled_avg_price - quoted) / quoted < Decimal("0.01")
    assert order.submitted_at.tzinfo is not None


def test_a_fill_moves_cash_and_opens_a_position(broker):
    order = broker.submit_market_order("MSFT", Decimal("3"), OrderSide.BUY, "bot-1a2b3c4d-00000002")

    account = broker.get_account()
    (position,) = broker.list_positions()
    cost = order.filled_qty * order.filled_avg_price
    assert account.cash == STARTING_CASH - cost
    assert isinstance(position, BrokerPosition)
    assert (position.symbol, position.qty) == ("MSFT", Decimal("3"))
    assert position.avg_entry_price == order.filled_avg_price
    assert position.market_value == position.qty * position.current_price
    assert position.unrealized_pl == position.market_value - cost
    # Two calls, two instants: the synthetic price may have moved a few cents in between.
    assert abs(account.equity - account.cash - position.market_value) < cost * Decimal("0.01")


def test_orders_can_be_fetched_by_id_and_by_client_order_id(broker):
    placed = broker.submit_market_order(
        "NVDA", Decimal("1"), OrderSide.BUY, "bot-1a2b3c4d-00000003"
    )

    assert broker.get_order(placed.id) == placed
    assert broker.get_order_by_client_order_id("bot-1a2b3c4d-00000003") == placed


def test_unknown_orders_are_not_found(broker):
    with pytest.raises(NotFound):
        broker.get_order("8d0c4f51-6f3f-4c67-9d58-8d0e2f9b1c11")
    with pytest.raises(NotFound):
        broker.get_order_by_client_order_id("bot-00000000-deadbeef")


def test_resubmitting_a_client_order_id_returns_the_existing_order(broker):
    first = broker.submit_market_order("AMD", Decimal("2"), OrderSide.BUY, "bot-1a2b3c4d-00000004")
    again = broker.submit_market_order("AMD", Decimal("2"), OrderSide.BUY, "bot-1a2b3c4d-00000004")

    assert again.id == first.id
    assert [o.id for o in broker.iter_orders()] == [first.id]
    assert broker.list_positions()[0].qty == Decimal("2")


def test_buying_beyond_buying_power_is_rejected_and_leaves_no_order(broker):
    with pytest.raises(InsufficientBuyingPower):
        broker.submit_market_order("SPY", Decimal("100000"), OrderSide.BUY, "bot-1a2b3c4d-00000005")

    with pytest.raises(NotFound):
        broker.get_order_by_client_order_id("bot-1a2b3c4d-00000005")
    assert broker.get_account().cash == STARTING_CASH


def test_selling_more_than_held_is_rejected(broker):
    broker.submit_market_order("KO", Decimal("5"), OrderSide.BUY, "bot-1a2b3c4d-00000006")

    with pytest.raises(InsufficientQuantity) as rejected:
        broker.submit_market_order("KO", Decimal("6"), OrderSide.SELL, "bot-1a2b3c4d-00000007")

    assert isinstance(rejected.value, OrderRejected)
    assert "insufficient qty" in str(rejected.value)
    assert broker.list_positions()[0].qty == Decimal("5")


def test_an_unknown_symbol_cannot_be_ordered(broker):
    with pytest.raises(OrderRejected, match="not found"):
        broker.submit_market_order("NOPE", Decimal("1"), OrderSide.BUY, "bot-1a2b3c4d-00000008")


def test_a_limit_buy_below_the_market_rests_and_reserves_buying_power(broker):
    price = latest_price("AAPL", datetime.now(UTC))
    limit = (price * Decimal("0.5")).quantize(Decimal("0.01"))

    order = broker.submit_limit_order(
        "AAPL", Decimal("10"), OrderSide.BUY, limit, "bot-1a2b3c4d-00000009"
    )

    assert order.type == OrderType.LIMIT
    assert order.status == "new"
    assert not order.is_final
    assert order.limit_price == limit
    assert order.filled_qty == 0
    assert broker.get_account().buying_power == STARTING_CASH - 10 * limit
    assert [o.id for o in broker.iter_orders(OrderQueryStatus.OPEN)] == [order.id]
    assert list(broker.iter_orders(OrderQueryStatus.CLOSED)) == []


def test_a_marketable_limit_buy_fills_at_or_below_its_limit(broker):
    price = latest_price("AAPL", datetime.now(UTC))
    limit = (price * Decimal("1.05")).quantize(Decimal("0.01"))

    order = broker.submit_limit_order(
        "AAPL", Decimal("2"), OrderSide.BUY, limit, "bot-1a2b3c4d-0000000a"
    )

    assert order.status == "filled"
    assert order.filled_avg_price <= limit


def test_iter_orders_yields_newest_first_within_the_window(broker):
    ids = []
    for number in range(4):
        order = broker.submit_market_order(
            "PEP", Decimal("1"), OrderSide.BUY, f"bot-1a2b3c4d-1000000{number}"
        )
        ids.append(order.id)

    every = list(broker.iter_orders())
    middle = list(broker.iter_orders(after=every[3].submitted_at, until=every[0].submitted_at))

    assert [o.id for o in every] == list(reversed(ids))
    assert all(o.is_final for o in broker.iter_orders(OrderQueryStatus.CLOSED))
    assert {o.id for o in middle} <= set(ids[1:3])
    assert list(broker.iter_orders(until=every[3].submitted_at)) == []


def test_close_position_sells_everything_under_our_client_order_id(broker):
    broker.submit_market_order("TSLA", Decimal("4"), OrderSide.BUY, "bot-1a2b3c4d-0000000b")

    closing = broker.close_position("TSLA", client_order_id="bot-1a2b3c4d-0000000c")

    assert closing.client_order_id == "bot-1a2b3c4d-0000000c"
    assert (closing.side, closing.type, closing.qty) == (OrderSide.SELL, OrderType.MARKET, 4)
    assert closing.status == "filled"
    assert broker.list_positions() == []


def test_close_position_can_close_part(broker):
    broker.submit_market_order("TSLA", Decimal("4"), OrderSide.BUY, "bot-1a2b3c4d-0000000d")

    broker.close_position("TSLA", client_order_id="bot-1a2b3c4d-0000000e", qty=Decimal("1"))

    assert broker.list_positions()[0].qty == Decimal("3")


def test_closing_a_position_that_does_not_exist_is_not_found(broker):
    with pytest.raises(NotFound):
        broker.close_position("AAPL", client_order_id="bot-1a2b3c4d-0000000f")


def test_clock_is_open_by_default(broker):
    clock = broker.get_clock()

    assert clock.is_open is True
    assert clock.next_close > clock.timestamp
    assert abs(clock.timestamp - datetime.now(UTC)) < timedelta(minutes=1)


def test_assets_are_looked_up_by_symbol(broker):
    asset = broker.get_asset("AAPL")

    assert (asset.symbol, asset.tradable, asset.fractionable) == ("AAPL", True, True)
    assert asset.name
    with pytest.raises(NotFound):
        broker.get_asset("NOPE")


def test_bars_for_many_symbols_in_one_call(broker):
    bars = broker.get_bars(["AAPL", "MSFT", "NOPE"], TimeFrame.MIN_5, 50)

    assert set(bars) == {"AAPL", "MSFT"}
    for series in bars.values():
        assert len(series) == 50
        assert all(isinstance(bar, Bar) for bar in series)
        assert [b.timestamp for b in series] == sorted(b.timestamp for b in series)
        assert series[1].timestamp - series[0].timestamp == timedelta(minutes=5)
        assert all(isinstance(bar.close, Decimal) for bar in series)
        assert all(bar.low <= min(bar.open, bar.close) for bar in series)
        assert all(bar.high >= max(bar.open, bar.close) for bar in series)
        assert datetime.now(UTC) - series[-1].timestamp < timedelta(minutes=10)


def test_bars_between_two_moments_oldest_first(broker):
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    end = start + timedelta(hours=2)

    bars = broker.get_bars_between("AAPL", TimeFrame.MIN_5, start, end)

    assert [bar.timestamp for bar in bars] == [start + timedelta(minutes=5 * i) for i in range(24)]
    assert bars == market.bars_between("AAPL", TimeFrame.MIN_5, start, end)
    assert all(isinstance(bar.close, Decimal) for bar in bars)


def test_bars_between_start_inclusive_end_exclusive_off_the_grid(broker):
    start = datetime(2026, 3, 2, 14, 30, 1, tzinfo=UTC)  # a second after a bar opened

    bars = broker.get_bars_between("AAPL", TimeFrame.MIN_5, start, start + timedelta(minutes=10))

    assert [bar.timestamp.strftime("%H:%M") for bar in bars] == ["14:35", "14:40"]


def test_bars_between_has_nothing_from_the_future(broker):
    now = datetime.now(UTC)

    bars = broker.get_bars_between(
        "AAPL", TimeFrame.HOUR_1, now - timedelta(hours=3), now + timedelta(days=2)
    )

    assert 2 <= len(bars) <= 3
    assert bars[-1].timestamp <= now


def test_latest_prices_for_many_symbols(broker):
    prices = broker.get_latest_prices(["AAPL", "MSFT", "NOPE"])

    assert set(prices) == {"AAPL", "MSFT"}
    assert all(isinstance(price, Decimal) and price > 0 for price in prices.values())
    assert prices["AAPL"] == pytest.approx(
        latest_price("AAPL", datetime.now(UTC)), rel=Decimal("0.01")
    )
