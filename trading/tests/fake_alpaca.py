"""A fake Alpaca for tests: a threaded HTTP server on 127.0.0.1 that speaks the parts of Alpaca's
Trading and Market Data REST API the gateway uses, with Alpaca's JSON shapes and error bodies,
backed by the paper exchange's core, plus switches that inject faults.

    with FakeAlpaca() as fake:
        broker = fake.broker()            # a real AlpacaBroker (alpaca-py) pointed at the fake
        fake.faults.accept_then_timeout = 1
"""

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from django.db import connections

from tradebots.broker.alpaca import AlpacaBroker
from tradebots.broker.base import (
    BrokerError,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    InsufficientQuantity,
    NotFound,
    OrderQueryStatus,
    OrderRejected,
    OrderSide,
    OrderType,
    TimeFrame,
)
from tradebots.broker.paper import exchange, market

API_KEY = "PKFAKEKEY0000000000"
SECRET_KEY = "fake-secret-for-tests-only"
MAX_BARS_PAGE = 10_000

# Alpaca's error codes, as its API documents them.
ERROR_BODIES = {
    401: {"code": 40110000, "message": "request is not authorized"},
    404: {"code": 40410000, "message": "resource not found"},
    429: {"code": 42910000, "message": "rate limit exceeded"},
    500: {"code": 50010000, "message": "internal server error occurred"},
}
# How Alpaca answers keys it does not accept: 401 with its code, or 403 with no code at all.
KEY_REJECTION_BODIES = {401: ERROR_BODIES[401], 403: {"message": "forbidden."}}


@dataclass
class InjectedFailure:
    status: int
    times: int
    method: str | None
    path: str | None
    body: object


@dataclass
class Faults:
    """Switches a test flips; each applies to the requests that arrive after it is set."""

    latency: float = 0.0  # seconds before every response
    accept_then_timeout: int = 0  # next N order POSTs: create the order, then never answer in time
    accept_then_504: int = 0  # next N order POSTs: create the order, then answer 504
    stall_seconds: float = 3.0
    reject_orders: list[tuple[int, str]] = field(default_factory=list)  # (status, message) each
    partial_fill_ratio: Decimal | None = None
    fill_price: Decimal | None = None
    failures: list[InjectedFailure] = field(default_factory=list)
    # (requests, seconds): like Alpaca, answer 429 to a request that makes more than that many
    # arrive within that many seconds (both ends included).
    rate_limit: tuple[int, float] | None = None
    # 401 or 403: answer every request as Alpaca answers API keys it does not accept.
    reject_keys: int | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None
    headers: dict[str, str]
    at: float = 0.0  # time.time() when the request arrived


def _money(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(Decimal(value).normalize(), "f")


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"asset:{symbol}"))


def order_json(order) -> dict:
    return {
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "created_at": _time(order.submitted_at),
        "updated_at": _time(order.updated_at),
        "submitted_at": _time(order.submitted_at),
        "filled_at": _time(order.filled_at),
        "expired_at": None,
        "canceled_at": _time(order.canceled_at),
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": _asset_id(order.symbol),
        "symbol": order.symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": _money(order.qty),
        "filled_qty": _money(order.filled_qty),
        "filled_avg_price": _money(order.filled_avg_price),
        "order_class": "",
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": "buy_to_open" if order.side == "buy" else "sell_to_close",
        "time_in_force": "day",
        "limit_price": _money(order.limit_price),
        "stop_price": None,
        "status": order.status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }


def account_json(account) -> dict:
    equity = exchange.equity(account)
    buying_power = exchange.buying_power(account)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, account.account_number)),
        "account_number": account.account_number,
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": _money(buying_power),
        "regt_buying_power": _money(buying_power),
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": _money(buying_power),
        "cash": _money(account.cash),
        "portfolio_value": _money(equity),
        "equity": _money(equity),
        "last_equity": _money(equity),
        "long_market_value": _money(equity - account.cash),
        "short_market_value": "0",
        "initial_margin": "0",
        "maintenance_margin": "0",
        "sma": "0",
        "multiplier": "1",
        "daytrade_count": 0,
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "shorting_enabled": False,
        "created_at": _time(account.created_at),
    }


