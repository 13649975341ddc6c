"""The emergency SELL seen from two open pages, and the kill switch, in headless Chromium."""

from decimal import Decimal

import pytest

from bots.models import Bot
from bots.tests.factories import BotFactory
from trading.models import Position

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 2000


@pytest.fixture
def holding(transactional_db, settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    from trading.orders import place_order

    def open_position(name, symbol, qty="5"):
        bot = BotFactory(name=name, symbol=symbol, status=Bot.Status.RUNNING)
        place_order(bot, "buy", Decimal(qty), "RSI buy signal")
        return bot, Position.objects.get(bot=bot, is_open=True)

    return open_position


def test_sell_on_one_page_updates_the_others_without_reload(
    user, daphne_url, page, log_in, holding, wait_until_watching
):
    bot, position = holding("Apple swing", "AAPL")
    log_in(page, daphne_url, user)
    watcher = page.context.new_page()
    bots_page = page.context.new_page()
    watcher.goto(daphne_url + "/trading/positions/")
    bots_page.goto(daphne_url + "/bots/")
    wait_until_watching(watcher, "open-positions", "closed-positions")
    wait_until_watching(bots_page, "bots")
    page.goto(daphne_url + "/trading/positions/")
    row = f"#position-{position.pk}"
    assert watcher.is_visible(row)

    page.click(f"{row} button:has-text('SELL')")
    dialog = page.locator("#sell-dialog")
    assert dialog.is_visible()
    assert dialog.inner_text().startswith(
        "Sell all 5 shares of AAPL at market price? Bot 'Apple swing' will be paused."
    )
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert Position.objects.get(pk=position.pk).is_open

    page.click(f"{row} button:has-text('SELL')")
    page.click("#sell-dialog button:has-text('Sell & Pause Bot')")

    toast = page.wait_for_selector(".toast-success")
    assert "Position closed. Bot 'Apple swing' has been paused." in toast.inner_text()
    watcher.wait_for_selector(row, state="detached", timeout=LIVE_WITHIN_MS)
    bots_page.wait_for_selector(
        f"#bot-{bot.pk} [data-testid=bot-status]:has-text('Paused')", timeout=LIVE_WITHIN_MS
    )
    assert bots_page.inner_text(f"#bot-{bot.pk}").count("Flat") == 1
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED


def test_the_kill_switch_end_to_end(user, daphne_url, page, log_in, holding):
    holding("One", "AAPL")
    holding("Two", "MSFT")
    log_in(page, daphne_url, user)
    page.goto(daphne_url + "/trading/positions/")

    page.click("button.kill-switch")
    dialog = page.locator("#emergency-stop")
    page.wait_for_selector("#emergency-stop[open] #emergency-stop-title")
    assert "Sell all 2 open positions at market and pause all 2 running bots?" in (
        dialog.inner_text()
    )
    dialog.locator("button:has-text('Sell all & pause all')").click()

    toast = page.wait_for_selector(".toast-success")
    assert "Sold 2 position(s), paused 2 bot(s)." in toast.inner_text()
    page.wait_for_selector("#open-positions .position-row", state="detached")
    assert not Position.objects.filter(is_open=True).exists()
    assert not Bot.objects.filter(status=Bot.Status.RUNNING).exists()
