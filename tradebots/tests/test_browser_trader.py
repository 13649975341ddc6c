"""What a trader trips on, in headless Chromium against a real daphne (issue 15): each test
failed on the code before its fix."""

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bots.models import Bot
from bots.tests.factories import BotFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def buy_elsewhere(settings, buying_power, elsewhere):
    """A bot's buy placed by another actor (the engine, say) and filled at once on the paper
    exchange, with buying power to spare."""
    from trading.orders import place_order

    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    buying_power("100000")

    def buy(bot, reason="RSI buy signal", qty="2"):
        elsewhere(lambda: place_order(bot, "buy", Decimal(qty), reason))

    return buy


def test_a_bot_button_says_what_happened_even_when_the_pushed_card_arrived_first(
    transactional_db, user, buying_power, daphne_url, page, log_in, wait_until_watching
):
    buying_power("5000")
    bot = BotFactory(name="Pushed first", status=Bot.Status.RUNNING)
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/bots/")
    wait_until_watching(page, "bots")
    card = f"#bot-{bot.pk}"

    # Hold the answer back until the live push has replaced the card (and the clicked button).
    def answer_after_the_push(route):
        response = route.fetch()
        page.wait_for_selector(f"{card} [data-testid=bot-status]:has-text('Paused')")
        route.fulfill(response=response)

    page.route("**/pause/", answer_after_the_push)
    page.click(f"{card} button:has-text('Pause')")

    toast = page.wait_for_selector(".toast")
    assert toast.inner_text() == "Bot 'Pushed first' is paused."
    assert page.locator(f"{card} button:has-text('Start')").is_visible()


def test_the_kill_switch_is_there_before_the_first_position_and_confirms_fresh_counts(
    transactional_db, user, daphne_url, page, log_in, wait_until_watching, buy_elsewhere
):
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/trading/positions/")
    wait_until_watching(page, "open-positions")
    bot = BotFactory(name="Late", symbol="AAPL", status=Bot.Status.RUNNING)
    buy_elsewhere(bot)
    page.wait_for_selector("#open-positions .position-row")

    page.click("button.kill-switch")
    page.wait_for_selector("#emergency-stop[open] #emergency-stop-title")

    assert page.inner_text("#emergency-stop-title") == (
        "Sell all 1 open position at market and pause all 1 running bot?"
    )
    # Enter alone must not sell everything: the focus is on Cancel.
    assert page.evaluate("document.activeElement.textContent") == "Cancel"
    page.keyboard.press("Enter")
    assert not page.locator("#emergency-stop").evaluate("dialog => dialog.open")
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.RUNNING