def position_json(position, current_price: Decimal) -> dict:
    market_value = position.qty * current_price
    cost_basis = position.qty * position.avg_entry_price
    unrealized = market_value - cost_basis
    return {
        "asset_id": _asset_id(position.symbol),
        "symbol": position.symbol,
        "exchange": "NASDAQ",
        "asset_class": "us_equity",
        "asset_marginable": True,
        "avg_entry_price": _money(position.avg_entry_price),
        "qty": _money(position.qty),
        "qty_available": _money(position.qty),
        "side": "long",
        "market_value": _money(market_value),
        "cost_basis": _money(cost_basis),
        "unrealized_pl": _money(unrealized),
        "unrealized_plpc": _money((unrealized / cost_basis).quantize(Decimal("0.0001"))),
        "unrealized_intraday_pl": _money(unrealized),
        "unrealized_intraday_plpc": _money((unrealized / cost_basis).quantize(Decimal("0.0001"))),
        "current_price": _money(current_price),
        "lastday_price": _money(current_price),
        "change_today": "0",
    }


def bar_json(bar) -> dict:
    return {
        "t": _time(bar.timestamp),
        "o": float(bar.open),
        "h": float(bar.high),
        "l": float(bar.low),
        "c": float(bar.close),
        "v": int(bar.volume),
        "n": int(bar.volume) // 100,
        "vw": float(((bar.high + bar.low + bar.close) / 3).quantize(Decimal("0.0001"))),
    }


class ErrorResponse(Exception):
    def __init__(self, status: int, body):
        super().__init__(status)
        self.status = status
        self.body = body


def _error_for(exc: BrokerError) -> ErrorResponse:
    message = str(exc)
    if isinstance(exc, NotFound):
        return ErrorResponse(404, {"code": 40410000, "message": message})
    if isinstance(exc, InsufficientBuyingPower | InsufficientQuantity):
        return ErrorResponse(403, {"code": 40310000, "message": message})
    if isinstance(exc, DuplicateClientOrderId | OrderRejected):
        return ErrorResponse(422, {"code": 40010001, "message": message})
    raise exc


