"""Reconciliation: compare our Trades with the broker's recent orders, and our open Positions with
the broker's holdings, and report every drift.

``reconcile()`` is the one service behind the dashboard's "Check Sync", ``GET
/api/account/reconcile``, ``manage.py reconcile`` and the scheduled Celery task. It reads the
broker and the books, stores a ReconciliationRun and returns it; it never changes a Trade or a
Position.

What is compared
- The broker's orders, newest first across pages, until ``limit`` closed orders have been seen
  (default 100; with ``since``, back to it but at most MAX_LIMIT). Open orders met on the way
  are compared too but do not count towards the limit.
- The window those orders cover: after the oldest order fetched when the limit was reached
  (older orders exist but were not fetched), else after ``since`` (no since: all of history); up
  to the moment the check started. Only Trades inside it can be "missing at the broker", so
  older history is never falsely reported.
- Matching: on client_order_id, else on order_id (Trades from before linking have only that;
  those with neither are left out and counted as ``unlinked_trades``).
- Discrepancy kinds: ``missing_in_db`` (a broker order carrying one of our client_order_ids,
  a bot's or the ``manual-…`` one of an unmanaged close, and no Trade), ``missing_in_broker``
  (a Trade in the window that claims a broker order, none there), ``status_mismatch``,
  ``price_mismatch`` (average fill price, to the cent) and ``qty_mismatch`` (filled or ordered
  quantity). Broker orders that are not ours are listed separately as external orders.
- A Trade still open on our side that the order path or the order sync touched recently is "in
  flight": its next sync will settle it, so it is counted, not judged. One whose sync has
  stalled past the grace period is judged like any other.

Holdings are compared too, whatever the window: per symbol, the broker's quantity
(``list_positions()``) against the sum of our open Positions (every bot's, and those of deleted
bots, named "no bot (deleted)").
- Our books hold more than the broker → ``position_mismatch``, keyed by symbol, with each bot and
  its quantity, our total and the broker's ("Our books hold 39 AAPL (Bot A 30, Bot B 9); the broker
  holds 0"). A symbol the broker does not list at all holds 0 there, so any open position on it is
  reported, also when the broker lists no positions at all.
- The broker holds more → unmanaged (trading.positions' definition): listed with the run as
  information, never counted as a discrepancy.
- A sell still in flight (see below) may have filled at the broker before our books hear of it:
  its quantity is allowed for, so a sell being settled is not reported; a stalled one is not.
- Our books are read after the Trades and right before the broker's positions, so that a fill
  booked in between shows as a transient unmanaged holding rather than a false mismatch.
- If the broker cannot list its positions the run fails, saying the holdings were not compared,
  as when it cannot list its orders: a run is never reported clean without both.

Queries do not grow with the number of orders or positions: one for the Trades of the window, one
for the bots when a bot has to be named from a client_order_id, one aggregate of our open
Positions (per symbol and bot), one to store the run, and ``__in`` queries (in chunks of 900)
only for orders carrying our client_order_id whose Trade is not in the window (none unless some
are missing in our books). The broker is asked for its orders (paged) and once for its positions.
"""

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import islice
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Case, DateTimeField, Q, Sum, When
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from bots.models import Bot
from tradebots import live
from tradebots.broker import (
    Broker,
    BrokerError,
    BrokerPosition,
    BrokerUnavailable,
    Order,
    OrderQueryStatus,
    get_broker,
)
from tradebots.money import format_money, plain_decimal, to_cents
from trading.models import Position, Trade
from trading.orders import TRADE_STATUS_FOR_ORDER_STATUS, bot_prefix_of, is_our_client_order_id
from trading.positions import find_unmanaged

from .models import ReconciliationRun

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# client_order_ids per `__in` query (SQLite allows 999 parameters per query).
ID_CHUNK = 900
# How much earlier than the window a Trade may have been written and still match an order in it
# (an intent is sent at most ORDER_INTENT_TTL_SECONDS late; clocks differ a little).
CLOCK_SLACK = timedelta(minutes=5)
RUN_ROW = "reconciliation/runs.html#run-row"
LAST_RUN_TEMPLATE = "reconciliation/partials/last_run.html"
# How a holding whose bot was deleted is named.
NO_BOT = "no bot (deleted)"
# The earliest ``since``: no broker order is older, and dates near year 1 overflow as soon as a
# time zone or the clock slack is applied to them.
EARLIEST_SINCE = datetime(1970, 1, 1, tzinfo=UTC)
INVALID_SINCE = "Enter an ISO 8601 date or date-time, e.g. 2025-01-31T14:00Z."


