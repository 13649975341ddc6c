"""The broker gateway. Nothing outside this package talks to a broker or imports alpaca-py.

broker = get_broker()
broker.get_account().buying_power
"""

import threading

from django.conf import settings

from .base import (
    ALPACA_LIVE_LABEL,
    ALPACA_PAPER_LABEL,
    PAPER_EXCHANGE_LABEL,
    Account,
    Asset,
    Bar,
    Broker,
    BrokerError,
    BrokerPosition,
    BrokerUnavailable,
    Clock,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    InsufficientQuantity,
    NotFound,
    Order,
    OrderQueryStatus,
    OrderRejected,
    OrderSide,
    OrderType,
    RateLimited,
    TimeFrame,
)

__all__ = [
    "PAPER_EXCHANGE_LABEL",
    "Account",
    "Asset",
    "Bar",
    "Broker",
    "BrokerError",
    "BrokerPosition",
    "BrokerUnavailable",
    "Clock",
    "DuplicateClientOrderId",
    "InsufficientBuyingPower",
    "InsufficientQuantity",
    "NotFound",
    "Order",
    "OrderQueryStatus",
    "OrderRejected",
    "OrderSide",
    "OrderType",
    "RateLimited",
    "TimeFrame",
    "alpaca_configured",
    "broker_label",
    "get_broker",
]

_alpaca_brokers: dict[tuple, Broker] = {}
_alpaca_lock = threading.Lock()


def alpaca_configured() -> bool:
    return bool(settings.ALPACA_API_KEY and settings.ALPACA_SECRET_KEY)


def _alpaca_config() -> tuple:
    return (
        settings.ALPACA_API_KEY,
        settings.ALPACA_SECRET_KEY,
        settings.ALPACA_PAPER,
        settings.ALPACA_BASE_URL,
        settings.ALPACA_DATA_URL,
        settings.ALPACA_DATA_FEED,
        settings.ALPACA_CONNECT_TIMEOUT_SECONDS,
        settings.ALPACA_READ_TIMEOUT_SECONDS,
        settings.ALPACA_RETRY_WAIT_SECONDS,
    )


def get_broker() -> Broker:
    """The configured broker: Alpaca when keys are set, else the built-in paper exchange."""
    if not alpaca_configured():
        from .paper.broker import PaperBroker

        return PaperBroker()
    config = _alpaca_config()
    # One client per configuration and process keeps HTTP connections alive between calls.
    with _alpaca_lock:
        if config not in _alpaca_brokers:
            from .alpaca import AlpacaBroker

            key, secret, paper, base_url, data_url, feed, connect, read, retry_wait = config
            _alpaca_brokers[config] = AlpacaBroker(
                key,
                secret,
                paper=paper,
                base_url=base_url,
                data_url=data_url,
                data_feed=feed,
                connect_timeout=connect,
                read_timeout=read,
                retry_wait=retry_wait,
            )
        return _alpaca_brokers[config]


def broker_label() -> str:
    """How the configured broker is named wherever the account is shown."""
    if not alpaca_configured():
        return PAPER_EXCHANGE_LABEL
    return ALPACA_PAPER_LABEL if settings.ALPACA_PAPER else ALPACA_LIVE_LABEL


# --- until the request budget lands (placeholders with the final names) -----------------------
import contextlib  # noqa: E402
from enum import StrEnum  # noqa: E402


class BudgetExhausted(BrokerUnavailable):
    pass


class Priority(StrEnum):
    EXIT = "exit"
    ENTRY = "entry"


@contextlib.contextmanager
def request_priority(priority):
    yield


@contextlib.contextmanager
def interactive():
    yield
