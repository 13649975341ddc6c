"""A trader creates a bot, is warned about capital inline, then starts and pauses it."""

import threading

import pytest
from django.db import connection

from bots.models import Bot

pytestmark = pytest.mark.browser


def test_create_start_and_pause_a_bot(
    transactional_db, user, buying_power, daphne_url, page, log_in
):
    buying_power("5000")
    log_in(page, daphne_url, user)

    page.click("nav >> text=Bots")
    page.click("text=New bot")
    assert "Available: $5,000.00" in page.inner_text("#hint-capital")

    page.fill("#id_name", "Apple swing")
    page.fill("#id_symbol", "aapl")
    page.fill("#id_capital", "9000")
    page.press("#id_capital", "Tab")
    error = page.wait_for_selector("#error-capital:has-text('exceeds the available')")
    assert "Capital $9,000.00 exceeds the available $5,000.00" in error.inner_text()

    page.fill("#id_capital", "1500")
    page.press("#id_capital", "Tab")
    page.wait_for_selector("#error-capital:empty", state="attached")
    page.click("button:has-text('Create bot')")

    page.wait_for_selector("h1:has-text('Apple swing')")
    page.wait_for_selector("#live-indicator.live-online")
    bot = Bot.objects.get(name="Apple swing")
    card = f"#bot-{bot.pk}"
    assert page.inner_text(f"{card} [data-testid=bot-status]") == "New"  # created, never started
    page.wait_for_selector("[data-bot-chart][data-chart-ready] canvas", state="attached")

    page.click(f"{card} button:has-text('Start')")
    page.wait_for_selector(f"{card} [data-testid=bot-status]:has-text('Running')")
    page.click(f"{card} button:has-text('Pause')")
    page.wait_for_selector(f"{card} [data-testid=bot-status]:has-text('Paused')")

    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    assert bot.capital == 1500
    assert page.locator("td:has-text('Running → Paused')").count() == 0  # history needs a reload
    page.reload()
    assert page.locator("td:has-text('Running → Paused')").count() == 1


def test_a_status_change_elsewhere_updates_an_open_page(
    transactional_db, user, buying_power, daphne_url, page, log_in
):
    from bots import services
    from bots.tests.factories import BotFactory

    buying_power("5000")
    bot = BotFactory(name="Watched")
    log_in(page, daphne_url, user)
    page.goto(daphne_url + "/bots/")
    page.wait_for_selector("#live-indicator.live-online")

    # As the engine would, from another thread: Playwright's event loop owns this one.
    def start_as_engine():
        services.start_bot(bot, "engine")
        connection.close()

    elsewhere = threading.Thread(target=start_as_engine)
    elsewhere.start()
    elsewhere.join()

    page.wait_for_selector(f"#bot-{bot.pk} [data-testid=bot-status]:has-text('Running')")