class Kind(StrEnum):
    MISSING_IN_DB = "missing_in_db"
    MISSING_IN_BROKER = "missing_in_broker"
    STATUS_MISMATCH = "status_mismatch"
    PRICE_MISMATCH = "price_mismatch"
    QTY_MISMATCH = "qty_mismatch"
    POSITION_MISMATCH = "position_mismatch"


KIND_LABELS = {
    Kind.MISSING_IN_DB: "Missing in our books",
    Kind.MISSING_IN_BROKER: "Missing at the broker",
    Kind.STATUS_MISMATCH: "Status differs",
    Kind.PRICE_MISMATCH: "Price differs",
    Kind.QTY_MISMATCH: "Quantity differs",
    Kind.POSITION_MISMATCH: "Holding differs",
}

# What each kind means, and what the trader does about it (the report and the page say both).
KIND_GUIDANCE = {
    Kind.MISSING_IN_DB: (
        "The broker has an order with one of our client_order_ids that our books have no Trade "
        "for: typically the app stopped between sending an order and recording it.",
        "Look at the order in the broker's dashboard. If it filled, what it bought shows on "
        "Positions as unmanaged: keep it, or close it there with its SELL.",
    ),
    Kind.MISSING_IN_BROKER: (
        "Our books have a Trade the broker does not report: it never arrived, or it is older "
        "than the window checked.",
        "If the trade is recent and still open, the order sync settles it within minutes. If "
        "it persists, widen the window (Since / Closed orders back) and check again; a trade "
        "the broker never had did not execute.",
    ),
    Kind.STATUS_MISMATCH: (
        "The order's status differs between our books and the broker (e.g. filled there, "
        "open here).",
        "Usually an order still in flight: the order sync settles it (or run "
        "`manage.py sync_orders`). If it stays, check the order at the broker.",
    ),
    Kind.PRICE_MISMATCH: (
        "The average fill price differs between our books and the broker.",
        "Realized P&L of that trade is off by the difference. Run the order sync; if it "
        "stays, the broker's price is the true one.",
    ),
    Kind.QTY_MISMATCH: (
        "The filled quantity differs: usually a partial fill not booked yet.",
        "The order sync books the rest. If it stays, the bot's position is off: compare it "
        "with the broker's holding on Positions.",
    ),
    Kind.POSITION_MISMATCH: (
        "What our bots hold of a symbol differs from the broker's holding of it.",
        "If the broker holds more, the excess is on Positions as unmanaged (with its own "
        "SELL). If it holds less, a position was closed outside the app: sell it in the app "
        "to bring the books back in line.",
    ),
}

# Our books say the broker never had these (refused outright, or abandoned before sending).
_NEVER_AT_BROKER = (Trade.Status.REJECTED, Trade.Status.CANCELED)


class TradeRow(NamedTuple):
    """What the comparison reads of a Trade: a row, not a model instance (10,000 of them must be
    cheap), with only the timestamps it needs."""

    id: int
    bot_id: uuid.UUID | None
    bot_name: str | None
    symbol: str
    side: str
    qty: Decimal
    filled_qty: Decimal
    price: Decimal | None
    status: str
    order_id: str | None
    client_order_id: str | None
    # When the order left, by the broker's clock if it answered, else when we wrote it.
    time: datetime
    # When the order path or the sync last touched it; only for Trades still open.
    touched: datetime | None


TRADE_COLUMNS = (
    "id",
    "bot_id",
    "bot__name",
    "symbol",
    "side",
    "qty",
    "filled_qty",
    "price",
    "status",
    "order_id",
    "client_order_id",
    Coalesce("submitted_at", "created_at"),
    Case(
        When(status__in=Trade.OPEN_STATUSES, then="updated_at"),
        default=None,
        output_field=DateTimeField(),
    ),
)


@dataclass
class Window:
    """The stretch of time the fetched broker orders cover: (start, end], start None = always."""

    start: datetime | None
    end: datetime
    limit: int | None
    since: datetime | None
    limit_reached: bool

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or moment > self.start) and moment <= self.end


