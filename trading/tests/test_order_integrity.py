"""Issue 12's rules on the order path, against the paper exchange and AlpacaBroker + the fake
Alpaca server: a bot never acts on a stale picture of its own orders and holdings."""

import threading
import time
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from bots.models import Bot
from bots.tests.factories import BotFactory
from tradebots.broker import BrokerUnavailable, get_broker
from tradebots.broker.paper import exchange
from tradebots.broker.paper.broker import PaperBroker
from tradebots.broker.paper.models import PaperOrder
from trading import emergency, engine, orders
from trading.models import Position, Trade
from trading.tests.strategies import ALWAYS_BUY, ALWAYS_SELL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_verification_tasks(settings, monkeypatch):
    """Verification is a Celery task; here the tests drive the sync themselves."""
    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    monkeypatch.setattr(orders, "follow_later", lambda trade, attempt=1: None)
    monkeypatch.setattr(emergency, "follow_later", lambda trade, attempt=1: None)


@pytest.fixture(params=["paper", "alpaca"])
def broker_kind(request, transactional_db):
    """get_broker() is the paper exchange, or AlpacaBroker through the fake Alpaca server."""
    if request.param == "alpaca":
        request.getfixturevalue("alpaca_fake")
    return request.param


@pytest.fixture
def fills(monkeypatch):
    """Make the exchange behind both brokers fill only ``ratio`` of each new market order
    (0: accepted, unfilled); the fake Alpaca server calls the same exchange core."""
    real_submit = exchange.submit_order

    def set_ratio(ratio: str | None):
        def submit(**order):
            if ratio is not None and order.get("fill_qty") is None:
                order["fill_qty"] = (order["qty"] * Decimal(ratio)).to_integral_value(ROUND_DOWN)
            return real_submit(**order)

        monkeypatch.setattr(exchange, "submit_order", submit)

    return set_ratio


class Outage:
    """The broker answers nothing about orders (5xx / connection refused) until ``end()``."""

    METHODS = ("submit_market_order", "get_order", "get_order_by_client_order_id", "cancel_order")

    def __init__(self, kind, monkeypatch, request):
        self.kind, self.monkeypatch = kind, monkeypatch
        self.fake = request.getfixturevalue("alpaca_fake") if kind == "alpaca" else None

    def start(self):
        if self.fake:
            self.fake.fail(503, times=10**6, path="/v2/orders")
            return
        for name in self.METHODS:

            def down(self, *args, **kwargs):
                raise BrokerUnavailable("paper exchange unreachable (injected)")

            self.monkeypatch.setattr(PaperBroker, name, down)

    def end(self):
        if self.fake:
            self.fake.faults.failures.clear()
        else:
            self.monkeypatch.undo()


@pytest.fixture
def outage(broker_kind, monkeypatch, request):
    return Outage(broker_kind, monkeypatch, request)


def running_bot(**fields) -> Bot:
    return BotFactory(status=Bot.Status.RUNNING, **fields)


def tick() -> dict[str, engine.BotOutcome]:
    report = engine.run_tick(dispatch=engine.evaluate_batch)
    return {outcome.bot_name: outcome for outcome in report.outcomes}


def broker_orders() -> list:
    return list(get_broker().iter_orders())


# --- rule 1: exposure is the position plus the open orders ---------------------------------------


def test_an_accepted_unfilled_buy_makes_the_bot_wait(broker_kind, fills):
    bot = running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0")

    first = tick()
    second = tick()
    third = tick()

    (trade,) = Trade.objects.all()
    assert first["Buyer"].action == "buy"
    assert trade.status == Trade.Status.ACCEPTED and trade.filled_qty == 0
    for outcome in (second["Buyer"], third["Buyer"]):
        assert outcome.action == "waiting"
        assert f"Waiting for order {trade.client_order_id}" in outcome.reason
    assert len(broker_orders()) == 1
    assert not Position.objects.filter(bot=bot).exists()


