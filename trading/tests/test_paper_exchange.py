"""What is particular to the built-in paper exchange (the contract suite covers the rest)."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from ta.momentum import RSIIndicator
from ta.trend import MACD, SMAIndicator
from ta.volatility import BollingerBands

from tradebots.broker import PAPER_EXCHANGE_LABEL, get_broker
from tradebots.broker.alpaca import AlpacaBroker
from tradebots.broker.base import (
    InsufficientBuyingPower,
    NotFound,
    OrderSide,
    OrderType,
    TimeFrame,
)
from tradebots.broker.paper import exchange, market
from tradebots.broker.paper.broker import PaperBroker
from tradebots.broker.paper.models import PaperOrder

DEMO_SYMBOLS = ["AAPL", "MSFT", "TSLA", "SPY"]
# A Wednesday, in New York: 10:00 and 20:00 local.
WEDNESDAY_MORNING = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
WEDNESDAY_EVENING = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def test_without_keys_the_broker_is_the_paper_exchange(settings):
    settings.ALPACA_API_KEY = settings.ALPACA_SECRET_KEY = ""

    broker = get_broker()

    assert isinstance(broker, PaperBroker)
    assert broker.label == PAPER_EXCHANGE_LABEL == "Paper exchange (simulated)"


def test_with_keys_the_broker_is_alpaca_configured_from_settings(settings):
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = "PKTEST", "secret"
    settings.ALPACA_PAPER = True
    settings.ALPACA_BASE_URL = "http://127.0.0.1:9"

    broker = get_broker()

    assert isinstance(broker, AlpacaBroker)
    assert broker.label == "Alpaca paper trading"
    assert broker.trading._base_url == "http://127.0.0.1:9"
    assert get_broker() is broker  # one client per process keeps connections alive
    settings.ALPACA_PAPER = False
    assert get_broker().label == "Alpaca LIVE trading"


def test_market_data_is_a_pure_function_of_symbol_timeframe_and_time():
    until = datetime(2026, 11, 20, 15, 7, 30, tzinfo=UTC)

    first = market.bars("AAPL", TimeFrame.MIN_5, 30, until)
    again = market.bars("AAPL", TimeFrame.MIN_5, 30, until)
    other = market.bars("MSFT", TimeFrame.MIN_5, 30, until)

    assert first == again
    assert first != other
    assert first[-1].timestamp == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert market.latest_price("AAPL", until) == market.latest_price("AAPL", until)


def test_every_timeframe_samples_the_same_price_path():
    until = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)

    minute = market.bars("AAPL", TimeFrame.MIN_1, 60, until)
    hour = market.bars("AAPL", TimeFrame.HOUR_1, 1, until)

    assert hour[0].open == minute[0].open
    assert hour[0].close == minute[-1].close == market.latest_price("AAPL", until)


def test_a_range_of_bars_is_the_same_path_as_the_latest_bars():
    until = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)

    latest = market.bars("AAPL", TimeFrame.MIN_15, 8, until)
    ranged = market.bars_between("AAPL", TimeFrame.MIN_15, until - timedelta(hours=2), until)

    assert ranged == latest
    assert market.bars_between("AAPL", TimeFrame.MIN_15, until, until) == []


def test_an_unknown_symbol_has_no_bars_on_the_paper_exchange():
    start = datetime(2026, 11, 20, tzinfo=UTC)

    with pytest.raises(NotFound, match="NOPE"):
        PaperBroker().get_bars_between("NOPE", TimeFrame.HOUR_1, start, start + timedelta(days=1))


@pytest.mark.parametrize("symbol", DEMO_SYMBOLS)
def test_indicator_signals_occur_within_a_demo_session(symbol):
    """Three hours of minute bars give every indicator something to say."""
    bars = market.bars(symbol, TimeFrame.MIN_1, 180, datetime(2026, 11, 20, 18, 0, tzinfo=UTC))
    close = pd.Series([float(bar.close) for bar in bars])

    rsi = RSIIndicator(close, window=14).rsi()
    macd = MACD(close).macd_diff().dropna()
    bands = BollingerBands(close, window=20, window_dev=2)
    fast, slow = SMAIndicator(close, 10).sma_indicator(), SMAIndicator(close, 30).sma_indicator()
    spread = (fast - slow).dropna()

    assert (rsi < 30).any() and (rsi > 70).any()
    assert ((macd > 0) != (macd.shift() > 0)).iloc[1:].sum() >= 2
    assert (close < bands.bollinger_lband()).any() and (close > bands.bollinger_hband()).any()
    assert ((spread > 0) != (spread.shift() > 0)).iloc[1:].sum() >= 1


def test_market_orders_pay_the_configured_slippage(db, settings):
    settings.PAPER_SLIPPAGE_BPS = Decimal("10")
    now = datetime.now(UTC)

    buy = market.latest_price("AAPL", now) * Decimal("1.001")
    sell = market.latest_price("AAPL", now) * Decimal("0.999")

    assert exchange.market_fill_price("AAPL", OrderSide.BUY, now) == buy.quantize(market.CENT)
    assert exchange.market_fill_price("AAPL", OrderSide.SELL, now) == sell.quantize(market.CENT)


def test_starting_cash_comes_from_settings(db, settings):
    settings.PAPER_STARTING_CASH = Decimal("2500.50")

    assert PaperBroker().get_account().cash == Decimal("2500.50")


def test_the_clock_can_follow_exchange_hours(settings):
    settings.PAPER_MARKET_ALWAYS_OPEN = False

    morning = exchange.clock(WEDNESDAY_MORNING)
    evening = exchange.clock(WEDNESDAY_EVENING)
    saturday = exchange.clock(WEDNESDAY_MORNING + timedelta(days=3))

    assert morning.is_open and not evening.is_open and not saturday.is_open
    assert evening.next_open == datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
    assert saturday.next_open == datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    assert morning.next_close == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def test_a_resting_limit_order_fills_when_the_market_reaches_it(db):
    placed_at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    price = exchange.market_fill_price("AAPL", OrderSide.BUY, placed_at)
    order = exchange.submit_order(
        symbol="AAPL", qty=Decimal("1"), side=OrderSide.BUY, order_type=OrderType.LIMIT,
        limit_price=price - Decimal("0.50"), client_order_id="bot-00000000-limit001", now=placed_at,
    )  # fmt: skip
    assert order.status == "new"
    # Find a later minute when the synthetic price has dropped below the limit.
    later = next(
        placed_at + timedelta(minutes=m)
        for m in range(1, 24 * 60)
        if exchange.market_fill_price("AAPL", OrderSide.BUY, placed_at + timedelta(minutes=m))
        <= order.limit_price
    )

    exchange.match_resting_limit_orders(now=later)

    order.refresh_from_db()
    assert order.status == "filled"
    assert order.filled_avg_price == order.limit_price


def test_concurrent_buys_cannot_spend_the_same_cash_twice(transactional_db, settings):
    """Each buy alone fits the cash; together they do not. The account lock lets one through."""
    settings.PAPER_STARTING_CASH = Decimal("1000")
    exchange.get_account()
    price = market.latest_price("SPY", datetime.now(UTC))
    qty = (Decimal("700") / price).quantize(Decimal("0.001"))
    outcomes = []
    start = threading.Barrier(4)

    def buy(number):
        from django.db import connection

        start.wait()
        try:
            PaperBroker().submit_market_order(
                "SPY", qty, OrderSide.BUY, f"bot-00000000-race000{number}"
            )
            outcomes.append("filled")
        except InsufficientBuyingPower:
            outcomes.append("rejected")
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["filled", "rejected", "rejected", "rejected"]
    assert PaperOrder.objects.count() == 1
    assert exchange.get_account().cash >= 0
