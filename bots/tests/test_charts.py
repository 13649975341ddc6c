"""The bot page's chart data: panes for the enabled oscillators only, their levels, first-of-run
signal markers, the bot's fills, and the push after an engine tick."""

from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from bots import charts
from bots.books import Fill
from bots.schema import MacdConfig, RsiConfig, StochasticConfig
from bots.tests.factories import BotFactory
from bots.tests.test_strategy import make_bars, make_strategy
from tradebots import live
from tradebots.broker import get_broker
from tradebots.broker.paper.broker import PaperBroker
from trading.models import Trade
from trading.tests.factories import TradeFactory

RSI_AND_MACD = make_strategy(
    rsi=RsiConfig(enabled=True, period=2, oversold=25, overbought=75),
    macd=MacdConfig(enabled=True, fast=2, slow=4, signal=2),
    buy_rule="rsi",
    sell_rule="rsi",
)
# RSI(2) of these closes: -, 100, 100, 42.9, 20, 9.7, 78, 89, 35.5, 19.7.
CLOSES = [10, 11, 12, 11, 10, 9, 12, 14, 11, 9]


def test_panes_only_for_the_enabled_oscillators_with_the_strategys_levels():
    chart = charts.build_chart(RSI_AND_MACD, make_bars(CLOSES), [])

    assert [pane["key"] for pane in chart["panes"]] == ["rsi", "macd"]
    rsi, macd = chart["panes"]
    assert rsi["name"] == "RSI 2"
    assert rsi["levels"] == [
        {"name": "Oversold", "value": "25"},
        {"name": "Overbought", "value": "75"},
    ]
    assert [(line["name"], line["kind"]) for line in rsi["series"]] == [("RSI", "line")]
    assert [(line["name"], line["kind"]) for line in macd["series"]] == [
        ("MACD", "line"),
        ("Signal", "line"),
        ("Histogram", "histogram"),
    ]
    assert macd["levels"] == [{"name": "Zero", "value": "0"}]
    assert chart["overlays"] == []
    values = {line["name"]: {p["time"]: Decimal(p["value"]) for p in line["points"]}
              for line in macd["series"]}  # fmt: skip
    last = chart["bars"][-1]["time"]
    assert abs(values["Histogram"][last] - (values["MACD"][last] - values["Signal"][last])) <= (
        Decimal("0.0002")
    )
    assert any(value < 0 for value in values["Histogram"].values())


def test_stochastic_pane_with_its_levels_and_no_pane_for_price_indicators():
    strategy = make_strategy(
        stochastic=StochasticConfig(enabled=True, k=3, d=2, oversold=15, overbought=85),
        buy_rule="stochastic",
        sell_rule="stochastic",
    )
    chart = charts.build_chart(strategy, make_bars(CLOSES), [])

    assert [(pane["key"], pane["name"]) for pane in chart["panes"]] == [
        ("stochastic", "Stochastic 3 2")
    ]
    assert [line["name"] for line in chart["panes"][0]["series"]] == ["%K", "%D"]
    assert [level["value"] for level in chart["panes"][0]["levels"]] == ["15", "85"]


def test_signal_markers_only_on_the_first_bar_of_each_run():
    bars = make_bars(CLOSES)
    seconds = [int(bar.timestamp.timestamp()) for bar in bars]

    chart = charts.build_chart(RSI_AND_MACD, bars, [])

    # Above 75 on bars 1-2 and 6-7, below 25 on bars 4-5 and 9: four runs, four markers.
    assert [(m["time"], m["side"]) for m in chart["markers"]] == [
        (seconds[1], "sell"),
        (seconds[4], "buy"),
        (seconds[6], "sell"),
        (seconds[9], "buy"),
    ]


def test_fills_are_marked_on_their_bars_with_qty_and_price_as_strings():
    bars = make_bars(CLOSES)
    seconds = [int(bar.timestamp.timestamp()) for bar in bars]
    fills = [
        Fill("buy", Decimal("10.000000000"), Decimal("100.2500"), bars[3].timestamp),
        Fill("sell", Decimal("0.5"), Decimal("101"), bars[5].timestamp + timedelta(seconds=30)),
        # After the last bar began: in the last bar.
        Fill("buy", Decimal("2"), Decimal("99.1"), bars[-1].timestamp + timedelta(minutes=5)),
        # Before the first bar: not on the chart.
        Fill("sell", Decimal("1"), Decimal("98"), bars[0].timestamp - timedelta(seconds=1)),
    ]

    chart = charts.build_chart(RSI_AND_MACD, bars, fills)

    assert chart["fills"] == [
        {"time": seconds[3], "side": "buy", "qty": "10", "price": "100.25"},
        {"time": seconds[5], "side": "sell", "qty": "0.5", "price": "101"},
        {"time": seconds[-1], "side": "buy", "qty": "2", "price": "99.1"},
    ]