def test_a_partial_fill_books_what_filled_and_the_rest_stays_the_bots_open_order(
    broker_kind, fills
):
    bot = running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0.5")

    tick()
    again = tick()

    trade = Trade.objects.get()
    position = Position.objects.get(bot=bot, is_open=True)
    assert trade.status == Trade.Status.PARTIALLY_FILLED
    assert (
        position.qty
        == trade.filled_qty
        == (trade.qty * Decimal("0.5")).to_integral_value(ROUND_DOWN)
    )
    assert again["Buyer"].action == "waiting"
    assert len(broker_orders()) == 1
    # Filled plus still open never exceeds the bot's capital.
    assert trade.qty * trade.expected_price <= bot.capital


def test_an_unknown_outcome_makes_the_bot_wait_and_the_sync_resolves_it(broker_kind, outage):
    running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    outage.start()

    first = tick()
    second = tick()

    trade = Trade.objects.get()
    assert first["Buyer"].trade_status == Trade.Status.UNKNOWN
    assert second["Buyer"].action == "waiting"
    outage.end()

    orders.sync_open_orders()

    trade.refresh_from_db()
    assert trade.status == Trade.Status.FILLED
    assert [order.client_order_id for order in broker_orders()] == [trade.client_order_id]


def test_a_rejected_order_is_final_and_the_bot_may_act_again(broker_kind, buying_power):
    running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    buying_power("10")  # not enough for one share

    first = tick()
    buying_power("100000")
    second = tick()

    assert first["Buyer"].trade_status == Trade.Status.REJECTED
    assert second["Buyer"].action == "buy"
    assert second["Buyer"].trade_status == Trade.Status.FILLED


def test_an_order_unfilled_past_the_stale_time_is_canceled_and_what_filled_is_booked(
    broker_kind, fills, settings
):
    bot = running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0.5")
    tick()
    trade = Trade.objects.get()
    assert orders.sync_open_orders()["canceled"] == 0  # young: left alone

    settings.ORDER_STALE_SECONDS = 0
    counts = orders.sync_open_orders()

    trade.refresh_from_db()
    assert counts["canceled"] == 1
    assert trade.status == Trade.Status.CANCELED
    assert trade.filled_qty > 0
    (order,) = broker_orders()
    assert order.status == "canceled" and order.filled_qty == trade.filled_qty
    assert Position.objects.get(bot=bot, is_open=True).qty == trade.filled_qty
    # Only now may the bot act again: it holds the filled part.
    assert tick()["Buyer"].action in ("hold", "sell")


def test_an_unfilled_order_canceled_as_stale_leaves_the_bot_flat(broker_kind, fills, settings):
    bot = running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0")
    tick()
    settings.ORDER_STALE_SECONDS = 0

    orders.sync_open_orders()

    assert Trade.objects.get().status == Trade.Status.CANCELED
    assert not Position.objects.filter(bot=bot).exists()


def test_the_engine_never_sleeps_for_verification(broker_kind, fills, monkeypatch):
    scheduled = []
    monkeypatch.setattr(orders, "follow_later", lambda trade, attempt=1: scheduled.append(trade))
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("slept in the engine"))
    running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0")

    tick()

    assert [trade.status for trade in scheduled] == [Trade.Status.ACCEPTED]


# --- rule 2: one exit at a time, of the position's own symbol and quantity -----------------------


def test_a_sell_uses_the_positions_symbol_and_quantity_not_the_bots_settings(broker_kind):
    bot = running_bot(name="Holder", symbol="AAPL", strategy=ALWAYS_SELL)
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    # Books from before symbol changes were refused: the engine must not trade MSFT on it.
    Bot.objects.filter(pk=bot.pk).update(symbol="MSFT")

    outcome = tick()["Holder"]

    assert outcome.action == "skipped" and "Holds AAPL but trades MSFT" in outcome.reason
    assert Trade.objects.filter(side="sell").count() == 0

    result = emergency.close_position(position, "operator")

    assert (result.trade.symbol, result.trade.qty) == ("AAPL", 4)
    position.refresh_from_db()
    assert not position.is_open
    assert {order.symbol for order in broker_orders()} == {"AAPL"}


