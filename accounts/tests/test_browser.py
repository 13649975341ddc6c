"""The operator sees the account, its six figures, and a position no bot owns."""

from decimal import Decimal

import pytest

from bots.tests.factories import BotFactory
from tradebots.broker import OrderSide
from tradebots.broker.paper import exchange
from tradebots.broker.paper.broker import PaperBroker
from trading.tests.factories import PositionFactory

pytestmark = pytest.mark.browser


def test_dashboard_figures_and_an_unmanaged_position(
    transactional_db, user, daphne_url, page, buying_power, log_in
):
    buying_power("20000")
    winner = BotFactory(capital=Decimal("5000"))
    PositionFactory(bot=winner, closed=True, realized_pnl=Decimal("321.09"))
    PaperBroker().submit_market_order("KO", Decimal("7"), OrderSide.BUY, "bought-by-hand")
    cash = exchange.get_account().cash

    log_in(page, daphne_url, user)

    summary = page.locator("#account-summary")
    assert f"Account #{exchange.get_account().account_number}" in summary.inner_text()
    for figure in ("equity", "cash", "buying-power", "realized-gains", "allocated", "available"):
        assert summary.locator(f"[data-testid={figure}]").inner_text().startswith("$")
    assert summary.locator("[data-testid=cash]").inner_text() == f"${cash:,.2f}"
    assert summary.locator("[data-testid=realized-gains]").inner_text() == "$321.09"
    assert summary.locator("[data-testid=allocated]").inner_text() == "$5,000.00"

    page.click("nav >> text=Positions")
    row = page.wait_for_selector("[data-testid=unmanaged-row]")
    assert "Unmanaged" in row.inner_text() and "KO" in row.inner_text()