def test_only_the_last_chart_bars_are_shown_the_rest_warm_up_the_indicators():
    bars = make_bars([100 + (i % 7) for i in range(charts.CHART_BARS + 20)])

    chart = charts.build_chart(RSI_AND_MACD, bars, [])

    assert len(chart["bars"]) == charts.CHART_BARS
    first = chart["bars"][0]["time"]
    rsi = chart["panes"][0]["series"][0]["points"]
    assert rsi[0]["time"] == first  # warmed up: a value on the first visible bar
    assert all(m["time"] >= first for m in chart["markers"])


def test_the_page_chart_reads_the_bots_fills_through_the_books(db):
    bot = BotFactory(strategy=RSI_AND_MACD.model_dump(mode="json"))
    bars = get_broker().get_bars([bot.symbol], bot.timeframe, 5)[bot.symbol]
    TradeFactory(bot=bot, qty=Decimal("3"), price=Decimal("101.5"), filled_at=bars[-2].timestamp)
    TradeFactory(
        bot=bot,
        side=Trade.Side.SELL,
        status=Trade.Status.CANCELED,
        qty=Decimal("3"),
        filled_qty=Decimal("1"),  # partly filled, then cancelled: still a fill
        price=Decimal("102"),
        filled_at=bars[-1].timestamp,
    )
    TradeFactory(bot=bot, status=Trade.Status.ACCEPTED)  # not filled: not marked
    # Filling as we speak: no filled_at yet (the broker sets it when complete), so on the bar of
    # its last update.
    TradeFactory(bot=bot, status=Trade.Status.PARTIALLY_FILLED, qty=Decimal("5"),
                 filled_qty=Decimal("2"), price=Decimal("103"), filled_at=None)  # fmt: skip
    TradeFactory(qty=Decimal("7"), filled_at=bars[-1].timestamp)  # another bot's

    chart = charts.price_chart(bot, RSI_AND_MACD)["chart"]

    assert chart["fills"] == [
        {"time": int(bars[-2].timestamp.timestamp()), "side": "buy", "qty": "3", "price": "101.5"},
        {"time": int(bars[-1].timestamp.timestamp()), "side": "sell", "qty": "1", "price": "102"},
        {"time": int(bars[-1].timestamp.timestamp()), "side": "buy", "qty": "2", "price": "103"},
    ]
    assert [pane["key"] for pane in chart["panes"]] == ["rsi", "macd"]


@pytest.fixture
def watching():
    """Makes a bot's group watched, as an open bot page's socket would."""
    layer = get_channel_layer()
    joined = []

    def watch(bot):
        group = live.bot_group(bot.pk)
        async_to_sync(layer.group_add)(group, "test.chart!watcher")
        joined.append(group)

    yield watch
    for group in joined:
        async_to_sync(layer.group_discard)(group, "test.chart!watcher")


def test_the_push_goes_to_watched_bots_only_and_uses_the_given_bars(db, monkeypatch, watching):
    sent = []
    monkeypatch.setattr(live, "_deliver", sent.extend)
    shown, unseen = BotFactory(), BotFactory()
    watching(shown)
    bars = {"AAPL": make_bars(CLOSES)}
    TradeFactory(bot=shown, price=Decimal("10.5"), filled_at=bars["AAPL"][4].timestamp)
    monkeypatch.setattr(PaperBroker, "get_bars", lambda *a, **k: pytest.fail("fetched bars"))

    with live.coalesced():
        charts.push_charts([(shown, RSI_AND_MACD), (unseen, RSI_AND_MACD)], bars)
        assert sent == []  # nothing before the block ends

    assert [group for group, _ in sent] == [live.bot_group(shown.pk)]
    html = sent[0][1]["html"]
    assert html.startswith('<div id="bot-chart-source" hx-swap-oob="true">')
    assert '<script id="bot-chart-data" type="application/json">' in html
    filled = int(bars["AAPL"][4].timestamp.timestamp())
    assert f'"fills": [{{"time": {filled}, "side": "buy", "qty": "10", "price": "10.5"}}]' in html
    assert '"panes": [{"key": "rsi"' in html


def test_watched_groups_asks_the_channel_layer(watching):
    bot = BotFactory.build()
    other = BotFactory.build()
    watching(bot)

    assert live.watched_groups([live.bot_group(bot.pk), live.bot_group(other.pk)]) == {
        live.bot_group(bot.pk)
    }