def test_a_manual_sell_joins_an_engine_sell_in_flight(broker_kind, fills):
    bot = running_bot(name="Holder", strategy=ALWAYS_SELL)
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    fills("0")
    assert tick()["Holder"].action == "sell"
    engine_sell = Trade.objects.get(side="sell")

    result = emergency.close_position(position, "operator")

    assert result.already_in_flight and result.trade == engine_sell
    assert "already in flight" in result.message
    assert Trade.objects.filter(side="sell").count() == 1
    assert len([o for o in broker_orders() if o.side == "sell"]) == 1
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED


def test_the_engine_waits_while_a_manual_sell_is_in_flight(broker_kind, fills):
    bot = running_bot(name="Holder", strategy=ALWAYS_SELL)
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    fills("0")
    emergency.close_position(position, "operator", pause_bot=False)

    outcome = tick()["Holder"]

    assert outcome.action == "waiting"
    assert Trade.objects.filter(side="sell").count() == 1


def test_an_engine_sell_and_a_manual_sell_racing_send_one_order(broker_kind):
    bot = running_bot(name="Holder", strategy=ALWAYS_SELL)
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    start = threading.Barrier(2)
    errors = []

    def engine_side():
        try:
            start.wait()
            engine.evaluate_batch(engine.Batch(bot.timeframe, (bot.symbol,)))
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    def operator_side():
        try:
            start.wait()
            emergency.close_position(Position.objects.get(pk=position.pk), "operator")
        except emergency.CloseRefused:
            pass  # the engine's sell closed it first
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=engine_side), threading.Thread(target=operator_side)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Trade.objects.filter(side="sell").count() == 1
    assert len([order for order in broker_orders() if order.side == "sell"]) == 1
    position.refresh_from_db()
    assert not position.is_open


def test_a_manual_close_cancels_the_bots_open_buy_and_sells_what_filled(broker_kind, fills):
    bot = running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0.5")
    tick()
    buy = Trade.objects.get()
    position = Position.objects.get(bot=bot, is_open=True)
    fills(None)

    result = emergency.close_position(position, "operator")

    buy.refresh_from_db()
    position.refresh_from_db()
    assert buy.status == Trade.Status.CANCELED
    assert result.trade.qty == buy.filled_qty
    assert result.trade.status == Trade.Status.FILLED
    assert not position.is_open
    assert sum(o.filled_qty for o in broker_orders() if o.side == "sell") == buy.filled_qty


# --- rule 4: positions whose bot was deleted stay closable ---------------------------------------