class FakeAlpaca:
    def __init__(self):
        self.faults = Faults()
        self.received: list[ReceivedRequest] = []
        self.rate_limited = 0  # requests answered 429 by the rate_limit switch
        self.bars_page_size = MAX_BARS_PAGE
        self._lock = threading.Lock()
        # Set on stop: handler threads still sleeping in an injected delay end at once, without
        # touching the database (which belongs to the next test by then).
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> "FakeAlpaca":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def broker(self, **options) -> AlpacaBroker:
        """A real AlpacaBroker pointed at this server, with short timeouts and no retry sleeps."""
        settings = {"read_timeout": 1.0, "connect_timeout": 1.0, "retry_wait": 0.0, **options}
        return AlpacaBroker(
            API_KEY, SECRET_KEY, paper=True, base_url=self.url, data_url=self.url, **settings
        )

    def fail(self, status: int, times: int = 1, method=None, path=None, body=None) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``body``)."""
        body = body if body is not None else ERROR_BODIES.get(status, ERROR_BODIES[500])
        self.faults.failures.append(InjectedFailure(status, times, method, path, body))

    def requests_to(self, method: str, path: str) -> list[ReceivedRequest]:
        return [r for r in self.received if r.method == method and r.path == path]

    # --- request handling (runs on the server's threads) ---------------------------------------

    def _take(self, attribute: str) -> bool:
        with self._lock:
            remaining = getattr(self.faults, attribute)
            if remaining > 0:
                setattr(self.faults, attribute, remaining - 1)
                return True
            return False

    def over_rate_limit(self, arrived: float) -> bool:
        if self.faults.rate_limit is None:
            return False
        limit, seconds = self.faults.rate_limit
        with self._lock:
            recent = sum(1 for r in list(self.received) if arrived - seconds <= r.at <= arrived)
            if recent > limit:
                self.rate_limited += 1
                return True
        return False

    def injected_failure(self, method: str, path: str) -> InjectedFailure | None:
        with self._lock:
            for failure in self.faults.failures:
                matches = (failure.method in (None, method)) and (
                    failure.path is None or path.startswith(failure.path)
                )
                if matches and failure.times > 0:
                    failure.times -= 1
                    return failure
        return None

    def dispatch(self, method: str, path: str, query: dict, body: dict | None):
        for route_method, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler(self, query, body, *match.groups())
        raise ErrorResponse(404, {"code": 40410000, "message": "endpoint not found"})

    # --- endpoints -----------------------------------------------------------------------------

    def get_account(self, query, body):
        return 200, account_json(exchange.get_account())

    def post_order(self, query, body):
        with self._lock:
            rejection = self.faults.reject_orders.pop(0) if self.faults.reject_orders else None
        if rejection:
            status, message = rejection
            raise ErrorResponse(status, {"code": 40310000 if status == 403 else 40010001,
                                         "message": message})  # fmt: skip
        try:
            qty = Decimal(str(body["qty"]))
            limit_price = body.get("limit_price")
            fill_qty = None
            if self.faults.partial_fill_ratio is not None:
                fill_qty = (qty * self.faults.partial_fill_ratio).to_integral_value(ROUND_DOWN)
            order = exchange.submit_order(
                symbol=body["symbol"],
                qty=qty,
                side=OrderSide(body["side"]),
                order_type=OrderType(body["type"]),
                limit_price=Decimal(str(limit_price)) if limit_price is not None else None,
                client_order_id=body.get("client_order_id") or str(uuid.uuid4()),
                fill_qty=fill_qty,
                fill_price=self.faults.fill_price,
            )
        except (KeyError, ValueError) as exc:
            raise ErrorResponse(
                422, {"code": 40010001, "message": f"invalid order: {exc}"}
            ) from exc
        if self._take("accept_then_timeout"):
            self._stopping.wait(self.faults.stall_seconds)
        if self._take("accept_then_504"):
            raise ErrorResponse(504, "<html><body>504 Gateway Time-out</body></html>")
        return 200, order_json(order)

    def cancel_order(self, query, body, order_id):
        try:
            exchange.cancel_order(order_id)
        except OrderRejected as exc:
            raise ErrorResponse(422, {"code": 42210000, "message": str(exc)}) from exc
        return 204, None

    def list_orders(self, query, body):
        direction = query.get("direction", "desc")
        orders = exchange.list_orders(
            status=OrderQueryStatus(query.get("status", "open")),
            after=_parse_time(query.get("after")),
            until=_parse_time(query.get("until")),
            limit=min(int(query.get("limit", 50)), 500),
            ascending=direction == "asc",
        )
        return 200, [order_json(order) for order in orders]

    def get_order(self, query, body, order_id):
        return 200, order_json(exchange.get_order(order_id))

    def get_order_by_client_id(self, query, body):
        return 200, order_json(exchange.get_order_by_client_order_id(query["client_order_id"]))

    def list_positions(self, query, body):
        now = datetime.now(UTC)
        return 200, [
            position_json(position, market.latest_price(position.symbol, now))
            for position in exchange.list_positions()
        ]

    def get_position(self, query, body, symbol):
        position = exchange.get_position(symbol)
        return 200, position_json(position, market.latest_price(symbol, datetime.now(UTC)))

    def get_clock(self, query, body):
        clock = exchange.clock()
        return 200, {
            "timestamp": _time(clock.timestamp),
            "is_open": clock.is_open,
            "next_open": _time(clock.next_open),
            "next_close": _time(clock.next_close),
        }

    def get_asset(self, query, body, symbol):
        asset = market.paper_asset(symbol)
        if asset is None:
            raise ErrorResponse(404, {"code": 40410000, "message": f"asset not found for {symbol}"})
        return 200, {
            "id": _asset_id(symbol),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": asset.name,
            "status": "active",
            "tradable": asset.tradable,
            "marginable": True,
            "shortable": False,
            "easy_to_borrow": False,
            "fractionable": asset.fractionable,
            "attributes": [],
        }

    def get_bars(self, query, body):
        timeframe = TimeFrame(query["timeframe"])
        now = datetime.now(UTC)
        start, end = _parse_time(query["start"]), _parse_time(query.get("end")) or now
        # Alpaca's start and end are both inclusive; its bars are the completed ones.
        until = min(end, now - timedelta(seconds=timeframe.seconds)) + timedelta(microseconds=1)
        items = []  # Alpaca orders multi-symbol results by symbol, then time
        for symbol in sorted(query["symbols"].split(",")):
            if market.paper_asset(symbol):
                bars = market.bars_between(symbol, timeframe, start, until)
                items.extend((symbol, bar) for bar in bars)
        offset = int(base64.b64decode(query["page_token"])) if query.get("page_token") else 0
        page_size = min(int(query.get("limit", MAX_BARS_PAGE)), self.bars_page_size)
        page = items[offset : offset + page_size]
        grouped: dict[str, list] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar_json(bar))
        more = offset + page_size < len(items)
        token = base64.b64encode(str(offset + page_size).encode()).decode() if more else None
        return 200, {"bars": grouped, "next_page_token": token}

    def get_latest_trades(self, query, body):
        now = datetime.now(UTC)
        trades = {
            symbol: {
                "t": _time(now),
                "x": "V",
                "p": float(market.latest_price(symbol, now)),
                "s": 100,
                "c": ["@"],
                "i": 1,
                "z": "C",
            }
            for symbol in query["symbols"].split(",")
            if market.paper_asset(symbol)
        }
        return 200, {"trades": trades}


ROUTES = [
    ("GET", re.compile(r"/v2/account"), FakeAlpaca.get_account),
    ("POST", re.compile(r"/v2/orders"), FakeAlpaca.post_order),
    ("GET", re.compile(r"/v2/orders"), FakeAlpaca.list_orders),
    ("GET", re.compile(r"/v2/orders:by_client_order_id"), FakeAlpaca.get_order_by_client_id),
    ("GET", re.compile(r"/v2/orders/([^/]+)"), FakeAlpaca.get_order),
    ("DELETE", re.compile(r"/v2/orders/([^/]+)"), FakeAlpaca.cancel_order),
    ("GET", re.compile(r"/v2/positions"), FakeAlpaca.list_positions),
    ("GET", re.compile(r"/v2/positions/([^/]+)"), FakeAlpaca.get_position),
    ("GET", re.compile(r"/v2/clock"), FakeAlpaca.get_clock),
    ("GET", re.compile(r"/v2/assets/([^/]+)"), FakeAlpaca.get_asset),
    ("GET", re.compile(r"/v2/stocks/bars"), FakeAlpaca.get_bars),
    ("GET", re.compile(r"/v2/stocks/trades/latest"), FakeAlpaca.get_latest_trades),
]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _handler_for(fake: FakeAlpaca):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep test output clean
            pass

        def _respond(self, status: int, body) -> None:
            is_text = isinstance(body, str)
            raw = b"" if status == 204 else (body if is_text else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if is_text else "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            try:
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the accept-then-timeout fault)

        def _handle(self):
            arrived = time.time()
            url = urlparse(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.received.append(
                ReceivedRequest(
                    self.command, url.path, query, body, dict(self.headers.items()), arrived
                )
            )
            if fake.faults.latency and fake._stopping.wait(fake.faults.latency):
                self.close_connection = True
                return
            try:
                if (
                    self.headers.get("APCA-API-KEY-ID") != API_KEY
                    or self.headers.get("APCA-API-SECRET-KEY") != SECRET_KEY
                ):
                    raise ErrorResponse(401, KEY_REJECTION_BODIES[401])
                if fake.faults.reject_keys:
                    status = fake.faults.reject_keys
                    raise ErrorResponse(status, KEY_REJECTION_BODIES[status])
                if fake.over_rate_limit(arrived):
                    raise ErrorResponse(429, ERROR_BODIES[429])
                failure = fake.injected_failure(self.command, url.path)
                if failure:
                    raise ErrorResponse(failure.status, failure.body)
                try:
                    status, payload = fake.dispatch(self.command, url.path, query, body)
                except BrokerError as exc:
                    raise _error_for(exc) from exc
            except ErrorResponse as error:
                status, payload = error.status, error.body
            finally:
                # Each request runs on a new thread with its own connection; do not leak them.
                connections.close_all()
            self._respond(status, payload)

        do_GET = do_POST = do_DELETE = do_PATCH = _handle

    return Handler