@dataclass
class Comparison:
    window: Window
    orders_checked: int = 0
    synced_count: int = 0
    unlinked_trades: int = 0
    in_flight: int = 0
    discrepancies: list[dict] = field(default_factory=list)
    external_orders: list[dict] = field(default_factory=list)
    # Trades the sync is still settling: the holdings comparison allows for their sells.
    in_flight_trades: list[TradeRow] = field(default_factory=list)
    holdings_checked: int = 0
    unmanaged_holdings: list[dict] = field(default_factory=list)


class HoldingRow(NamedTuple):
    """Our open quantity of one symbol held by one bot (bot_id None: deleted bots together)."""

    symbol: str
    bot_id: uuid.UUID | None
    bot_name: str | None
    qty: Decimal


# --- the window asked for -----------------------------------------------------------------------


def parse_since(text: str | None) -> datetime | None:
    """``since`` as the command, the pages and the API take it: an ISO 8601 date or date-time
    (without a zone: TIME_ZONE). None when empty; ValidationError with a message to show when it
    does not parse or is out of bounds (``check_since``)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = parse_datetime(text)
    except ValueError:  # well-formed but impossible, e.g. 2025-02-30
        moment = None
    if moment is None:
        raise ValidationError(INVALID_SINCE, code="invalid")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    check_since(moment)
    return moment


def check_since(since: datetime | None) -> None:
    """ValidationError unless ``since`` is None or between EARLIEST_SINCE and now."""
    if since is None:
        return
    if since < EARLIEST_SINCE:
        raise ValidationError(
            f"Must be on or after {EARLIEST_SINCE:%Y-%m-%d}: no broker order is older.",
            code="min_value",
        )
    if since >= timezone.now():
        raise ValidationError("Must be in the past.", code="max_value")


# --- the service ------------------------------------------------------------------------------


def reconcile(
    *,
    trigger: str,
    started_by: str = "",
    limit: int | None = None,
    since: datetime | None = None,
    broker: Broker | None = None,
) -> ReconciliationRun:
    """Compare, store the run, tell open pages. ``limit`` defaults to 100 closed orders, or to
    MAX_LIMIT when ``since`` bounds the window. A broker that cannot be reached gives a stored,
    failed run (``run.failed``), not an exception. ``broker`` defaults to get_broker().
    ``since`` out of bounds raises ValidationError (``check_since``) before anything is read."""
    check_since(since)
    if limit is None:
        limit = DEFAULT_LIMIT if since is None else MAX_LIMIT
    run = ReconciliationRun(
        started_at=timezone.now(), trigger=trigger, started_by=started_by, limit=limit, since=since
    )
    clock = time.perf_counter()
    broker = broker or get_broker()
    try:
        orders, limit_reached = fetch_orders(broker, limit=limit, since=since)
    except BrokerError as error:
        logger.warning("Reconciliation could not read the broker's orders: %s", error)
        _fail(run, error, refused="The broker refused to list its orders")
    else:
        window = window_of(orders, limit, since, limit_reached, checked_at=run.started_at)
        result = compare(orders, window)
        try:
            compare_holdings(broker, result)
        except BrokerError as error:
            logger.warning("Reconciliation could not read the broker's positions: %s", error)
            _fail(
                run,
                error,
                unreachable="The broker could not be reached to list its positions, "
                "so holdings were not compared",
                refused="The broker refused to list its positions, so holdings were not compared",
            )
        else:
            _store_comparison(run, result)
    run.finished_at = run.started_at + timedelta(seconds=time.perf_counter() - clock)
    run.save()
    _tell_open_pages(run)
    return run


def fetch_orders(
    broker: Broker, *, limit: int | None, since: datetime | None
) -> tuple[list[Order], bool]:
    """The broker's orders newest first, until ``limit`` closed ones (or back to ``since``);
    and whether the limit cut the list short."""
    orders: list[Order] = []
    closed = 0
    for order in broker.iter_orders(OrderQueryStatus.ALL, after=since):
        orders.append(order)
        if order.is_final:
            closed += 1
            if limit is not None and closed >= limit:
                return orders, True
    return orders, False


def window_of(
    orders: list[Order],
    limit: int | None,
    since: datetime | None,
    limit_reached: bool,
    checked_at: datetime,
) -> Window:
    start = since
    if limit_reached:
        times = [order.submitted_at for order in orders if order.submitted_at is not None]
        if times:
            start = min(times)
    return Window(
        start=start, end=checked_at, limit=limit, since=since, limit_reached=limit_reached
    )


def compare(orders: list[Order], window: Window) -> Comparison:
    """Match the broker's orders with our Trades and list what differs. Reads, never writes."""
    result = Comparison(window=window, orders_checked=len(orders))
    trades = _load_trades(orders, window)
    by_client_id = {t.client_order_id: t for t in trades.values() if t.client_order_id}
    by_order_id: dict[str, TradeRow] = {}
    for trade in trades.values():
        if trade.order_id:
            by_order_id.setdefault(trade.order_id, trade)
    grace = in_flight_grace()
    bots = _BotNames()
    matched: set[int] = set()

    for order in orders:
        trade = by_client_id.get(order.client_order_id) or by_order_id.get(order.id)
        if trade is None:
            if not is_our_client_order_id(order.client_order_id):
                result.external_orders.append(_order_json(order))
            else:
                result.discrepancies.append(
                    _discrepancy(
                        Kind.MISSING_IN_DB,
                        bots.of(None, None, order.client_order_id),
                        order=order,
                        ours=None,
                        broker=_order_state(order),
                        detail=(
                            f"The broker has this order ({_order_state(order)}); "
                            "we have no Trade for it."
                        ),
                    )
                )
            continue
        matched.add(trade.id)
        if _is_in_flight(trade, window.end, grace):
            result.in_flight += 1
            continue
        found = _differences(trade, order, bots)
        if found:
            result.discrepancies.extend(found)
        else:
            result.synced_count += 1

    result.in_flight_trades = [
        trade for trade in trades.values() if _is_in_flight(trade, window.end, grace)
    ]
    for trade in trades.values():
        if trade.id in matched or not window.contains(trade.time):
            continue
        if not trade.client_order_id and not trade.order_id:
            result.unlinked_trades += 1
        elif _is_in_flight(trade, window.end, grace):
            result.in_flight += 1
        elif trade.status in _NEVER_AT_BROKER and not trade.order_id:
            continue  # refused or never sent, by our own books: no order expected
        else:
            result.discrepancies.append(
                _discrepancy(
                    Kind.MISSING_IN_BROKER,
                    bots.of(trade.bot_id, trade.bot_name, trade.client_order_id),
                    trade=trade,
                    ours=_trade_state(trade),
                    broker=None,
                    detail=f"Our Trade says {_trade_state(trade)}; the broker has no such order.",
                )
            )
    return result


