"""AlpacaBroker: the gateway interface over alpaca-py (the only module that imports it)."""

import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame as AlpacaTimeFrame
from alpaca.data.timeframe import TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaOrderSide
from alpaca.trading.enums import QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from .base import (
    ALPACA_LIVE_LABEL,
    ALPACA_PAPER_LABEL,
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
)
from .budget import RequestBudget, current_priority

logger = logging.getLogger(__name__)

ORDER_PAGE_SIZE = 500  # Alpaca's maximum for GET /v2/orders
READ_ATTEMPTS = 3
SUBMIT_ATTEMPTS = 3

_TIMEFRAMES = {
    TimeFrame.MIN_1: AlpacaTimeFrame(1, TimeFrameUnit.Minute),
    TimeFrame.MIN_5: AlpacaTimeFrame(5, TimeFrameUnit.Minute),
    TimeFrame.MIN_15: AlpacaTimeFrame(15, TimeFrameUnit.Minute),
    TimeFrame.HOUR_1: AlpacaTimeFrame(1, TimeFrameUnit.Hour),
    TimeFrame.DAY_1: AlpacaTimeFrame(1, TimeFrameUnit.Day),
}


def to_decimal(value) -> Decimal | None:
    """Alpaca sends money as strings; a JSON number arrives as float and goes through its repr."""
    if value is None or value == "":
        return None
    return Decimal(value) if isinstance(value, str) else Decimal(repr(value))


class TimeoutSession(requests.Session):
    """Every HTTP request alpaca-py makes, its own retries included, passes through here.

    alpaca-py passes no timeout to requests, so a hung broker would hang the caller forever; and
    each request first takes a slot in the shared request budget, if there is one."""

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        budget: RequestBudget | None = None,
        budget_max_wait: float | None = None,
    ):
        super().__init__()
        self.default_timeout = (connect_timeout, read_timeout)
        self.budget = budget
        self.budget_max_wait = budget_max_wait
        self._local = threading.local()

    def sent_count(self) -> int:
        """Requests this thread has let go to the broker (for telling "nothing was sent")."""
        return getattr(self._local, "sent", 0)

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.default_timeout)
        slot = None
        if self.budget is not None:
            slot = self.budget.acquire(current_priority(), self.budget_max_wait)
        self._local.sent = self.sent_count() + 1
        try:
            return super().request(method, url, **kwargs)
        finally:
            if self.budget is not None:
                self.budget.sent(slot)


def _api_error_message(error: APIError) -> str:
    try:
        return str(error.message)
    except (ValueError, KeyError, TypeError):  # the body was not Alpaca's JSON (a proxy's HTML)
        return f"HTTP {error.status_code}"


def _api_error_code(error: APIError) -> int | None:
    try:
        return int(error.code)
    except (ValueError, KeyError, TypeError):
        return None


def translate_error(error: Exception, *, ordering: bool = False) -> BrokerError:
    """The gateway's error for what alpaca-py or requests raised."""
    if isinstance(error, requests.RequestException):
        return BrokerUnavailable(f"Alpaca unreachable: {type(error).__name__}")
    if not isinstance(error, APIError):
        return BrokerError(str(error))
    status = error.status_code
    # Keys it does not accept: 401 with code 40110000, or 403 with just {"message": "forbidden."};
    # its refusals of an order (buying power, quantity, day-trading rules) are 403s with a code.
    if status == 401 or (status == 403 and _api_error_code(error) is None):
        return BrokerAuthRejected(status)
    message = _api_error_message(error)
    if status == 429:
        return RateLimited(f"Alpaca rate limit: {message}")
    if status is None or status >= 500:
        return BrokerUnavailable(f"Alpaca error {status}: {message}")
    if status == 404:
        return NotFound(message)
    if ordering:
        lowered = message.lower()
        if status == 422 and "client_order_id" in lowered and "unique" in lowered:
            return DuplicateClientOrderId(message)
        if status == 403 and "buying power" in lowered:
            return InsufficientBuyingPower(message)
        if status == 403 and "insufficient qty" in lowered:
            return InsufficientQuantity(message)
        return OrderRejected(message)
    return BrokerError(f"Alpaca refused the request ({status}): {message}")


