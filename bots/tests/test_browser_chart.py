"""The bot page's chart in a real browser: oscillator panes, the bot's fills with a tooltip, and a
redraw on the engine's push that keeps the user's zoom."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from bots.models import Bot
from bots.tests.factories import BotFactory
from tradebots.broker.paper.broker import PaperBroker
from trading import engine
from trading.models import Trade
from trading.tests.factories import TradeFactory

pytestmark = pytest.mark.browser

# RSI and MACD drawn; the RSI rule never fires on the paper prices, so the engine only holds.
RSI_AND_MACD = {
    "indicators": {
        "rsi": {"enabled": True, "oversold": 1, "overbought": 99},
        "macd": {"enabled": True},
    },
    "buy_rule": "rsi",
    "sell_rule": "rsi",
}
CHART = "[data-bot-chart]"


def chart_state(page) -> dict:
    return page.evaluate(
        """(selector) => {
            const el = document.querySelector(selector);
            const state = el._botChart;
            const range = state.chart.timeScale().getVisibleLogicalRange();
            return {
                panes: state.chart.panes().map(
                    (pane) => pane.getHTMLElement().getBoundingClientRect().height
                ),
                canvases: el.querySelectorAll("canvas").length,
                arrows: state.markers.markers().filter((m) => m.shape.startsWith("arrow")).length,
                range: [range.from, range.to],
                bars: state.barCount,
            };
        }""",
        CHART,
    )


def test_panes_fills_and_the_live_redraw_of_an_rsi_and_macd_bot(
    transactional_db, user, buying_power, daphne_url, page, log_in, wait_until_watching
):
    buying_power("5000")
    bot = BotFactory(name="Charted", symbol="AAPL", status=Bot.Status.RUNNING,
                     strategy=RSI_AND_MACD)  # fmt: skip
    bars = PaperBroker().get_bars([bot.symbol], bot.timeframe, 30)[bot.symbol]
    TradeFactory(bot=bot, qty=Decimal("3"), price=Decimal("101.5"), filled_at=bars[-20].timestamp)
    TradeFactory(bot=bot, side=Trade.Side.SELL, qty=Decimal("3"), price=Decimal("104.25"),
                 filled_at=bars[-10].timestamp)  # fmt: skip
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, daphne_url, user)

    page.goto(f"{daphne_url}/bots/{bot.pk}/")
    wait_until_watching(page, f"bot.{bot.pk}")
    page.wait_for_selector(f'{CHART}[data-chart-draws="1"]', state="attached")

    chart = page.locator(CHART)
    assert chart.get_attribute("data-chart-panes") == "3"  # price, RSI, MACD
    assert chart.get_attribute("data-chart-fills") == "2"
    drawn = chart_state(page)
    assert len(drawn["panes"]) == 3 and all(height > 50 for height in drawn["panes"])
    assert drawn["canvases"] >= 3
    assert drawn["arrows"] == 2

    # Hovering the buy's bar shows its quantity and price.
    x = page.evaluate(
        "([selector, time]) => document.querySelector(selector)._botChart.chart"
        ".timeScale().timeToCoordinate(time)",
        [CHART, int(bars[-20].timestamp.timestamp())],
    )
    box = chart.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + 120)
    page.wait_for_selector(".chart-tooltip:has-text('Bought 3 @ $101.5')")

    # The user zooms in; then the engine ticks (from another thread, as a worker would) after
    # a third fill.
    page.evaluate(
        "(selector) => document.querySelector(selector)._botChart.chart.timeScale()"
        ".setVisibleLogicalRange({from: 100, to: 130})",
        CHART,
    )
    TradeFactory(bot=bot, qty=Decimal("2"), price=Decimal("99"), filled_at=bars[-1].timestamp)

    def tick_as_engine():
        engine.evaluate_batch(engine.Batch(bot.timeframe, (bot.symbol,)))
        connection.close()

    elsewhere = threading.Thread(target=tick_as_engine)
    elsewhere.start()
    elsewhere.join()

    page.wait_for_selector(f'{CHART}[data-chart-draws="2"]', state="attached")
    assert chart.get_attribute("data-chart-fills") == "3"
    redrawn = chart_state(page)
    assert redrawn["arrows"] == 3
    assert len(redrawn["panes"]) == 3
    # The same zoom, moved along by the bars that arrived meanwhile (none or one).
    shift = redrawn["range"][0] - 100
    assert shift in (0, 1) and redrawn["range"][1] - redrawn["range"][0] == pytest.approx(30)
    assert errors == []


def test_a_page_opened_without_a_chart_draws_it_when_the_engine_pushes_one(
    transactional_db, user, daphne_url, page, log_in, wait_until_watching
):
    broken = {"indicators": {"rsi": {"enabled": True, "period": 0}}, "buy_rule": "rsi"}
    bot = BotFactory(symbol="AAPL", status=Bot.Status.RUNNING, strategy=broken)
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/bots/{bot.pk}/")
    wait_until_watching(page, f"bot.{bot.pk}")
    page.wait_for_selector("#bot-chart-source:has-text('No chart: the strategy is invalid.')")
    assert page.locator(CHART).is_hidden()

    # Fixed elsewhere (the admin, the API); the engine's next tick brings the chart.
    Bot.objects.filter(pk=bot.pk).update(strategy=RSI_AND_MACD)

    def tick_as_engine():
        engine.evaluate_batch(engine.Batch(bot.timeframe, (bot.symbol,)))
        connection.close()

    elsewhere = threading.Thread(target=tick_as_engine)
    elsewhere.start()
    elsewhere.join()

    page.wait_for_selector(f'{CHART}[data-chart-draws="1"][data-chart-panes="3"]')
    assert page.locator("#bot-chart-source .form-error").count() == 0
    assert errors == []