def compare_holdings(broker: Broker, result: Comparison) -> None:
    """Add to ``result`` what our open positions hold beyond the broker (``position_mismatch``)
    and what the broker holds beyond them (unmanaged, information only). Our books are read
    first, then the broker's positions; a BrokerError from the broker is left to the caller."""
    ours = _load_holdings()
    held = broker.list_positions()
    result.discrepancies.extend(holding_differences(ours, held, result.in_flight_trades))
    tracked: dict[str, Decimal] = {}
    for row in ours:
        tracked[row.symbol] = tracked.get(row.symbol, Decimal(0)) + row.qty
    result.holdings_checked = len(tracked.keys() | {position.symbol for position in held})
    result.unmanaged_holdings = [
        {
            "symbol": position.symbol,
            "qty": _qty(position.qty),
            "broker_qty": _qty(position.broker_qty),
            "ours": _qty(tracked.get(position.symbol, Decimal(0))),
            "market_value": _plain(position.market_value),
        }
        for position in find_unmanaged(held, tracked)
    ]


def holding_differences(
    ours: list[HoldingRow], held: list[BrokerPosition], in_flight: Iterable[TradeRow] = ()
) -> list[dict]:
    """A ``position_mismatch`` per symbol where our open positions hold more than the broker
    (a symbol it does not list holds 0 there), after allowing for sells still in flight."""
    broker_qty = {position.symbol: position.qty for position in held}
    selling: dict[str, Decimal] = {}
    for trade in in_flight:
        # The whole order, not just what is left: a partial fill may not be booked yet.
        if trade.side == Trade.Side.SELL:
            selling[trade.symbol] = selling.get(trade.symbol, Decimal(0)) + trade.qty
    by_symbol: dict[str, list[HoldingRow]] = {}
    for row in ours:
        by_symbol.setdefault(row.symbol, []).append(row)

    found = []
    for symbol in sorted(by_symbol):
        rows = sorted(by_symbol[symbol], key=lambda row: (-row.qty, row.bot_name or "~"))
        total = sum((row.qty for row in rows), Decimal(0))
        theirs = broker_qty.get(symbol, Decimal(0))
        allowed = selling.get(symbol, Decimal(0))
        if total - allowed <= theirs:
            continue
        bots = [
            {"id": str(row.bot_id) if row.bot_id else None, "name": row.bot_name,
             "qty": _qty(row.qty)}
            for row in rows
        ]  # fmt: skip
        named = ", ".join(f"{row.bot_name or NO_BOT} {_qty(row.qty)}" for row in rows)
        detail = (
            f"Our books hold {_qty(total)} {symbol} ({named}); the broker holds {_qty(theirs)}."
        )
        if allowed:
            detail += f" Sells of {_qty(allowed)} still in flight were allowed for."
        only = rows[0] if len(rows) == 1 else None
        found.append(
            {
                "kind": str(Kind.POSITION_MISMATCH),
                "label": KIND_LABELS[Kind.POSITION_MISMATCH],
                # One bot: named like any discrepancy's; several: see "bots".
                "bot": {
                    "id": str(only.bot_id) if only and only.bot_id else None,
                    "name": only.bot_name if only else None,
                    "prefix": only.bot_id.hex[:8] if only and only.bot_id else None,
                },
                "bots": bots,
                "trade_id": None,
                "order_id": None,
                "client_order_id": None,
                "symbol": symbol,
                "side": None,
                "ours": _qty(total),
                "broker": _qty(theirs),
                "our_qty": _qty(total),
                "broker_qty": _qty(theirs),
                "in_flight_sell_qty": _qty(allowed),
                "detail": detail,
                "submitted_at": None,
            }
        )
    return found