# An exhausted budget is not retried: the wait for a slot has already been spent.
_retryable_read_error = retry_if_exception(
    lambda error: isinstance(error, BrokerUnavailable) and not isinstance(error, BudgetExhausted)
)


class AlpacaBroker(Broker):
    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        base_url: str | None = None,
        data_url: str | None = None,
        data_feed: str = "iex",
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        retry_wait: float = 3.0,
        order_page_size: int = ORDER_PAGE_SIZE,
        read_attempts: int = READ_ATTEMPTS,
        submit_attempts: int = SUBMIT_ATTEMPTS,
        client_retries: int | None = None,
        budget: RequestBudget | None = None,
        budget_max_wait: float | None = None,
    ):
        """``client_retries``: alpaca-py's own retries of a 429/504 (None: its default, 3).
        ``budget``: the shared request budget every HTTP request takes a slot from (None: no
        limit); ``budget_max_wait``: how long a request may wait for a slot (None: the
        budget's own default)."""
        self.order_page_size = order_page_size
        self.read_attempts = read_attempts
        self.submit_attempts = submit_attempts
        self.budget = budget
        self.label = ALPACA_PAPER_LABEL if paper else ALPACA_LIVE_LABEL
        self.data_feed = DataFeed(data_feed)
        self.trading = TradingClient(api_key, secret_key, paper=paper, url_override=base_url)
        self.data = StockHistoricalDataClient(api_key, secret_key, url_override=data_url)
        for client in (self.trading, self.data):
            # alpaca-py has no public knobs for these; its RESTClient keeps them as attributes.
            client._session = TimeoutSession(
                connect_timeout, read_timeout, budget=budget, budget_max_wait=budget_max_wait
            )
            client._retry_wait = retry_wait
            if client_retries is not None:
                client._retry = client_retries

    def _call(self, function, *args, ordering: bool = False, **kwargs):
        try:
            return function(*args, **kwargs)
        except (APIError, requests.RequestException) as error:
            raise translate_error(error, ordering=ordering) from error

    def _read(self, function, *args, **kwargs):
        """A call that changes nothing at the broker, so it may be repeated after a failure."""
        for attempt in Retrying(
            retry=_retryable_read_error,
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_exponential(multiplier=0.25, max=2),
            reraise=True,
        ):
            with attempt:
                return self._call(function, *args, **kwargs)

    # --- account -------------------------------------------------------------------------------

    def get_account(self) -> Account:
        account = self._read(self.trading.get_account)
        return Account(
            account_number=account.account_number,
            equity=to_decimal(account.equity) or Decimal(0),
            cash=to_decimal(account.cash) or Decimal(0),
            buying_power=to_decimal(account.buying_power) or Decimal(0),
            portfolio_value=to_decimal(account.portfolio_value) or Decimal(0),
            status=str(account.status.value if account.status else ""),
            trading_blocked=bool(account.trading_blocked),
            currency=account.currency or "USD",
        )

    # --- orders --------------------------------------------------------------------------------

    def submit_market_order(self, symbol, qty, side, client_order_id) -> Order:
        request = MarketOrderRequest(
            symbol=symbol,
            qty=float(qty),  # alpaca-py's request model is float; qty has few digits
            side=AlpacaOrderSide(str(side)),
            time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id,
        )
        return self._submit(request)

    def submit_limit_order(self, symbol, qty, side, limit_price, client_order_id) -> Order:
        request = LimitOrderRequest(
            symbol=symbol,
            qty=float(qty),
            side=AlpacaOrderSide(str(side)),
            time_in_force=TimeInForce.DAY,
            limit_price=float(limit_price),
            client_order_id=client_order_id,
        )
        return self._submit(request)

    def _submit(self, request) -> Order:
        """Submit exactly one order for this client_order_id, whatever the network does.

        After an unknown outcome (timeout, 5xx, 429 after alpaca-py's own retries) the order is
        looked up by its client_order_id first; only when the broker has no such order is it sent
        again, under the same id, so the broker's uniqueness check forbids a second order.

        BudgetExhausted is raised as is only when this attempt sent nothing: then the order was
        certainly not sent and may be sent later under the same id. If alpaca-py's own retry of
        a 429/504 is what found no slot, an earlier POST went out and the outcome is unknown.
        """
        client_order_id = request.client_order_id
        session = self.trading._session
        unknown_outcome = None
        for attempt in range(1, self.submit_attempts + 1):
            sent_before = session.sent_count()
            try:
                return order_from_alpaca(
                    self._call(self.trading.submit_order, request, ordering=True)
                )
            except DuplicateClientOrderId:
                # An earlier attempt (ours, or alpaca-py's own retry of a 504) got through.
                try:
                    return self.get_order_by_client_order_id(client_order_id)
                except BudgetExhausted as error:
                    raise BrokerUnavailable(
                        f"Order {client_order_id} exists at the broker but could not be "
                        "fetched: no slot in the request budget"
                    ) from error
            except BudgetExhausted:
                if session.sent_count() == sent_before:
                    raise
                unknown_outcome = BrokerUnavailable(
                    f"Order {client_order_id} was sent, but alpaca-py's retry of it found no "
                    "slot in the request budget: outcome unknown"
                )
                logger.warning("%s; looking it up", unknown_outcome)
            except BrokerUnavailable as error:
                unknown_outcome = error
                logger.warning(
                    "Order %s: outcome unknown after attempt %d (%s); looking it up",
                    client_order_id, attempt, error,
                )  # fmt: skip
            try:
                return self.get_order_by_client_order_id(client_order_id)
            except NotFound:
                continue
            except (BrokerUnavailable, BrokerAuthRejected):
                break  # cannot tell whether it exists: resending could not be proven safe
        raise unknown_outcome

    def get_order(self, order_id: str) -> Order:
        return order_from_alpaca(self._read(self.trading.get_order_by_id, order_id))

    def get_order_by_client_order_id(self, client_order_id: str) -> Order:
        return order_from_alpaca(self._read(self.trading.get_order_by_client_id, client_order_id))

    def cancel_order(self, order_id: str) -> None:
        # Repeatable like a read: asking twice to cancel one order cancels it once.
        self._read(self.trading.cancel_order_by_id, order_id, ordering=True)

    def iter_orders(self, status=OrderQueryStatus.ALL, after=None, until=None):
        """Newest first, page by page backwards in time (alpaca-py does not paginate orders)."""
        seen: set[str] = set()
        cursor = until
        while True:
            page = self._read(
                self.trading.get_orders,
                GetOrdersRequest(
                    status=QueryOrderStatus(str(status)),
                    after=after,
                    until=cursor,
                    limit=self.order_page_size,
                    direction=Sort.DESC,
                ),
            )
            fresh = [order for order in page if str(order.id) not in seen]
            for order in fresh:
                seen.add(str(order.id))
                yield order_from_alpaca(order)
            if len(page) < self.order_page_size:
                return
            if not fresh:
                # A whole page shares one timestamp: Alpaca's time-based paging cannot go past it.
                logger.warning("More than %d orders share one timestamp", self.order_page_size)
                return
            # `until` is exclusive: step back to just after the oldest order seen, so orders
            # sharing its timestamp come again (and are skipped as seen) instead of being lost.
            cursor = min(order.submitted_at for order in page) + timedelta(microseconds=1)

    # --- positions -----------------------------------------------------------------------------

    def list_positions(self) -> list[BrokerPosition]:
        return [position_from_alpaca(p) for p in self._read(self.trading.get_all_positions)]

    def close_position(self, symbol, client_order_id, qty=None) -> Order:
        # Not DELETE /v2/positions/{symbol}: that endpoint takes no client_order_id, and every
        # order we send must carry one. A market order for the held quantity does the same.
        position = position_from_alpaca(self._read(self.trading.get_open_position, symbol))
        side = OrderSide.SELL if position.qty > 0 else OrderSide.BUY
        return self.submit_market_order(symbol, qty or abs(position.qty), side, client_order_id)

    # --- market --------------------------------------------------------------------------------

    def get_clock(self) -> Clock:
        clock = self._read(self.trading.get_clock)
        return Clock(
            timestamp=clock.timestamp,
            is_open=clock.is_open,
            next_open=clock.next_open,
            next_close=clock.next_close,
        )

    def get_asset(self, symbol: str) -> Asset:
        asset = self._read(self.trading.get_asset, symbol)
        return Asset(
            symbol=asset.symbol,
            name=asset.name or "",
            tradable=bool(asset.tradable) and str(asset.status.value) == "active",
            fractionable=bool(asset.fractionable),
        )

    def get_bars(self, symbols, timeframe, limit) -> dict[str, list[Bar]]:
        """One request series for all symbols. Alpaca's ``limit`` counts bars across all
        symbols, so the window is bounded by time instead and each symbol trimmed to ``limit``."""
        timeframe = TimeFrame(timeframe)
        end = datetime.now(UTC)
        barset = self._read(
            self.data.get_stock_bars,
            StockBarsRequest(
                symbol_or_symbols=list(symbols),
                timeframe=_TIMEFRAMES[timeframe],
                start=end - bar_lookback(timeframe, limit),
                end=end,
                feed=self.data_feed,
            ),
        )
        return {
            symbol: [bar_from_alpaca(bar) for bar in bars[-limit:]]
            for symbol, bars in barset.data.items()
        }

    def get_bars_between(self, symbol, timeframe, start, end) -> list[Bar]:
        """One request over the whole range; alpaca-py asks for pages of 10,000 bars (Alpaca's
        maximum) and follows next_page_token itself. Alpaca's ``end`` is inclusive, ours not."""
        barset = self._read(
            self.data.get_stock_bars,
            StockBarsRequest(
                symbol_or_symbols=symbol,
                timeframe=_TIMEFRAMES[TimeFrame(timeframe)],
                start=start,
                end=end,
                feed=self.data_feed,
            ),
        )
        return [
            bar_from_alpaca(bar)
            for bar in barset.data.get(symbol, [])
            if start <= bar.timestamp < end
        ]

    def get_latest_prices(self, symbols) -> dict[str, Decimal]:
        trades = self._read(
            self.data.get_stock_latest_trade,
            StockLatestTradeRequest(symbol_or_symbols=list(symbols), feed=self.data_feed),
        )
        return {symbol: to_decimal(trade.price) for symbol, trade in trades.items()}


