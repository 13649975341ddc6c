"""Every page open at once through a sell, a bot change, a reconciliation and a page change of a
table, in headless Chromium against a real daphne: live updates reach the pages that show what
changed, and no page logs a console error (an out-of-band swap without a target is one)."""

from decimal import Decimal

import pytest

from bots import services as bot_services
from bots.models import Bot
from bots.tests.factories import BotFactory
from trading.models import Position, Trade
from trading.tests.factories import TradeFactory

pytestmark = pytest.mark.browser

OLDER_TRADES = 60  # more than a page of trades, so the table has a second page


@pytest.fixture
def books(transactional_db, buying_power, settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    from trading.orders import place_order

    buying_power("100000")
    quiet = BotFactory(name="Quiet", symbol="IBM", status=Bot.Status.PAUSED)
    TradeFactory.create_batch(OLDER_TRADES, bot=quiet)
    apple = BotFactory(name="Apple swing", symbol="AAPL", status=Bot.Status.RUNNING)
    place_order(apple, "buy", Decimal("5"), "RSI buy signal")
    microsoft = BotFactory(name="Microsoft trend", symbol="MSFT", status=Bot.Status.RUNNING)
    place_order(microsoft, "buy", Decimal("3"), "SMA crossover")
    return apple, microsoft, quiet


@pytest.fixture
def research(transactional_db):
    """Two finished backtests and a finished grid, run here as their tasks would run them."""
    from backtests import optimisation, services
    from backtests.schema import validate_backtest
    from backtests.tests.conftest import backtest_input

    runs = []
    for name, stop in (("Tight stop", "1"), ("Loose stop", "4")):
        run = services.request_backtest(
            validate_backtest(backtest_input(name=name, stop_loss_pct=stop)), enqueue=False
        )
        services.run_backtest(run.pk)
        runs.append(run)
    base = validate_backtest(backtest_input(name="Grid"))
    grid = optimisation.request_optimisation(
        optimisation.GridRequest(base, {"rsi.period": ["10", "14"]}, "sharpe", 70)
    )
    optimisation.start(grid.pk, optimisation.run_chunk)
    return runs, grid


def test_every_page_through_the_day_logs_no_console_error(
    admin_user, daphne_url, page, books, research, log_in, wait_until_watching, elsewhere
):
    apple, microsoft, quiet = books
    (tight, loose), grid = research
    position = Position.objects.get(bot=apple, is_open=True)
    errors = []

    def record_errors(opened):
        opened.on(
            "console",
            lambda message: (
                message.type == "error" and errors.append(f"{opened.url}: {message.text}")
            ),
        )
        opened.on("pageerror", lambda error: errors.append(f"{opened.url}: {error}"))

    page.context.on("page", record_errors)
    record_errors(page)
    log_in(page, daphne_url, admin_user)

    def open_tab(path, *groups):
        tab = page.context.new_page()
        tab.goto(daphne_url + path)
        if groups:
            wait_until_watching(tab, *groups)
        return tab

    dashboard = page
    wait_until_watching(dashboard, "dashboard")
    bots = open_tab("/bots/", "bots")
    apple_page = open_tab(f"/bots/{apple.pk}/", f"bot.{apple.pk}")
    trades = open_tab("/trading/trades/", "trades")
    sells = open_tab("/trading/trades/?side=sell", "trades")
    positions = open_tab("/trading/positions/", "open-positions", "closed-positions")
    runs = open_tab("/reconciliation/", "reconciliation")
    for path in (
        f"/bots/{apple.pk}/edit/",
        "/bots/new/",
        f"/trading/trades/{Trade.objects.first().pk}/",
        "/api/docs",
        "/admin/",
        "/backtests/",
        "/backtests/new/",
        f"/backtests/new/?bot={apple.pk}",
        "/backtests/optimise/",
        f"/backtests/{loose.pk}/?trade=2",
        f"/backtests/optimisations/{grid.pk}/",
        f"/backtests/compare/?id={tight.pk}&id={loose.pk}",
    ):
        open_tab(path)
    backtest = open_tab(f"/backtests/{tight.pk}/", f"backtest.{tight.pk}")
    backtest.wait_for_selector("[data-equity-chart][data-chart-ready]")
    backtest.wait_for_selector("[data-bot-chart][data-chart-ready]")

    # A sell from the positions page.
    positions.click(f"#position-{position.pk} button:has-text('SELL')")
    positions.click("#sell-dialog button:has-text('Sell & Pause Bot')")
    positions.wait_for_selector(".toast-success")
    positions.wait_for_selector(f"#position-{position.pk}", state="detached")
    positions.wait_for_selector(f"#closed-position-{position.pk}")
    sell = Trade.objects.get(position=position, side=Trade.Side.SELL)
    trades.wait_for_selector(f"#trade-{sell.pk} [data-testid=trade-status]:has-text('Filled')")
    bots.wait_for_selector(f"#bot-{apple.pk} [data-testid=bot-status]:has-text('Paused')")
    apple_page.wait_for_selector(f"#bot-{apple.pk} [data-testid=bot-status]:has-text('Paused')")
    assert sells.locator(f"#trade-{sell.pk}").count() == 0  # a filtered table takes no new rows

    # A bot change from the bots list.
    bots.click(f"#bot-{quiet.pk} button:has-text('Start')")
    bots.wait_for_selector(f"#bot-{quiet.pk} [data-testid=bot-status]:has-text('Running')")

    # A reconciliation from the dashboard.
    dashboard.click("#sync-panel button:has-text('Check Sync')")
    dashboard.wait_for_selector("#sync-result [data-testid=sync-summary]")
    dashboard.wait_for_selector("#sync-last-run [data-testid=last-run-outcome]")
    runs.wait_for_selector("#run-rows tr[id^=run-]")
    runs.click("#run-rows tr[id^=run-] a")
    runs.wait_for_selector("h1:has-text('Reconciliation run')")

    # The trades table's second page (htmx) declares its own rows: a change to one of the
    # trades it shows reaches it, a new trade does not.
    declarations = int(trades.get_attribute("#live-watching", "data-declarations"))
    trades.click("a[rel=next]")
    trades.wait_for_selector("a[rel=first]")  # the "← Newest" link of an older page
    oldest = Trade.objects.order_by("created_at", "id").first()
    trades.wait_for_selector(f"#trade-{oldest.pk}")
    trades.wait_for_selector(
        f'#live-watching[data-declarations="{declarations + 1}"]', state="attached"
    )
    elsewhere(lambda: bot_services.pause_bot(microsoft, "someone else"))
    bots.wait_for_selector(f"#bot-{microsoft.pk} [data-testid=bot-status]:has-text('Paused')")
    Trade.objects.filter(pk=oldest.pk).update(reason="Reviewed")

    def push_oldest():
        from trading import live_updates

        live_updates.trade_changed(Trade.objects.get(pk=oldest.pk), created=False)

    elsewhere(push_oldest)
    trades.wait_for_selector(f"#trade-{oldest.pk} .reason:has-text('Reviewed')")

    for tab in page.context.pages:
        tab.wait_for_timeout(200)  # anything still in flight lands (or logs) now
    assert errors == []
    # Our pages' titles stay plain text (the positions page's once held the sell dialog's HTML).
    titles = {
        tab.url.removeprefix(daphne_url): tab.title()
        for tab in page.context.pages
        if not tab.url.startswith((f"{daphne_url}/api/", f"{daphne_url}/admin/"))
    }
    assert [t for t in titles.values() if "<" in t or not t.endswith(" · TradeBots")] == [], titles
