"""The engine's tick: batching, signals, stop-loss / take-profit, locking, failures."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from bots.models import Bot
from bots.tests.factories import BotFactory
from tradebots.broker.base import Clock
from tradebots.broker.paper import market
from tradebots.broker.paper.broker import PaperBroker
from trading import engine, orders
from trading.models import Position, Trade
from trading.tests.strategies import ALWAYS_BUY, ALWAYS_SELL, NEVER

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_verification(settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0


def running_bot(**fields) -> Bot:
    return BotFactory(status=Bot.Status.RUNNING, **fields)


def tick() -> engine.TickReport:
    return engine.run_tick(dispatch=engine.evaluate_batch)


def hold_position(bot: Bot, qty="5", **prices) -> Position:
    orders.place_order(bot, "buy", Decimal(qty), "RSI buy signal")
    position = Position.objects.get(bot=bot, is_open=True)
    Position.objects.filter(pk=position.pk).update(**prices)
    return position


def test_a_buy_signal_buys_whole_shares_with_the_bots_capital():
    bot = running_bot(strategy=ALWAYS_BUY, capital=Decimal("1000"), symbol="MSFT")

    report = tick()

    (trade,) = Trade.objects.all()
    price = market.latest_price("MSFT", datetime.now(UTC))
    assert trade.bot == bot and trade.side == "buy"
    assert trade.qty == int(Decimal("1000") / price)
    assert trade.reason == "RSI buy signal"
    assert trade.status == Trade.Status.FILLED
    assert [o.action for o in report.outcomes] == ["buy"]


def test_a_sell_signal_sells_the_whole_position():
    bot = running_bot(strategy=ALWAYS_SELL)
    hold_position(bot, qty="5")

    tick()

    sell = Trade.objects.get(side="sell")
    assert (sell.qty, sell.reason) == (5, "RSI sell signal")
    assert not Position.objects.filter(bot=bot, is_open=True).exists()


def test_no_signal_means_no_order():
    running_bot(strategy=NEVER)

    report = tick()

    assert not Trade.objects.exists()
    assert report.outcomes[0].action == "hold"


def test_stop_loss_comes_first_with_its_exact_reason():
    bot = running_bot(strategy=ALWAYS_BUY)
    hold_position(bot, stop_loss_price=Decimal("100000.00"))

    tick()

    sell = Trade.objects.get(side="sell")
    assert sell.reason == "Stop-loss triggered (price ≤ $100,000.00)"


def test_take_profit_with_its_exact_reason():
    bot = running_bot(strategy=NEVER)
    hold_position(bot, take_profit_price=Decimal("1.50"))

    tick()

    assert Trade.objects.get(side="sell").reason == "Take-profit triggered (price ≥ $1.50)"


@pytest.mark.parametrize("status", [Bot.Status.PAUSED, Bot.Status.STOPPED, Bot.Status.ERROR])
def test_bots_that_are_not_running_are_skipped(status):
    BotFactory(status=status, strategy=ALWAYS_BUY)

    report = tick()

    assert report.outcomes == []
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    ("prices", "reason"),
    [
        ({"stop_loss_price": Decimal("100000.00")}, "Stop-loss triggered (price ≤ $100,000.00)"),
        ({"take_profit_price": Decimal("1.50")}, "Take-profit triggered (price ≥ $1.50)"),
    ],
)
def test_a_paused_bot_still_gets_out_at_its_stop_loss_or_take_profit(prices, reason):
    bot = running_bot(strategy=ALWAYS_SELL)
    hold_position(bot, **prices)
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.PAUSED)

    tick()

    sell = Trade.objects.get(side="sell")
    assert (sell.reason, sell.status) == (reason, Trade.Status.FILLED)
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED  # still paused: it only got out


def test_a_paused_bot_makes_no_signal_trades():
    """Its sell signal (ALWAYS_SELL) is ignored while paused; only the protection is watched."""
    bot = running_bot(strategy=ALWAYS_SELL)
    hold_position(bot)
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.PAUSED)

    report = tick()

    assert not Trade.objects.filter(side="sell").exists()
    assert [(o.action, o.reason) for o in report.outcomes] == [("hold", engine.PAUSED_HOLD_REASON)]


def test_a_stopped_bot_holding_a_position_is_not_evaluated():
    bot = running_bot(strategy=ALWAYS_SELL)
    hold_position(bot, stop_loss_price=Decimal("100000.00"))
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.STOPPED)

    assert tick().outcomes == []
    assert not Trade.objects.filter(side="sell").exists()


def test_a_closed_market_means_no_orders(monkeypatch):
    now = datetime.now(UTC)
    closed = Clock(timestamp=now, is_open=False, next_open=now + timedelta(hours=12),
                   next_close=now + timedelta(hours=18))  # fmt: skip
    monkeypatch.setattr(PaperBroker, "get_clock", lambda self: closed)
    running_bot(strategy=ALWAYS_BUY)

    report = tick()

    assert report.market_open is False
    assert not Trade.objects.exists()
    status = engine.market_status()
    assert status["is_open"] is False
    assert status["next_open"] == closed.next_open


def test_one_market_data_call_per_batch_and_one_evaluation_per_distinct_strategy(
    monkeypatch, settings
):
    settings.ENGINE_BATCH_SYMBOLS = 2
    for symbol in ("AAPL", "MSFT", "NVDA", "AMD", "KO"):
        for _ in range(3):  # three bots per symbol share one strategy
            running_bot(symbol=symbol, strategy=NEVER, timeframe="5Min")
    running_bot(symbol="AAPL", strategy=NEVER, timeframe="1Hour")
    calls = {"get_bars": [], "evaluate": 0}
    real_bars, real_evaluate = PaperBroker.get_bars, engine.evaluate

    def counting_bars(self, symbols, timeframe, limit):
        calls["get_bars"].append((timeframe, tuple(symbols)))
        return real_bars(self, symbols, timeframe, limit)

    def counting_evaluate(*args, **kwargs):
        calls["evaluate"] += 1
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(PaperBroker, "get_bars", counting_bars)
    monkeypatch.setattr(engine, "evaluate", counting_evaluate)

    report = tick()

    assert calls["get_bars"] == [
        ("1Hour", ("AAPL",)),
        ("5Min", ("AAPL", "AMD")),
        ("5Min", ("KO", "MSFT")),
        ("5Min", ("NVDA",)),
    ]
    assert calls["evaluate"] == 6  # (symbol, strategy) pairs, not 16 bots
    assert len(report.outcomes) == 16


def test_one_bots_failure_does_not_stop_the_tick(monkeypatch):
    failing = running_bot(symbol="MSFT", strategy=ALWAYS_BUY, name="Broken")
    healthy = running_bot(symbol="AAPL", strategy=ALWAYS_BUY, name="Healthy")
    real_decide = engine._decide

    def decide(bot, *args):
        if bot.pk == failing.pk:
            raise ValueError("boom")
        return real_decide(bot, *args)

    monkeypatch.setattr(engine, "_decide", decide)

    report = tick()

    outcomes = {o.bot_name: o for o in report.outcomes}
    assert outcomes["Broken"].action == "error" and "boom" in outcomes["Broken"].reason
    assert outcomes["Healthy"].action == "buy"
    assert Trade.objects.get().bot == healthy


@pytest.mark.parametrize("same_symbol", [True, False])
def test_a_bot_whose_stored_strategy_is_invalid_is_an_error_and_the_others_trade(same_symbol):
    """Stored before the schema checked the admin: that bot is reported, the tick goes on."""
    broken = {"indicators": {"rsi": {"enabled": True, "period": 0}}, "buy_rule": "rsi"}
    running_bot(symbol="AAPL", strategy=broken, name="Broken")
    healthy = running_bot(symbol="AAPL" if same_symbol else "MSFT", strategy=ALWAYS_BUY)

    report = tick()

    outcomes = {o.bot_name: o for o in report.outcomes}
    assert (outcomes["Broken"].action, outcomes["Broken"].reason) == (
        "error", "Invalid strategy: RSI period must be at least 2."
    )  # fmt: skip
    assert outcomes[healthy.name].action == "buy"
    assert Trade.objects.get().bot == healthy


def test_a_batch_of_only_invalid_strategies_fetches_no_market_data(monkeypatch):
    running_bot(strategy={"indicators": "x"}, name="Broken")
    monkeypatch.setattr(PaperBroker, "get_bars", lambda *a, **k: pytest.fail("fetched bars"))

    (outcome,) = tick().outcomes

    assert (outcome.action, outcome.reason) == (
        "error", "Invalid strategy: Indicators must be an object."
    )  # fmt: skip


def test_repeated_rejections_put_the_bot_in_error(settings):
    settings.ENGINE_MAX_REJECTIONS = 3
    bot = running_bot(strategy=ALWAYS_BUY, capital=Decimal("500000"))  # more than the cash

    for _ in range(3):
        tick()

    bot.refresh_from_db()
    assert Trade.objects.filter(status=Trade.Status.REJECTED).count() == 3
    assert bot.status == Bot.Status.ERROR
    assert "3 orders rejected in a row" in bot.last_error
    assert "insufficient buying power" in bot.last_error
    tick()
    assert Trade.objects.count() == 3  # an errored bot no longer trades


def test_two_workers_ticking_at_once_place_no_duplicate_orders():
    running_bot(strategy=ALWAYS_BUY)
    start = threading.Barrier(4)

    def worker():
        start.wait()
        try:
            tick()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The first worker buys; the others find the bot locked or already holding.
    assert Trade.objects.filter(side="buy").count() == 1


def test_a_paused_bot_is_not_evaluated_by_a_tick_that_listed_it_running(monkeypatch):
    bot = running_bot(strategy=ALWAYS_BUY)
    real_plan = engine.plan_batches

    def pause_after_planning(bots):
        batches = real_plan(bots)
        Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.PAUSED)
        return batches

    monkeypatch.setattr(engine, "plan_batches", pause_after_planning)

    tick()

    assert not Trade.objects.exists()


def test_the_command_runs_one_tick_and_says_what_each_bot_did():
    running_bot(name="Buyer", strategy=ALWAYS_BUY, symbol="AAPL")
    running_bot(name="Waiter", strategy=NEVER, symbol="KO")
    out = StringIO()

    call_command("engine_tick", stdout=out)

    lines = out.getvalue().splitlines()
    assert any(
        line.startswith("Buyer (AAPL): BUY – RSI buy signal → order filled") for line in lines
    )
    assert any(line.startswith("Waiter (KO): HOLD – No signal") for line in lines)


def test_the_celery_tick_fans_out_to_workers(celery_worker):
    from trading.tasks import engine_tick

    running_bot(strategy=ALWAYS_BUY)

    result = engine_tick.delay().get(timeout=30)

    assert result == {"market_open": True, "batches": 1}
    for _ in range(100):
        if Trade.objects.filter(status=Trade.Status.FILLED).exists():
            break
        threading.Event().wait(0.1)
    assert Trade.objects.filter(status=Trade.Status.FILLED).count() == 1


def test_a_bot_allowing_fractions_buys_them_where_the_asset_allows():
    bot = running_bot(strategy=ALWAYS_BUY, capital=Decimal("1000"), allow_fractional=True)

    tick()

    trade = Trade.objects.get(bot=bot)
    assert trade.qty != trade.qty.to_integral_value()
    assert trade.qty * trade.price <= Decimal("1000") * Decimal("1.001")
    assert trade.status == Trade.Status.FILLED


def test_fractions_are_not_bought_where_the_asset_does_not_allow_them(monkeypatch):
    from dataclasses import replace

    real_asset = PaperBroker.get_asset
    monkeypatch.setattr(
        PaperBroker, "get_asset", lambda self, s: replace(real_asset(self, s), fractionable=False)
    )
    bot = running_bot(strategy=ALWAYS_BUY, capital=Decimal("1000"), allow_fractional=True)

    tick()

    trade = Trade.objects.get(bot=bot)
    assert trade.qty == trade.qty.to_integral_value() and trade.qty >= 1


def test_each_evaluated_bot_remembers_its_decision_and_when():
    buyer = running_bot(name="Buyer", strategy=ALWAYS_BUY, symbol="AAPL")
    waiter = running_bot(name="Waiter", strategy=NEVER, symbol="KO")
    stopped = BotFactory(status=Bot.Status.STOPPED, strategy=ALWAYS_BUY)

    tick()

    buyer.refresh_from_db(), waiter.refresh_from_db(), stopped.refresh_from_db()
    assert (buyer.last_action, buyer.last_reason) == ("buy", "RSI buy signal")
    assert waiter.last_action == "hold" and waiter.last_evaluated_at is not None
    assert stopped.last_evaluated_at is None


def test_a_tick_pushes_the_chart_of_a_watched_bot_with_its_new_fill_from_the_same_bars(
    monkeypatch,
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from tradebots import live

    watched = running_bot(strategy=ALWAYS_BUY, symbol="MSFT")
    running_bot(strategy=ALWAYS_BUY, symbol="MSFT")  # no page open: no chart rendered
    group = live.bot_group(watched.pk)
    layer = get_channel_layer()
    async_to_sync(layer.group_add)(group, "test.engine!page")
    sent, bar_calls = [], []
    real_bars = PaperBroker.get_bars

    def counting_bars(self, symbols, timeframe, limit):
        bar_calls.append(limit)
        return real_bars(self, symbols, timeframe, limit)

    monkeypatch.setattr(PaperBroker, "get_bars", counting_bars)
    monkeypatch.setattr(live, "_deliver", sent.extend)
    try:
        tick()
    finally:
        async_to_sync(layer.group_discard)(group, "test.engine!page")

    assert len(bar_calls) == 1  # the chart is drawn from the engine's own bars
    charts = [html for to, message in sent if to == group
              for html in [message["html"]] if "bot-chart-source" in html]  # fmt: skip
    assert len(charts) == 1
    assert sum("bot-chart-source" in message.get("html", "") for _, message in sent) == 1
    trade = Trade.objects.get(bot=watched)
    assert f'"side": "buy", "qty": "{trade.filled_qty.normalize():f}"' in charts[0]
    assert '"panes": [{"key": "rsi"' in charts[0]


def test_a_tick_pushes_the_cards_only_pages_show(monkeypatch):
    from tradebots import live

    shown = running_bot(name="Shown", strategy=NEVER, symbol="AAPL")
    running_bot(name="Unseen", strategy=NEVER, symbol="KO")
    monkeypatch.setattr(live, "watched_groups", lambda groups: {live.bot_group(shown.pk)})
    pushed = []
    monkeypatch.setattr(engine.bot_services, "broadcast_bot", lambda bot: pushed.append(bot.pk))

    tick()

    assert [str(pk) for pk in pushed] == [str(shown.pk)]


def _change_status_while_prices_are_read(monkeypatch, bot, status):
    real = PaperBroker.get_latest_prices

    def read_then_change(self, symbols):
        Bot.objects.filter(pk=bot.pk).update(status=status)  # the trader clicks meanwhile
        return real(self, symbols)

    monkeypatch.setattr(PaperBroker, "get_latest_prices", read_then_change)


def test_a_paused_bot_stopped_meanwhile_is_not_sold_for_its_stop_loss(monkeypatch):
    bot = running_bot(strategy=NEVER)
    hold_position(bot, stop_loss_price=Decimal("100000.00"))
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.PAUSED)
    _change_status_while_prices_are_read(monkeypatch, bot, Bot.Status.STOPPED)

    report = tick()

    assert not Trade.objects.filter(side="sell").exists()  # Stop said: nothing is evaluated
    assert report.outcomes[0].action == "waiting"


def test_a_stop_loss_still_sells_when_its_bot_was_paused_meanwhile(monkeypatch):
    bot = running_bot(strategy=NEVER)
    hold_position(bot, stop_loss_price=Decimal("100000.00"))
    _change_status_while_prices_are_read(monkeypatch, bot, Bot.Status.PAUSED)

    tick()

    assert Trade.objects.get(side="sell").reason.startswith("Stop-loss triggered")
