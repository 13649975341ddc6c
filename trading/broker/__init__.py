"""The broker gateway. Nothing outside this package talks to a broker or imports alpaca-py."""

from django.conf import settings

PAPER_EXCHANGE_LABEL = "Paper exchange (simulated)"


def alpaca_configured() -> bool:
    return bool(settings.ALPACA_API_KEY and settings.ALPACA_SECRET_KEY)


def broker_label() -> str:
    """How the configured broker is named wherever the account is shown."""
    if not alpaca_configured():
        return PAPER_EXCHANGE_LABEL
    return "Alpaca paper trading" if settings.ALPACA_PAPER else "Alpaca LIVE trading"
