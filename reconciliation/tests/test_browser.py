"""The operator presses "Check Sync" on the dashboard and reads what differs."""

from decimal import Decimal

import pytest

from bots.tests.factories import BotFactory
from reconciliation import services
from reconciliation.models import ReconciliationRun
from tradebots.broker import OrderSide, get_broker
from trading import orders

pytestmark = pytest.mark.browser


def test_check_sync_shows_what_differs(transactional_db, user, daphne_url, page, log_in, elsewhere):
    def books():
        bot = BotFactory(name="Apple RSI")
        orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal", verify=False)
        missing = orders.generate_client_order_id(bot)
        get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, missing)
        return missing

    missing = elsewhere(books)
    log_in(page, daphne_url, user)
    page.wait_for_selector("#live-indicator.live-online")
    assert "Not checked yet." in page.inner_text("[data-testid=last-run-summary]")

    page.click("#sync-panel button:has-text('Check Sync')")

    summary = page.wait_for_selector("#sync-result [data-testid=sync-summary]")
    assert summary.inner_text().startswith("1 order synced, 1 discrepancy found")
    row = page.locator("#sync-result tr.discrepancy")
    assert row.count() == 1
    assert row.get_attribute("data-kind") == "missing_in_db"
    assert missing in row.inner_text() and "Apple RSI" in row.inner_text()
    assert "we have no Trade for it" in row.inner_text()
    assert "1 order synced, 1 discrepancy found" in page.inner_text(
        "[data-testid=last-run-summary]"
    )
    assert page.inner_text("[data-testid=last-run-outcome]") == "Discrepancies"
    assert page.locator("#sync-result button, #sync-result form").count() == 0  # display-only

    # A scheduled run elsewhere: the open dashboard's last-run line follows, with a warning.
    elsewhere(
        lambda: services.reconcile(
            trigger=ReconciliationRun.Trigger.SCHEDULE, started_by="schedule"
        )
    )
    page.wait_for_selector("#sync-last-run:has-text('scheduled')")
    toast = page.wait_for_selector(".toast-warning:has-text('1 new discrepancy')")
    # It links to the run's report, and stays until dismissed (other toasts go by themselves).
    run = ReconciliationRun.objects.filter(trigger=ReconciliationRun.Trigger.SCHEDULE).get()
    assert toast.query_selector("a").get_attribute("href") == f"/reconciliation/runs/{run.pk}/"
    page.wait_for_timeout(6500)
    assert toast.is_visible()
    toast.query_selector("[data-dismiss-toast]").click()
    page.wait_for_selector(".toast-warning", state="detached")
    # The report says what each kind means and what to do.
    page.goto(f"{daphne_url}/reconciliation/runs/{run.pk}/")
    assert "What to do:" in page.inner_text(".kind-guide")
