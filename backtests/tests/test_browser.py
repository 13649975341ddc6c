"""A backtest in a real browser: from a bot's page to its result, the progress bar pushed by a
real Celery worker over the page's WebSocket until the equity chart draws."""

from decimal import Decimal

import pytest

from backtests.models import Backtest
from backtests.tests.conftest import END, START
from bots.tests.factories import BotFactory

pytestmark = pytest.mark.browser


def test_backtest_this_bot_shows_progress_then_the_equity_chart(
    transactional_db, user, daphne_url, page, log_in, celery_worker, wait_until_watching
):
    bot = BotFactory(name="Researched", symbol="AAPL", capital=Decimal("10000"),
                     stop_loss_pct=Decimal("2"))  # fmt: skip
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, daphne_url, user)

    page.goto(f"{daphne_url}/bots/{bot.pk}/")
    page.get_by_role("link", name="Backtest this bot").click()
    page.wait_for_url("**/backtests/new/**")
    assert page.get_by_label("Name").input_value() == "Researched backtest"
    page.get_by_label("From").fill(START.date().isoformat())
    page.get_by_label("To (inclusive)").fill(END.date().isoformat())
    page.get_by_role("button", name="Run backtest").click()

    page.wait_for_url("**/backtests/*/")
    backtest = Backtest.objects.get()
    assert backtest.bot == bot
    # The page shows a progress bar (or, if the worker was quicker, already the result) and
    # watches the run's group; the pushed bar then loads the result into the page.
    page.wait_for_selector("#backtest-progress")
    page.wait_for_selector('#backtest-progress[data-status="done"]', timeout=30_000)
    page.wait_for_selector("[data-equity-chart][data-chart-ready]", timeout=15_000)
    chart = page.locator("[data-equity-chart]")
    assert int(chart.get_attribute("data-chart-ready")) > 100
    assert chart.locator("canvas").count() >= 2  # equity and its drawdown pane
    assert page.locator('[data-metric="total_return_pct"] dd').inner_text().endswith("%")
    page.wait_for_selector("[data-bot-chart][data-chart-ready]")
    assert page.locator("#backtest-trades tbody tr").count() >= 1
    assert errors == []


def test_the_progress_bar_moves_while_the_bars_are_fetched(
    transactional_db, user, daphne_url, page, log_in, wait_until_watching, elsewhere
):
    """Without a worker the run waits; pushing its progress moves the bar on the open page."""
    from backtests import services

    backtest = Backtest.objects.create(
        name="Pending", symbol="AAPL", timeframe="5Min", strategy={"indicators": {"rsi": {
            "enabled": True}}, "buy_rule": "rsi", "sell_rule": "rsi"},
        capital=Decimal("1000"), slippage_bps=Decimal("5"), start=START, end=END,
    )  # fmt: skip
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/backtests/{backtest.pk}/")
    wait_until_watching(page, f"backtest.{backtest.pk}")
    assert page.locator("#backtest-progress-bar").get_attribute("value") == "0"

    backtest.status, backtest.progress = Backtest.Status.FETCHING, 42
    elsewhere(lambda: services.push_progress(backtest))

    page.wait_for_selector('#backtest-progress-bar[value="42"]')
    assert "Fetching bars" in page.locator("#backtest-progress").inner_text()
