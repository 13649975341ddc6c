from decimal import Decimal

import pytest

from trading.broker.paper import exchange


@pytest.fixture
def buying_power(db, settings):
    """The paper exchange's buying power (its cash); set it before the account is first used."""

    def set_buying_power(amount: str) -> Decimal:
        account = exchange.get_account()
        account.cash = Decimal(amount)
        account.save()
        return account.cash

    return set_buying_power


def bot_form_data(**overrides) -> dict:
    """What the bot form posts for a valid RSI bot."""
    data = {
        "name": "Apple RSI",
        "symbol": "AAPL",
        "capital": "1000",
        "timeframe": "5Min",
        "rsi_enabled": "on",
        "rsi_period": "14",
        "rsi_oversold": "30",
        "rsi_overbought": "70",
        "buy_rule": "rsi",
        "sell_rule": "rsi",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