def test_the_sell_dialog_focuses_cancel(
    transactional_db, user, daphne_url, page, log_in, buy_elsewhere
):
    from trading.models import Position

    bot = BotFactory(name="Holder", symbol="AAPL", status=Bot.Status.RUNNING)
    log_in(page, daphne_url, user)
    buy_elsewhere(bot)
    page.goto(f"{daphne_url}/trading/positions/")

    page.click(".position-row button:has-text('SELL')")

    assert page.evaluate("document.activeElement.textContent") == "Cancel"
    page.keyboard.press("Enter")
    assert Position.objects.filter(bot=bot, is_open=True).exists()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_positions_actions_fit_on_a_laptop_and_a_phone(
    transactional_db, user, daphne_url, page, log_in, width, buy_elsewhere
):
    from trading.models import Position

    bot = BotFactory(
        name="A bot with a rather long descriptive name", symbol="AAPL", status=Bot.Status.RUNNING
    )
    buy_elsewhere(bot, "Majority vote buy signal")
    Position.objects.filter(bot=bot).update(
        stop_loss_price=Decimal("1234.56"), take_profit_price=Decimal("2345.67")
    )
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/trading/positions/")

    sell = page.locator(".position-row button:has-text('SELL')")
    box = sell.bounding_box()
    scroller = page.locator(".table-scroll").first.bounding_box()
    assert sell.evaluate("button => button.scrollWidth <= button.clientWidth")
    assert (
        box["x"] >= scroller["x"] and box["x"] + box["width"] <= scroller["x"] + scroller["width"]
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_page_whose_server_went_away_says_so_and_so_does_a_click(
    transactional_db, user, daphne_url, page, log_in, start_daphne
):
    with start_daphne() as own_server:
        log_in(page, own_server, user)
        page.wait_for_selector("#live-indicator.live-online")
        assert page.locator("#live-lost").is_hidden()
    # The server is gone (its process ended with the block).

    page.wait_for_selector("#live-lost", state="visible")
    assert "The connection to the server is lost" in page.inner_text("#live-lost")
    page.click("#sync-panel button:has-text('Check Sync')")
    toast = page.wait_for_selector(".toast-error")
    assert toast.inner_text().startswith("The server could not be reached: nothing was done.")


def test_the_positions_totals_and_prices_stay_current_without_a_reload(
    transactional_db, user, daphne_url, page, log_in, wait_until_watching, elsewhere, buy_elsewhere
):
    from trading import live_updates

    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/trading/positions/")
    wait_until_watching(page, "open-positions")
    assert "Open positions 0" in page.inner_text("#positions-summary")
    bot = BotFactory(name="Arrives live", symbol="AAPL", status=Bot.Status.RUNNING)

    buy_elsewhere(bot)
    page.wait_for_selector("#positions-summary :text('Open positions 1')")
    elsewhere(live_updates.push_position_values)  # beat does this every few seconds

    page.wait_for_function(
        "document.querySelector('.position-row [data-testid=position-price]')"
        ".textContent.trim().startsWith('$')"
    )
    assert page.inner_text(".position-row [data-testid=unrealized-pnl]").startswith(("$", "-$"))
    assert "Market value $" in page.inner_text("#positions-summary")


def test_the_bots_capital_bar_follows_the_books_without_a_reload(
    transactional_db, user, buying_power, daphne_url, page, log_in, wait_until_watching, elsewhere
):
    from bots import services

    buying_power("10000")
    BotFactory(name="First", capital=Decimal("1000"))
    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/bots/")
    wait_until_watching(page, "bots")
    assert "Allocated to bots $1,000.00" in page.inner_text("#capital-summary")

    second = {"name": "Second", "symbol": "MSFT", "capital": Decimal("2500"), "timeframe": "1Min"}
    elsewhere(lambda: services.create_bot(second, "someone else"))

    page.wait_for_selector("#capital-summary :text('Allocated to bots $3,500.00')")
    assert "Available $6,500.00" in page.inner_text("#capital-summary")


def test_an_unmanaged_sell_takes_its_row_off_every_open_positions_page(
    transactional_db, user, buying_power, daphne_url, page, log_in, wait_until_watching
):
    from tradebots.broker import OrderSide, get_broker

    buying_power("100000")
    get_broker().submit_market_order("AAPL", Decimal("3"), OrderSide.BUY, "placed-by-hand")
    log_in(page, daphne_url, user)
    watcher = page.context.new_page()
    for tab in (page, watcher):
        tab.goto(f"{daphne_url}/trading/positions/")
        wait_until_watching(tab, "open-positions")
    row = "#unmanaged-aapl"
    assert watcher.is_visible(row)

    page.click(f"{row} button:has-text('SELL')")
    page.click("#sell-dialog button[type=submit]")

    page.wait_for_selector(".toast-success")
    for tab in (page, watcher):
        tab.wait_for_selector(row, state="detached")


def test_times_show_in_the_users_time_zone_with_utc_on_hover(
    transactional_db, user, daphne_url, page, log_in, buy_elsewhere
):
    from trading.models import Position

    bot = BotFactory(name="Zoned", symbol="AAPL", status=Bot.Status.RUNNING)
    buy_elsewhere(bot)
    opened_at = Position.objects.get(bot=bot).opened_at
    new_york = page.context.browser.new_context(timezone_id="America/New_York")
    tab = new_york.new_page()
    log_in(tab, daphne_url, user)
    tab.goto(f"{daphne_url}/trading/positions/")

    opened = tab.locator(".position-row [data-label=Opened] time")
    tab.wait_for_selector(".position-row [data-label=Opened] time[data-local]")
    local = opened_at.astimezone(ZoneInfo("America/New_York"))
    assert opened.inner_text() == f"{local:%Y-%m-%d %H:%M} {local:%Z}"  # EST or EDT
    assert opened.get_attribute("title") == f"{opened_at:%Y-%m-%d %H:%M:%S} UTC"
    new_york.close()


def test_the_account_value_and_realized_pnl_over_time_are_drawn(
    transactional_db, user, daphne_url, page, log_in
):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import EquitySnapshot
    from trading.tests.factories import PositionFactory

    for minutes, equity in ((10, "100000"), (5, "100250.50")):
        EquitySnapshot.objects.create(
            taken_at=timezone.now() - timedelta(minutes=minutes), equity=Decimal(equity), cash=0
        )
    bot = BotFactory(name="Charted")
    for pnl in ("12.50", "-3.00"):
        PositionFactory(bot=bot, closed=True, realized_pnl=Decimal(pnl))
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    log_in(page, daphne_url, user)

    account_pnl = "[data-pnl-chart='account-pnl-data']"
    page.wait_for_selector(f"{account_pnl}[data-chart-ready] canvas", state="attached")
    assert page.get_attribute(account_pnl, "data-chart-ready") in ("1", "2")
    equity = "[data-pnl-chart='account-equity-data'][data-chart-kind=equity]"
    page.wait_for_selector(f"{equity}[data-chart-ready] canvas", state="attached")
    assert int(page.get_attribute(equity, "data-chart-ready")) >= 2
    page.goto(f"{daphne_url}/bots/{bot.pk}/")
    page.wait_for_selector("[data-pnl-chart][data-chart-ready] canvas", state="attached")
    assert errors == []


def test_a_redeclaration_counts_the_rows_pushed_in_since_the_page_loaded(
    transactional_db, user, daphne_url, page, log_in, wait_until_watching, elsewhere
):
    """After a reconnect the page declares again; a row pushed in meanwhile must still get its
    changes (here the re-declaration is forced, as a reconnect's htmx:wsOpen does)."""
    from trading import live_updates
    from trading.models import Trade
    from trading.tests.factories import TradeFactory

    log_in(page, daphne_url, user)
    page.goto(f"{daphne_url}/trading/trades/")
    wait_until_watching(page, "trades")
    trade = TradeFactory(status=Trade.Status.ACCEPTED, reason="Pushed in")
    elsewhere(lambda: live_updates.trade_changed(trade, created=True))
    page.wait_for_selector(f"#trade-{trade.pk}")

    declared = int(page.get_attribute("#live-watching", "data-declarations"))
    page.evaluate("htmx.trigger(document.body, 'htmx:wsOpen')")
    page.wait_for_selector(f'#live-watching[data-declarations="{declared + 1}"]', state="attached")
    Trade.objects.filter(pk=trade.pk).update(status=Trade.Status.FILLED)
    elsewhere(lambda: live_updates.trade_changed(Trade.objects.get(pk=trade.pk), created=False))

    page.wait_for_selector(f"#trade-{trade.pk} [data-testid=trade-status]:has-text('Filled')")


def test_a_new_bot_says_new_a_busy_bots_delete_says_why_and_a_404_is_ours(
    transactional_db, user, daphne_url, page, log_in
):
    fresh = BotFactory(name="Fresh")
    busy = BotFactory(name="Busy", status=Bot.Status.RUNNING)
    log_in(page, daphne_url, user)

    page.goto(f"{daphne_url}/bots/")
    assert page.inner_text(f"#bot-{fresh.pk} [data-testid=bot-status]") == "New"
    page.goto(f"{daphne_url}/bots/{busy.pk}/")
    assert page.locator("a:has-text('Delete')").count() == 0
    assert page.inner_text("[data-testid=deletion-refusal]") == "Stop 'Busy' before deleting it."
    page.goto(f"{daphne_url}/bots/not-a-bot/")
    assert page.inner_text("h1") == "Not found"
    assert page.locator("nav.nav a:has-text('Bots')").is_visible()