def test_a_position_whose_bot_was_deleted_is_closed_in_our_books_too(broker_kind):
    bot = running_bot(name="Gone")
    orders.place_order(bot, "buy", Decimal("3"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    Bot.objects.filter(pk=bot.pk).delete()  # as before the rule, or by other means
    position.refresh_from_db()
    assert position.bot is None

    result = emergency.close_position(position, "operator")

    position.refresh_from_db()
    assert result.trade.status == Trade.Status.FILLED
    assert result.trade.client_order_id.startswith("manual-")
    assert not position.is_open and position.realized_pnl is not None
    assert result.trade.position == position


# --- rule 5: manual closes are never silently dropped --------------------------------------------


def test_an_emergency_sell_during_an_outage_longer_than_the_intent_ttl_ends_filled(
    broker_kind, outage, settings
):
    bot = running_bot(name="Holder")
    orders.place_order(bot, "buy", Decimal("5"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    outage.start()

    result = emergency.close_position(position, "operator")

    assert not result.confirmed
    assert "not confirmed yet; the position stays open until the broker confirms" in (
        result.message
    )
    sell = result.trade
    assert sell.status in (Trade.Status.UNKNOWN, Trade.Status.PENDING)
    # The outage outlasts the intent TTL that suits engine signals.
    Trade.objects.filter(pk=sell.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.ORDER_INTENT_TTL_SECONDS + 60)
    )
    assert orders.sync_open_orders()["failed"] == 1
    position.refresh_from_db()
    assert position.is_open
    outage.end()

    counts = orders.sync_open_orders()

    sell.refresh_from_db()
    position.refresh_from_db()
    assert counts["abandoned"] == 0
    assert sell.status == Trade.Status.FILLED
    assert not position.is_open
    assert len([o for o in broker_orders() if o.side == "sell"]) == 1


def test_an_engine_intent_that_never_left_is_still_abandoned_after_the_ttl(broker_kind, settings):
    bot = BotFactory()
    trade = orders.record_buy_intent(bot, Decimal("1"), "RSI buy signal")
    Trade.objects.filter(pk=trade.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.ORDER_INTENT_TTL_SECONDS + 1)
    )

    assert orders.sync_open_orders()["abandoned"] == 1
    assert broker_orders() == []


def test_the_api_says_plainly_when_a_close_is_not_confirmed(broker_kind, outage, user_client):
    bot = running_bot(name="Holder")
    orders.place_order(bot, "buy", Decimal("5"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    outage.start()

    response = user_client.post(f"/api/positions/{position.pk}/close")

    assert response.status_code == 202
    body = response.json()
    assert body["confirmed"] is False
    assert "not confirmed yet" in body["message"]
    assert body["trade"]["status"] in ("unknown", "pending")


# --- the sync_orders command ---------------------------------------------------------------------


def test_sync_orders_command_settles_open_orders(broker_kind, fills):
    running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0")
    tick()
    exchange.fill_remaining(PaperOrder.objects.get())
    out = StringIO()

    call_command("sync_orders", stdout=out)

    assert "Checked 1 open orders: 1 updated" in out.getvalue()
    assert "0 still open" in out.getvalue()
    assert Trade.objects.get().status == Trade.Status.FILLED


def test_sync_orders_command_fails_readably_when_the_broker_is_down(broker_kind, outage):
    orders.record_buy_intent(BotFactory(), Decimal("1"), "RSI buy signal")
    outage.start()

    with pytest.raises(CommandError, match="1 open orders could not be checked"):
        call_command("sync_orders", stdout=StringIO())


def test_a_manual_close_is_never_canceled_as_stale(broker_kind, fills, settings):
    bot = running_bot(name="Holder")
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    fills("0")
    sell = emergency.close_position(position, "operator").trade
    settings.ORDER_STALE_SECONDS = 0

    assert orders.sync_open_orders()["canceled"] == 0

    sell.refresh_from_db()
    assert sell.status == Trade.Status.ACCEPTED
    exchange.fill_remaining(PaperOrder.objects.get(client_order_id=sell.client_order_id))
    orders.sync_open_orders()
    position.refresh_from_db()
    assert not position.is_open


# --- decisions are re-checked under the lock; answers are never overwritten by older ones -------


def test_a_buy_decided_on_one_symbol_is_not_sent_after_the_symbol_changed(broker_kind):
    bot = running_bot(name="Buyer", symbol="AAPL")
    Bot.objects.filter(pk=bot.pk).update(symbol="MSFT")  # between the tick's read and the order

    with pytest.raises(orders.OrderRefused, match="now trades MSFT, not AAPL"):
        orders.record_buy_intent(bot, Decimal("2"), "RSI buy signal", symbol="AAPL")

    assert not Trade.objects.exists() and broker_orders() == []


def test_an_engine_order_is_not_sent_for_a_bot_paused_after_the_tick_read_it(broker_kind):
    bot = running_bot(name="Buyer")
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.PAUSED)

    with pytest.raises(orders.OrderRefused, match="is paused"):
        orders.record_buy_intent(bot, Decimal("2"), "RSI buy signal", require_running=True)

    assert not Trade.objects.exists()


def test_a_bot_holding_a_position_is_not_bought_for_again(broker_kind):
    bot = running_bot(name="Holder")
    orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal")

    with pytest.raises(orders.OrderRefused, match="already holds 2"):
        orders.record_buy_intent(bot, Decimal("2"), "RSI buy signal")


def test_an_older_broker_answer_never_reopens_a_filled_trade(broker_kind):
    bot = running_bot(name="Buyer")
    trade = orders.place_order(bot, "buy", Decimal("3"), "RSI buy signal")
    assert trade.status == Trade.Status.FILLED
    older = get_broker().get_order(trade.order_id)
    older = type(older)(**{**older.__dict__, "status": "accepted", "filled_qty": Decimal(0)})

    again = orders.record_order(trade, older)

    assert (again.status, again.filled_qty) == (Trade.Status.FILLED, 3)
    assert Position.objects.get(bot=bot).qty == 3


def test_our_own_verdict_never_overwrites_the_brokers_answer(broker_kind):
    bot = running_bot(name="Buyer")
    trade = orders.place_order(bot, "buy", Decimal("1"), "RSI buy signal")

    orders._mark(trade, Trade.Status.CANCELED, "Never reached the broker")

    trade.refresh_from_db()
    assert trade.status == Trade.Status.FILLED and trade.error_message == ""


def test_joining_an_engine_sell_makes_it_a_manual_close_that_is_never_dropped(
    broker_kind, fills, settings
):
    bot = running_bot(name="Holder", strategy=ALWAYS_SELL)
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    fills("0")
    tick()
    emergency.close_position(position, "operator")
    settings.ORDER_STALE_SECONDS = 0

    orders.sync_open_orders()

    sell = Trade.objects.get(side="sell")
    assert sell.origin == Trade.Origin.MANUAL
    assert sell.is_open  # still working at the broker, not canceled as a stale engine order


def test_the_same_unmanaged_shares_are_not_sold_twice(broker_kind, fills):
    from tradebots.broker import OrderSide

    get_broker().submit_market_order("KO", Decimal("3"), OrderSide.BUY, "my-own-order-1")
    fills("0")

    first = emergency.close_unmanaged("KO", "operator")

    with pytest.raises(emergency.CloseRefused, match="already in flight"):
        emergency.close_unmanaged("KO", "operator")
    assert first.is_open
    assert len([o for o in broker_orders() if o.side == "sell"]) == 1


def test_every_request_uses_the_short_interactive_broker_timeout(
    alpaca_fake, settings, user_client
):
    settings.ALPACA_READ_TIMEOUT_SECONDS = 30
    settings.ALPACA_INTERACTIVE_TIMEOUT_SECONDS = 0.3
    alpaca_fake.faults.latency = 2  # a hung broker, as far as a page is concerned

    response = user_client.get("/api/account")

    assert response.status_code == 200 and response.json()["error"]
    # One attempt, no retries: a page gives up after the interactive timeout.
    assert len(alpaca_fake.requests_to("GET", "/v2/account")) == 1


def test_a_manual_close_outcome_is_toasted_only_when_it_arrives_after_the_request(
    broker_kind, fills, monkeypatch
):
    from tradebots import live

    toasts = []
    monkeypatch.setattr(live, "toast", lambda message, level="info": toasts.append(message))
    bot = running_bot(name="Holder")
    orders.place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    emergency.close_position(Position.objects.get(bot=bot, is_open=True), "operator")
    assert toasts == []  # filled at once: the request's own answer says so

    other = running_bot(name="Slow", symbol="MSFT")
    orders.place_order(other, "buy", Decimal("2"), "RSI buy signal")
    fills("0")
    sell = emergency.close_position(Position.objects.get(bot=other, is_open=True), "op").trade
    exchange.fill_remaining(PaperOrder.objects.get(client_order_id=sell.client_order_id))
    orders.sync_open_orders()

    assert toasts == ["Sold 2 MSFT (manual close)."]


def test_a_bots_fill_not_yet_booked_is_never_offered_as_unmanaged(broker_kind, fills):
    from trading.positions import unmanaged_positions

    running_bot(name="Buyer", strategy=ALWAYS_BUY, capital=Decimal("1000"))
    fills("0")
    tick()
    trade = Trade.objects.get()
    # The broker fills it; our sync has not seen it yet.
    exchange.fill_remaining(PaperOrder.objects.get(client_order_id=trade.client_order_id))

    assert unmanaged_positions() == []
    with pytest.raises(emergency.CloseRefused, match="no unmanaged"):
        emergency.close_unmanaged(trade.symbol, "operator")


def test_the_open_orders_index_covers_exactly_the_open_statuses():
    # The partial index spells the statuses out (a Meta cannot see the class's constants).
    (index,) = [index for index in Trade._meta.indexes if index.name == "trade_open_by_bot"]
    assert sorted(dict(index.condition.children)["status__in"]) == sorted(Trade.OPEN_STATUSES)
