"""The broker gateway. Nothing outside this package talks to a broker or imports alpaca-py.

broker = get_broker()
broker.get_account().buying_power

    with request_priority(Priority.EXIT):   # may use the budget's exit reserve
        broker.submit_market_order(...)

    with interactive():                     # a page or API call: short timeout, no retries
        get_broker().get_account()
"""

import contextlib
import hashlib
import threading
from contextvars import ContextVar

from django.conf import settings

from .base import (
    ALPACA_LIVE_LABEL,
    ALPACA_PAPER_LABEL,
    PAPER_EXCHANGE_LABEL,
    Account,
    Asset,
    Bar,
    Broker,
    BrokerAuthRejected,
    BrokerError,
    BrokerPosition,
    BrokerUnavailable,
    BudgetExhausted,
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
    describe_failure,
)
from .budget import Priority, RequestBudget, current_priority, request_priority

__all__ = [
    "PAPER_EXCHANGE_LABEL",
    "Account",
    "Asset",
    "Bar",
    "Broker",
    "BrokerAuthRejected",
    "BrokerError",
    "BrokerPosition",
    "BrokerUnavailable",
    "BudgetExhausted",
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
    "Priority",
    "RateLimited",
    "RequestBudget",
    "TimeFrame",
    "alpaca_configured",
    "broker_label",
    "current_priority",
    "describe_failure",
    "get_broker",
    "interactive",
    "request_priority",
]

_alpaca_brokers: dict[tuple, Broker] = {}
_alpaca_lock = threading.Lock()
_interactive: ContextVar[bool] = ContextVar("broker_interactive", default=False)


@contextlib.contextmanager
def interactive():
    """Inside the block, get_broker() answers within a few seconds even when the broker hangs:
    for pages and API calls, which hand longer work to a task instead. Alpaca requests get
    ALPACA_INTERACTIVE_TIMEOUT_SECONDS, no retries (one order lookup after an unknown
    submit), and wait at most that long for a slot in the request budget."""
    token = _interactive.set(True)
    try:
        yield
    finally:
        _interactive.reset(token)


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
        settings.REDIS_URL,
        settings.BROKER_BUDGET_REQUESTS,
        settings.BROKER_BUDGET_WINDOW_SECONDS,
        settings.BROKER_BUDGET_EXIT_RESERVE,
        settings.BROKER_BUDGET_MAX_WAIT_SECONDS,
        settings.ALPACA_INTERACTIVE_TIMEOUT_SECONDS,
    )


def get_broker() -> Broker:
    """The configured broker: Alpaca when keys are set, else the built-in paper exchange (which
    has no request budget). Inside ``interactive()``, Alpaca's is set up for a quick answer."""
    if not alpaca_configured():
        from .paper.broker import PaperBroker

        return PaperBroker()
    config = (*_alpaca_config(), _interactive.get())
    # One client per configuration and process keeps HTTP connections alive between calls.
    with _alpaca_lock:
        if config not in _alpaca_brokers:
            _alpaca_brokers[config] = _new_alpaca_broker(*config)
        return _alpaca_brokers[config]


def budget_key(api_key: str, paper: bool, base_url: str | None) -> str:
    """Alpaca counts requests per account: one budget per key and endpoint (the key itself
    stays out of Redis)."""
    account = hashlib.sha256(f"{api_key}|{paper}|{base_url or ''}".encode()).hexdigest()[:16]
    return f"tradebots:broker-budget:{account}"


def _new_alpaca_broker(
    key, secret, paper, base_url, data_url, feed, connect, read, retry_wait,
    redis_url, budget_requests, budget_window, exit_reserve, max_wait, interactive_timeout,
    is_interactive,
) -> Broker:  # fmt: skip
    from .alpaca import AlpacaBroker

    budget = RequestBudget(
        redis_url,
        key=budget_key(key, paper, base_url),
        limit=budget_requests,
        window_seconds=budget_window,
        exit_reserve=exit_reserve,
        max_wait=max_wait,
    )
    options = {}
    if is_interactive:
        connect = min(connect, interactive_timeout)
        read = min(read, interactive_timeout)
        options = {
            "client_retries": 0,
            "read_attempts": 1,
            "submit_attempts": 1,  # plus the one look-up that follows an unknown outcome
            "budget_max_wait": min(max_wait, interactive_timeout),
        }
    return AlpacaBroker(
        key,
        secret,
        paper=paper,
        base_url=base_url,
        data_url=data_url,
        data_feed=feed,
        connect_timeout=connect,
        read_timeout=read,
        retry_wait=retry_wait,
        budget=budget,
        **options,
    )


def broker_label() -> str:
    """How the configured broker is named wherever the account is shown."""
    if not alpaca_configured():
        return PAPER_EXCHANGE_LABEL
    return ALPACA_PAPER_LABEL if settings.ALPACA_PAPER else ALPACA_LIVE_LABEL