def in_flight_grace() -> timedelta:
    """How long an open Trade may go untouched before the sync is deemed to have lost it."""
    return timedelta(
        seconds=max(settings.ORDER_INTENT_TTL_SECONDS, 2 * settings.ORDER_SYNC_SECONDS)
    )


def last_run() -> ReconciliationRun | None:
    """The newest run's summary: its counts, without its lists (see ReconciliationRun.LISTS)."""
    runs = ReconciliationRun.objects.defer(*ReconciliationRun.LISTS)
    return runs.order_by("-started_at", "-id").first()


def discrepancy_key(discrepancy: dict) -> tuple:
    """What makes two runs' discrepancies the same one: a holding's is its symbol, whatever the
    quantities (the same drift growing is not new)."""
    if discrepancy["kind"] == Kind.POSITION_MISMATCH:
        return (discrepancy["kind"], discrepancy["symbol"])
    return (
        discrepancy["kind"],
        discrepancy.get("client_order_id"),
        discrepancy.get("order_id"),
        discrepancy.get("trade_id"),
    )


def new_discrepancies(run: ReconciliationRun) -> list[dict]:
    """The run's discrepancies that the previous completed scheduled run did not report."""
    previous = (
        ReconciliationRun.objects.filter(trigger=ReconciliationRun.Trigger.SCHEDULE)
        .exclude(outcome=ReconciliationRun.Outcome.FAILED)
        .exclude(pk=run.pk)
        .filter(Q(started_at__lt=run.started_at) | Q(started_at=run.started_at, pk__lt=run.pk))
        .order_by("-started_at", "-id")
        .only("discrepancies")
        .first()
    )
    known = {discrepancy_key(d) for d in previous.discrepancies} if previous else set()
    return [d for d in run.discrepancies if discrepancy_key(d) not in known]


# --- internals --------------------------------------------------------------------------------


def _load_trades(orders: list[Order], window: Window) -> dict[int, TradeRow]:
    """The window's Trades in one query, plus (in chunks) any that match an order but were
    written before the window."""
    trades = Trade.objects.all()
    if window.start is not None:
        slack = timedelta(seconds=settings.ORDER_INTENT_TTL_SECONDS) + CLOCK_SLACK
        trades = trades.filter(created_at__gt=window.start - slack)
    rows = {row.id: row for row in _rows(trades)}
    client_ids = {row.client_order_id for row in rows.values() if row.client_order_id}
    order_ids = {row.order_id for row in rows.values() if row.order_id}
    # Ours by their client_order_id, yet no Trade in the window: look further back (an intent
    # written long before it was sent). Not for external orders: only Trades from before linking
    # lack a client_order_id, and those are written after their order, so inside the window.
    unmatched = [
        order.client_order_id
        for order in orders
        if order.client_order_id not in client_ids
        and order.id not in order_ids
        and is_our_client_order_id(order.client_order_id)
    ]
    for chunk in _chunks(unmatched, ID_CHUNK):
        rows.update((row.id, row) for row in _rows(Trade.objects.filter(client_order_id__in=chunk)))
    return rows