def bar_lookback(timeframe: TimeFrame, limit: int) -> timedelta:
    """Calendar time that holds at least ``limit`` bars on trading days (nights and weekends
    have none): daily bars need ~7/5 of the span plus holidays; intraday ones twice the trading
    time plus a long weekend."""
    if timeframe == TimeFrame.DAY_1:
        return timedelta(days=limit * 7 // 5 + 7)
    return timedelta(seconds=timeframe.seconds * limit * 2) + timedelta(days=3)


def order_from_alpaca(order) -> Order:
    return Order(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=OrderSide(str(order.side.value)),
        type=OrderType(str(order.order_type.value if order.order_type else order.type.value)),
        qty=to_decimal(order.qty) or Decimal(0),
        filled_qty=to_decimal(order.filled_qty) or Decimal(0),
        filled_avg_price=to_decimal(order.filled_avg_price),
        status=str(order.status.value),
        submitted_at=order.submitted_at,
        filled_at=order.filled_at,
        canceled_at=order.canceled_at,
        limit_price=to_decimal(order.limit_price),
    )


def position_from_alpaca(position) -> BrokerPosition:
    qty = to_decimal(position.qty) or Decimal(0)
    if str(position.side.value) == "short" and qty > 0:
        qty = -qty
    return BrokerPosition(
        symbol=position.symbol,
        qty=qty,
        avg_entry_price=to_decimal(position.avg_entry_price) or Decimal(0),
        current_price=to_decimal(position.current_price),
        market_value=to_decimal(position.market_value),
        unrealized_pl=to_decimal(position.unrealized_pl),
    )


def bar_from_alpaca(bar) -> Bar:
    return Bar(
        timestamp=bar.timestamp,
        open=to_decimal(bar.open),
        high=to_decimal(bar.high),
        low=to_decimal(bar.low),
        close=to_decimal(bar.close),
        volume=to_decimal(bar.volume),
    )
