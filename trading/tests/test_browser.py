"""The emergency SELL seen from two open pages, the kill switch, an older page of open positions
and the bot search box, in headless Chromium."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bots.models import Bot
from bots.tests.factories import BotFactory
from trading import live_updates
from trading.models import Position
from trading.tests.factories import PositionFactory, TradeFactory

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


def test_an_older_page_of_open_positions_takes_its_rows_changes_and_no_new_rows(
    user, daphne_url, page, log_in, transactional_db, wait_until_watching, elsewhere
):
    start = timezone.now() - timedelta(days=1)
    positions = [
        PositionFactory(opened_at=start + timedelta(minutes=n), entry_reason="RSI buy signal")
        for n in range(52)
    ]
    oldest = positions[0]
    log_in(page, daphne_url, user)
    page.goto(daphne_url + "/trading/positions/")
    wait_until_watching(page, "open-positions")
    assert page.locator("#open-positions .position-row").count() == 50
    declared = int(page.get_attribute("#live-watching", "data-declarations"))

    page.click("#open-positions-table a[rel=next]")

    page.wait_for_selector(f"#position-{oldest.pk}")
    page.wait_for_selector(f'#live-watching[data-declarations="{declared + 1}"]', state="attached")
    assert page.locator("#open-positions .position-row").count() == 2

    def change_the_oldest_and_open_a_new_one():
        Position.objects.filter(pk=oldest.pk).update(entry_reason="Reviewed")
        live_updates.position_changed(Position.objects.get(pk=oldest.pk))
        live_updates.position_changed(PositionFactory())

    elsewhere(change_the_oldest_and_open_a_new_one)

    page.wait_for_selector(f"#position-{oldest.pk} td:has-text('Reviewed')")
    assert page.locator("#open-positions .position-row").count() == 2  # nothing inserted


def test_the_bot_search_box_suggests_names_and_filters_the_trades(
    user, daphne_url, page, log_in, transactional_db
):
    apple, tesla = BotFactory(name="Apple RSI"), BotFactory(name="Tesla breakout")
    apple_trade, tesla_trade = TradeFactory(bot=apple), TradeFactory(bot=tesla)
    log_in(page, daphne_url, user)
    page.goto(daphne_url + "/trading/trades/")
    page.wait_for_selector(f"#trade-{tesla_trade.pk}")

    page.click("#id_bot_name")  # focusing it suggests the first names
    page.wait_for_selector("#bot-names option[value='Tesla breakout']", state="attached")
    page.keyboard.type("appl")

    page.wait_for_selector("#bot-names option[value='Tesla breakout']", state="detached")
    assert page.locator("#bot-names option").count() == 1
    assert page.get_attribute("#bot-names option", "value") == "Apple RSI"
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#trade-{tesla_trade.pk}", state="detached")
    assert page.is_visible(f"#trade-{apple_trade.pk}")
    assert "bot_name=appl" in page.url