def _load_holdings() -> list[HoldingRow]:
    """Our open quantity per symbol and bot, in one aggregate query."""
    rows = (
        Position.objects.filter(is_open=True)
        .values_list("symbol", "bot_id", "bot__name")
        .annotate(total=Sum("qty"))
    )
    return [HoldingRow._make(row) for row in rows]


def _chunks(items: list, size: int) -> Iterable[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _rows(trades) -> Iterable[TradeRow]:
    return map(TradeRow._make, trades.values_list(*TRADE_COLUMNS))


def _is_in_flight(trade: TradeRow, now: datetime, grace: timedelta) -> bool:
    return trade.touched is not None and trade.touched > now - grace


def _differences(trade: TradeRow, order: Order, bots: "_BotNames") -> list[dict]:
    found = []
    bot = bots.of(trade.bot_id, trade.bot_name, trade.client_order_id)
    broker_status = TRADE_STATUS_FOR_ORDER_STATUS.get(order.status, Trade.Status.UNKNOWN)
    if trade.status != broker_status:
        found.append(
            _discrepancy(
                Kind.STATUS_MISMATCH, bot, order=order, trade=trade,
                ours=trade.status, broker=order.status,
                detail=f"Status: ours {trade.status}, broker {order.status}.",
            )
        )  # fmt: skip
    if trade.filled_qty != order.filled_qty or trade.qty != order.qty:
        ours, theirs = _qty(trade.filled_qty), _qty(order.filled_qty)
        detail = f"Filled: ours {ours}, broker {theirs}."
        if trade.qty != order.qty:
            detail += f" Ordered: ours {_qty(trade.qty)}, broker {_qty(order.qty)}."
        found.append(
            _discrepancy(
                Kind.QTY_MISMATCH, bot, order=order, trade=trade,
                ours=f"{ours} of {_qty(trade.qty)}", broker=f"{theirs} of {_qty(order.qty)}",
                detail=detail,
            )
        )  # fmt: skip
    ours_price, broker_price = _cents(trade.price), _cents(order.filled_avg_price)
    if ours_price != broker_price:
        found.append(
            _discrepancy(
                Kind.PRICE_MISMATCH, bot, order=order, trade=trade,
                ours=_plain(ours_price), broker=_plain(broker_price),
                detail=(
                    f"Average fill price: ours {format_money(ours_price)}, "
                    f"broker {format_money(broker_price)}."
                ),
            )
        )  # fmt: skip
    return found


def _discrepancy(
    kind: Kind,
    bot: dict,
    *,
    order: Order | None = None,
    trade: TradeRow | None = None,
    ours: str | None,
    broker: str | None,
    detail: str,
) -> dict:
    source = order or trade
    return {
        "kind": str(kind),
        "label": KIND_LABELS[kind],
        "bot": bot,
        "trade_id": trade.id if trade else None,
        "order_id": order.id if order else trade.order_id,
        "client_order_id": (order.client_order_id if order else None)
        or (trade.client_order_id if trade else None),
        "symbol": source.symbol,
        "side": str(source.side),
        "ours": ours,
        "broker": broker,
        "detail": detail,
        "submitted_at": _iso(order.submitted_at if order else trade.time),
    }


class _BotNames:
    """Names the bot of a discrepancy: from the Trade when there is one, else decoded from the
    client_order_id (the prefix of the bot's id), looking all bots up once, only if needed."""

    def __init__(self):
        self._by_prefix: dict[str, tuple[str, str]] | None = None

    def of(self, bot_id, bot_name: str | None, client_order_id: str | None) -> dict:
        prefix = bot_prefix_of(client_order_id)
        if bot_id is not None:
            return {"id": str(bot_id), "name": bot_name, "prefix": prefix or bot_id.hex[:8]}
        if prefix is None:
            return {"id": None, "name": None, "prefix": None}
        if self._by_prefix is None:
            self._by_prefix = {
                pk.hex[:8]: (str(pk), name) for pk, name in Bot.objects.values_list("id", "name")
            }
        found_id, name = self._by_prefix.get(prefix, (None, None))
        return {"id": found_id, "name": name, "prefix": prefix}


def _store_comparison(run: ReconciliationRun, result: Comparison) -> None:
    window = result.window
    run.window_start, run.window_end = window.start, window.end
    run.limit_reached = window.limit_reached
    run.orders_checked = result.orders_checked
    run.synced_count = result.synced_count
    run.unlinked_trades = result.unlinked_trades
    run.in_flight = result.in_flight
    run.discrepancies = result.discrepancies
    run.discrepancy_count = len(result.discrepancies)
    run.external_orders = result.external_orders
    run.external_count = len(result.external_orders)
    run.holdings_checked = result.holdings_checked
    run.unmanaged_holdings = result.unmanaged_holdings
    run.unmanaged_count = len(result.unmanaged_holdings)
    run.outcome = (
        ReconciliationRun.Outcome.DISCREPANCIES
        if result.discrepancies
        else ReconciliationRun.Outcome.IN_SYNC
    )


def _fail(
    run: ReconciliationRun,
    error: BrokerError,
    *,
    refused: str,
    unreachable: str = "The broker could not be reached",
) -> None:
    run.outcome = ReconciliationRun.Outcome.FAILED
    run.error = f"{unreachable if isinstance(error, BrokerUnavailable) else refused}: {error}"


def run_row(run: ReconciliationRun) -> live.Row:
    return live.table_row(
        "reconciliation",
        run.pk,
        lambda oob=False: render_to_string(RUN_ROW, {"run": run, "oob": oob}),
        tbody="run-rows",
        insert=True,
    )


def _tell_open_pages(run: ReconciliationRun) -> None:
    """Dashboards show the new last run, the runs page its row; a scheduled run warns about
    what is new."""
    try:
        live.broadcast(live.DASHBOARD_GROUP, LAST_RUN_TEMPLATE, {"run": run, "oob": True})
        live.push(("run", run.pk), lambda: run_row(run))
    except Exception:  # a push must never lose the stored run
        logger.exception("The last reconciliation run could not be pushed")
    if run.trigger != ReconciliationRun.Trigger.SCHEDULE or run.failed:
        return
    new = new_discrepancies(run)
    if new:
        count = len(new)
        noun = "discrepancy" if count == 1 else "discrepancies"
        live.toast(
            f"Reconciliation found {count} new {noun} between our books and the broker's "
            f"orders or holdings ({run.discrepancy_count} in all).",
            "warning",
            link=(reverse("reconciliation:run", args=[run.pk]), "See the report"),
            sticky=True,
        )


def _order_json(order: Order) -> dict:
    return {
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "type": str(order.type),
        "qty": _qty(order.qty),
        "filled_qty": _qty(order.filled_qty),
        "filled_avg_price": _plain(order.filled_avg_price),
        "status": order.status,
        "submitted_at": _iso(order.submitted_at),
    }


def _order_state(order: Order) -> str:
    state = f"{order.status}, {str(order.side)} {_qty(order.filled_qty)}/{_qty(order.qty)}"
    state += f" {order.symbol}"
    if order.filled_avg_price is not None:
        state += f" @ {format_money(order.filled_avg_price)}"
    return state


def _trade_state(trade: TradeRow) -> str:
    state = f"{trade.status}, {trade.side} {_qty(trade.filled_qty)}/{_qty(trade.qty)}"
    state += f" {trade.symbol}"
    if trade.price is not None:
        state += f" @ {format_money(trade.price)}"
    return state


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else to_cents(value)


def _qty(value: Decimal | None) -> str | None:
    return None if value is None else plain_decimal(value)


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value), "f")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def prune_runs(now: datetime | None = None) -> int:
    """Forget runs older than RECONCILE_KEEP_DAYS (the schedule alone adds ~96 a day at the
    default interval); the latest run always stays, so the dashboard keeps its last result."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RECONCILE_KEEP_DAYS)
    latest = last_run()
    old = ReconciliationRun.objects.filter(started_at__lt=cutoff)
    if latest is not None:
        old = old.exclude(pk=latest.pk)
    deleted, _ = old.delete()
    return deleted
