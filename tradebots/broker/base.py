"""The gateway's vocabulary: plain dataclasses (Decimal money, UTC datetimes), its errors, and the
interface both brokers implement. Nothing here knows about our models or about alpaca-py."""

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

PAPER_EXCHANGE_LABEL = "Paper exchange (simulated)"
ALPACA_PAPER_LABEL = "Alpaca paper trading"
ALPACA_LIVE_LABEL = "Alpaca LIVE trading"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderQueryStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


class TimeFrame(StrEnum):
    """Bar sizes, named as Alpaca names them."""

    MIN_1 = "1Min"
    MIN_5 = "5Min"
    MIN_15 = "15Min"
    HOUR_1 = "1Hour"
    DAY_1 = "1Day"

    @property
    def seconds(self) -> int:
        return {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}[self.value]


# Alpaca's order statuses (https://docs.alpaca.markets/docs/orders-at-alpaca): those after which
# nothing more happens to the order.
FINAL_ORDER_STATUSES = frozenset(
    {"filled", "canceled", "expired", "rejected", "replaced", "stopped"}
)


@dataclass(frozen=True)
class Account:
    account_number: str
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    portfolio_value: Decimal
    status: str
    trading_blocked: bool
    currency: str = "USD"


@dataclass(frozen=True)
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    status: str
    submitted_at: datetime | None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    limit_price: Decimal | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_ORDER_STATUSES


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    qty: Decimal  # negative for a short position
    avg_entry_price: Decimal
    current_price: Decimal | None
    market_value: Decimal | None
    unrealized_pl: Decimal | None


@dataclass(frozen=True)
class Clock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str
    tradable: bool
    fractionable: bool


@dataclass(frozen=True)
class Bar:
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class BrokerError(Exception):
    """Anything the broker answered or failed with; the message is safe to show the operator."""


class BrokerUnavailable(BrokerError):
    """Network failure, timeout or 5xx: the outcome of the call is unknown."""


class RateLimited(BrokerUnavailable):
    """The broker kept answering 429 after the client's own retries."""


class BudgetExhausted(BrokerUnavailable):
    """No slot in the shared broker request budget within the allowed wait. Raised before the
    request left, so the broker never saw it: an order that meets this was certainly not sent."""


class NotFound(BrokerError):
    pass


class OrderRejected(BrokerError):
    """The broker definitively refused the order; retrying the same order will not help."""


class InsufficientBuyingPower(OrderRejected):
    pass


class InsufficientQuantity(OrderRejected):
    """A sell for more than the position holds (the exchanges here do not sell short)."""


class DuplicateClientOrderId(OrderRejected):
    """An order with this client_order_id exists already (the gateway resolves this itself)."""


class BrokerAuthRejected(OrderRejected):
    """The broker refused our API keys (HTTP 401 or 403) before looking at the request: a
    configuration problem, not an outage, and retrying will not help until the keys are fixed.
    An OrderRejected, because an order met with it was certainly not placed."""

    def __init__(self, status: int):
        super().__init__(f"Alpaca rejected the API keys (HTTP {status})")
        self.status = status


def describe_failure(error: BrokerError) -> str:
    """A failed broker call as the operator is told of it: rejected keys as such, anything else
    as the broker being unreachable."""
    if isinstance(error, BrokerAuthRejected):
        return str(error)
    return f"Broker unreachable: {error}"


class Broker(abc.ABC):
    """What the app may ask of a broker. Implementations: AlpacaBroker and PaperBroker."""

    label: str

    @abc.abstractmethod
    def get_account(self) -> Account: ...

    @abc.abstractmethod
    def submit_market_order(
        self, symbol: str, qty: Decimal, side: OrderSide, client_order_id: str
    ) -> Order: ...

    @abc.abstractmethod
    def submit_limit_order(
        self,
        symbol: str,
        qty: Decimal,
        side: OrderSide,
        limit_price: Decimal,
        client_order_id: str,
    ) -> Order: ...

    @abc.abstractmethod
    def get_order(self, order_id: str) -> Order: ...

    @abc.abstractmethod
    def get_order_by_client_order_id(self, client_order_id: str) -> Order: ...

    @abc.abstractmethod
    def cancel_order(self, order_id: str) -> None:
        """Ask the broker to cancel an open order; OrderRejected when it is no longer open.
        Cancellation may complete later (pending_cancel): read the order to know."""

    @abc.abstractmethod
    def iter_orders(
        self,
        status: OrderQueryStatus = OrderQueryStatus.ALL,
        after: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Order]:
        """Orders submitted strictly between ``after`` and ``until``, newest first, all pages."""

    @abc.abstractmethod
    def list_positions(self) -> list[BrokerPosition]: ...

    @abc.abstractmethod
    def close_position(
        self, symbol: str, client_order_id: str, qty: Decimal | None = None
    ) -> Order:
        """Close ``qty`` (default: all) of the position at market, as an order we can trace."""

    @abc.abstractmethod
    def get_clock(self) -> Clock: ...

    @abc.abstractmethod
    def get_asset(self, symbol: str) -> Asset: ...

    @abc.abstractmethod
    def get_bars(
        self, symbols: list[str], timeframe: TimeFrame, limit: int
    ) -> dict[str, list[Bar]]:
        """The last ``limit`` bars of each symbol, oldest first, in one broker call."""

    @abc.abstractmethod
    def get_bars_between(
        self, symbol: str, timeframe: TimeFrame, start: datetime, end: datetime
    ) -> list[Bar]:
        """The symbol's bars that opened at or after ``start`` and before ``end``, oldest first,
        however many requests that takes. Bars still forming are the broker's business: callers
        that store bars ask only up to a bar before now."""

    @abc.abstractmethod
    def get_latest_prices(self, symbols: list[str]) -> dict[str, Decimal]: ...
