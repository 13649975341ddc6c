"""The order path against PaperBroker and against AlpacaBroker + the fake Alpaca server."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bots.strategy import stop_loss_price, take_profit_price
from bots.tests.factories import BotFactory
from tradebots.broker import OrderSide, get_broker
from tradebots.broker.paper import exchange
from tradebots.broker.paper.models import PaperOrder
from trading import orders
from trading.models import Position, Trade


@pytest.fixture(autouse=True)
def _fast_verification(settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0


@pytest.fixture(params=["paper", "alpaca"])
def configured_broker(request, transactional_db):
    """get_broker() (hence the whole order path) is the paper exchange, or Alpaca via the fake."""
    yield request.getfixturevalue("alpaca_fake") if request.param == "alpaca" else None


@pytest.fixture
def fake(alpaca_fake):
    return alpaca_fake


def test_client_order_id_names_the_bot(db):
    bot = BotFactory()

    first, second = orders.generate_client_order_id(bot), orders.generate_client_order_id(bot)

    assert re.fullmatch(rf"bot-{bot.id.hex[:8]}-[0-9a-f]{{8}}", first)
    assert first != second
    assert orders.bot_prefix_of(first) == bot.id.hex[:8]
    assert orders.bot_prefix_of("my-manual-order") is None


def test_a_buy_fills_and_opens_a_position(configured_broker):
    bot = BotFactory(stop_loss_pct=Decimal("5"), take_profit_pct=Decimal("10"))

    trade = orders.place_order(bot, "buy", Decimal("10"), "RSI buy signal")

    trade.refresh_from_db()
    assert trade.status == Trade.Status.FILLED
    assert trade.filled_qty == 10 and trade.price > 0
    assert trade.order_id
    assert trade.reason == "RSI buy signal"
    order = get_broker().get_order_by_client_order_id(trade.client_order_id)
    assert order.id == trade.order_id
    position = Position.objects.get(bot=bot, is_open=True)
    assert trade.position == position
    assert (position.qty, position.avg_entry_price) == (10, trade.price)
    assert position.entry_reason == "RSI buy signal"
    assert position.stop_loss_price == stop_loss_price(trade.price, Decimal("5"))
    assert position.take_profit_price == take_profit_price(trade.price, Decimal("10"))


def test_a_sell_closes_the_position_with_realized_pnl(configured_broker):
    bot = BotFactory()
    buy = orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")

    sell = orders.place_order(bot, "sell", Decimal("4"), "RSI sell signal")

    buy.refresh_from_db()
    position = Position.objects.get(bot=bot)
    assert not position.is_open and position.closed_at
    assert position.exit_price == sell.price
    assert position.realized_pnl == ((sell.price - buy.price) * 4).quantize(Decimal("0.0001"))


def test_a_rejection_is_stored_and_leaves_the_position_alone(configured_broker):
    bot = BotFactory()

    trade = orders.place_order(bot, "buy", Decimal("1000000"), "RSI buy signal")

    trade.refresh_from_db()
    assert trade.status == Trade.Status.REJECTED
    assert "insufficient buying power" in trade.error_message
    assert trade.client_order_id and trade.order_id is None
    assert not Position.objects.exists()


def test_the_trade_is_written_before_the_order_is_sent(configured_broker, monkeypatch):
    bot = BotFactory()
    seen_at_send = []
    real_submit = type(get_broker()).submit_market_order

    def spy(self, symbol, qty, side, client_order_id):
        seen_at_send.append(Trade.objects.get(client_order_id=client_order_id).status)
        return real_submit(self, symbol, qty, side, client_order_id)

    monkeypatch.setattr(type(get_broker()), "submit_market_order", spy)

    orders.place_order(bot, "buy", Decimal("1"), "RSI buy signal")

    assert seen_at_send == [Trade.Status.PENDING]


def test_accept_then_timeout_gives_exactly_one_order_and_a_completed_trade(fake):
    bot = BotFactory()
    fake.faults.accept_then_timeout = 1

    trade = orders.place_order(bot, "buy", Decimal("3"), "RSI buy signal")

    trade.refresh_from_db()
    assert trade.status == Trade.Status.FILLED
    assert PaperOrder.objects.count() == 1
    assert Position.objects.get(bot=bot).qty == 3


def test_a_partial_fill_books_only_what_filled_and_the_sync_completes_it(fake):
    bot = BotFactory()
    fake.faults.partial_fill_ratio = Decimal("0.5")

    trade = orders.place_order(bot, "buy", Decimal("10"), "RSI buy signal")

    trade.refresh_from_db()
    assert (trade.status, trade.filled_qty) == (Trade.Status.PARTIALLY_FILLED, 5)
    assert Position.objects.get(bot=bot).qty == 5

    exchange.fill_remaining(PaperOrder.objects.get(), price=Decimal("100"))
    orders.sync_open_orders()

    trade.refresh_from_db()
    position = Position.objects.get(bot=bot)
    assert (trade.status, trade.filled_qty) == (Trade.Status.FILLED, 10)
    assert position.qty == 10
    assert position.avg_entry_price == trade.price


def test_a_fill_at_another_price_than_quoted_is_booked_at_the_fill(fake):
    bot = BotFactory()
    fake.faults.fill_price = Decimal("123.45")

    trade = orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal")

    trade.refresh_from_db()
    assert trade.price == Decimal("123.45")
    assert Position.objects.get(bot=bot).avg_entry_price == Decimal("123.45")


def test_a_worker_killed_after_submit_is_completed_by_the_next_sync(configured_broker):
    bot = BotFactory()
    trade = Trade.objects.create(
        bot=bot, symbol="AAPL", side="buy", qty=Decimal("2"), reason="RSI buy signal",
        client_order_id=orders.generate_client_order_id(bot),
    )  # fmt: skip
    # The order reached the broker, then the worker died before recording the answer.
    get_broker().submit_market_order("AAPL", Decimal("2"), OrderSide.BUY, trade.client_order_id)

    counts = orders.sync_open_orders()

    trade.refresh_from_db()
    assert counts["updated"] == 1
    assert trade.status == Trade.Status.FILLED
    assert Position.objects.get(bot=bot).qty == 2
    assert len(list(get_broker().iter_orders())) == 1


def test_an_intent_that_never_left_is_sent_once_by_the_sync(configured_broker):
    bot = BotFactory()
    trade = Trade.objects.create(
        bot=bot, symbol="AAPL", side="buy", qty=Decimal("2"), reason="RSI buy signal",
        client_order_id=orders.generate_client_order_id(bot),
    )  # fmt: skip

    assert orders.sync_open_orders()["resent"] == 1
    assert orders.sync_open_orders()["checked"] == 0

    trade.refresh_from_db()
    assert trade.status == Trade.Status.FILLED
    (order,) = get_broker().iter_orders()
    assert order.client_order_id == trade.client_order_id


def test_a_stale_intent_that_never_left_is_abandoned_not_sent(configured_broker, settings):
    bot = BotFactory()
    trade = Trade.objects.create(
        bot=bot, symbol="AAPL", side="buy", qty=Decimal("2"), reason="RSI buy signal",
        client_order_id=orders.generate_client_order_id(bot),
    )  # fmt: skip
    Trade.objects.filter(pk=trade.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.ORDER_INTENT_TTL_SECONDS + 1)
    )

    assert orders.sync_open_orders()["abandoned"] == 1

    trade.refresh_from_db()
    assert trade.status == Trade.Status.CANCELED
    assert "Never reached the broker" in trade.error_message
    assert list(get_broker().iter_orders()) == []


def test_an_unknown_outcome_is_stored_as_unknown_and_resolved_later(fake):
    bot = BotFactory()
    fake.fail(503, times=100)

    trade = orders.place_order(bot, "buy", Decimal("1"), "RSI buy signal", verify=False)

    trade.refresh_from_db()
    assert trade.status == Trade.Status.UNKNOWN
    assert "503" in trade.error_message
    fake.faults.failures.clear()

    orders.sync_open_orders()

    trade.refresh_from_db()
    assert trade.status == Trade.Status.FILLED
    assert trade.error_message == ""
    assert PaperOrder.objects.count() == 1


def test_verification_stores_the_true_status_when_not_filled(configured_broker, caplog, settings):
    bot = BotFactory()
    price = get_broker().get_latest_prices(["AAPL"])["AAPL"]
    trade = Trade.objects.create(
        bot=bot, symbol="AAPL", side="buy", qty=Decimal("1"), reason="test",
        client_order_id=orders.generate_client_order_id(bot),
    )  # fmt: skip
    # A limit order far below the market rests: the verification must not call it filled.
    order = get_broker().submit_limit_order(
        "AAPL", Decimal("1"), OrderSide.BUY, (price / 2).quantize(Decimal("0.01")),
        trade.client_order_id,
    )  # fmt: skip
    orders.record_order(trade, order)

    status = orders.verify(trade.pk, attempt=settings.ORDER_VERIFY_RETRIES + 1)

    assert status == Trade.Status.ACCEPTED
    assert "still accepted after verification" in caplog.text


def test_place_order_refuses_to_run_inside_a_transaction(db):
    from django.db import transaction

    with transaction.atomic(), pytest.raises(RuntimeError, match="must not be sent inside"):
        orders.place_order(BotFactory(), "buy", Decimal("1"), "x")
