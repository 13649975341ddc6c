"""Roles and sessions as a browser meets them: real daphne, real Redis, headless Chromium."""

import threading

import pytest
from django.db import connection

from accounts.roles import VIEWER, set_role
from bots import services
from bots.models import Bot
from bots.tests.factories import BotFactory
from tradebots.permissions import REFUSED_MESSAGE

pytestmark = pytest.mark.browser


def test_a_refused_action_says_why_in_a_toast(
    transactional_db, user, buying_power, daphne_url, page, log_in
):
    buying_power("5000")
    bot = BotFactory(status=Bot.Status.RUNNING)
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/bots/")
    card = f"#bot-{bot.pk}"
    page.wait_for_selector(f"{card} button:has-text('Pause')")

    set_role(user, VIEWER)  # an administrator takes the role away while the page is open
    page.click(f"{card} button:has-text('Pause')")

    toast = page.wait_for_selector(".toast-error")
    assert toast.inner_text() == REFUSED_MESSAGE
    assert page.inner_text(f"{card} [data-testid=bot-status]") == "Running"
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING


def test_a_viewer_sees_pushed_cards_without_their_buttons(
    transactional_db, viewer, buying_power, daphne_url, page, log_in, wait_until_watching
):
    buying_power("5000")
    bot = BotFactory(status=Bot.Status.RUNNING)
    log_in(page, daphne_url, viewer)
    page.goto(f"{daphne_url}/bots/")
    wait_until_watching(page, "bots")
    card = f"#bot-{bot.pk}"
    assert page.locator(f"{card} button").count() == 0
    assert page.locator("text=New bot").count() == 0

    # A trader elsewhere, from another thread (Playwright's event loop owns this one).
    def pause_elsewhere():
        services.pause_bot(bot, "a trader elsewhere")  # pushed to every open page
        connection.close()

    elsewhere = threading.Thread(target=pause_elsewhere)
    elsewhere.start()
    elsewhere.join()

    page.wait_for_selector(f"{card} [data-testid=bot-status]:has-text('Paused')")
    start = page.locator(f"{card} button:has-text('Start')")
    assert start.count() == 1 and start.is_hidden()


def test_logging_out_in_another_tab_takes_this_page_offline(
    transactional_db, user, daphne_url, page, log_in
):
    log_in(page, daphne_url, user)
    page.wait_for_selector("#live-indicator.live-online")
    other_tab = page.context.new_page()
    other_tab.goto(f"{daphne_url}/bots/")

    other_tab.click("button:has-text('Log out')")

    other_tab.wait_for_selector("h1:has-text('TradeBots')")  # the login page
    page.wait_for_selector("#live-indicator.live-offline")
    assert page.inner_text("#live-indicator") == "Offline"
