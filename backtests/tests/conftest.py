from datetime import UTC, datetime, timedelta

import pytest

from backtests import services
from backtests.schema import validate_backtest

# Paper bars are a pure function of time: a fixed range gives the same bars, hence the same
# trades, in every run of the suite.
START = datetime(2026, 10, 5, tzinfo=UTC)
END = START + timedelta(days=3)


def backtest_input(**overrides) -> dict:
    """A valid request: RSI on 5-minute AAPL paper bars over three days, with SL/TP."""
    document = {
        "name": "RSI test",
        "symbol": "AAPL",
        "capital": "10000",
        "timeframe": "5Min",
        "strategy": {
            "indicators": {
                "rsi": {"enabled": True, "period": 14, "oversold": 40, "overbought": 60}
            },
            "buy_rule": "rsi",
            "sell_rule": "rsi",
        },
        "stop_loss_pct": "2",
        "take_profit_pct": "3",
        "start": START.isoformat(),
        "end": END.isoformat(),
    }
    document.update(overrides)
    return {key: value for key, value in document.items() if value is not None}


def backtest_form_data(**overrides) -> dict:
    """What the backtest form posts for the same request."""
    data = {
        "name": "RSI test",
        "symbol": "AAPL",
        "capital": "10000",
        "timeframe": "5Min",
        "rsi_enabled": "on",
        "rsi_period": "14",
        "rsi_oversold": "40",
        "rsi_overbought": "60",
        "buy_rule": "rsi",
        "sell_rule": "rsi",
        "stop_loss_pct": "2",
        "take_profit_pct": "3",
        "start": START.date().isoformat(),
        "end": (END.date() - timedelta(days=1)).isoformat(),
        "commission_bps": "0",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def finished_backtest(db):
    """A backtest run to the end on the paper exchange's bars."""

    def run(**overrides):
        backtest = services.request_backtest(
            validate_backtest(backtest_input(**overrides)), enqueue=False
        )
        services.run_backtest(backtest.pk)
        backtest.refresh_from_db()
        return backtest

    return run


@pytest.fixture
def market_data(db, settings):
    """The fake Alpaca server with get_broker() pointed at it. Its asset and bar endpoints are
    pure functions of the paper market (no database), so a plain ``db`` test will do."""
    from trading.tests.fake_alpaca import API_KEY, SECRET_KEY, FakeAlpaca

    with FakeAlpaca() as fake:
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = API_KEY, SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.url
        settings.ALPACA_READ_TIMEOUT_SECONDS = 2
        settings.ALPACA_RETRY_WAIT_SECONDS = 0
        yield fake
