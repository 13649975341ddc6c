"""JSON API for the books: trades, what each bot holds (open and closed positions), what the
broker holds that no bot owns, and getting out (one position, unmanaged shares, everything)."""

import logging
from datetime import datetime
from typing import Literal
from uuid import UUID

from django.db.models import F
from django.shortcuts import get_object_or_404
from ninja import Field, Path, Query, Router, Schema
from ninja.pagination import paginate
from ninja.responses import Status

from tradebots.api import MUTATION_ERRORS, TRADERS, ApiError, Moment, responses
from tradebots.broker import BrokerError, get_broker
from tradebots.money import Money, plain_decimal
from tradebots.pagination import KeysetPagination

from . import emergency
from .models import Position, Trade
from .positions import OpenPositionRow, unmanaged_positions

logger = logging.getLogger(__name__)

router = Router(tags=["trading"])

Side = Literal[tuple(Trade.Side.values)]
TradeStatus = Literal[tuple(Trade.Status.values)]
Origin = Literal[tuple(Trade.Origin.values)]
# A ticker as bots.forms accepts it, in any case.
SYMBOL_PATTERN = r"^[A-Za-z][A-Za-z0-9.]{0,11}$"


# --- trades ------------------------------------------------------------------------------------


class FillsOut(Schema):
    """What the broker filled of the order, as the Trade carries it: the filled quantity and
    the average price over all fills (no record per individual fill is kept)."""

    filled_qty: Money
    average_price: Money | None


def _bot_name(row: Trade | Position) -> str | None:
    """The lists annotate ``bot_name`` (a page of rows builds no Bot objects for their names);
    a single row loaded otherwise reads its bot."""
    if hasattr(row, "bot_name"):
        return row.bot_name
    return row.bot.name if row.bot_id else None


class TradeOut(Schema):
    id: int
    bot_id: UUID | None = Field(description="Null for unmanaged closes and deleted bots.")
    bot_name: str | None
    position_id: int | None
    symbol: str
    side: Side
    qty: Money
    filled_qty: Money
    price: Money | None = Field(description="Average fill price.")
    status: TradeStatus
    client_order_id: str | None
    order_id: str | None = Field(description="The broker's order id.")
    reason: str | None
    origin: Origin
    error_message: str
    created_at: datetime
    submitted_at: datetime | None
    filled_at: datetime | None
    updated_at: datetime
    fills: FillsOut

    @staticmethod
    def resolve_bot_name(trade: Trade) -> str | None:
        return _bot_name(trade)

    @staticmethod
    def resolve_fills(trade: Trade) -> dict:
        return {"filled_qty": trade.filled_qty, "average_price": trade.price}


class TradeFilters(Schema):
    bot: UUID | None = Field(None, description="A bot's id.")
    symbol: str | None = Field(None, pattern=SYMBOL_PATTERN, description="Ticker, e.g. AAPL.")
    side: Side | None = None
    status: TradeStatus | None = None
    since: Moment | None = Field(
        None,
        description="Trades created at or after this time (ISO 8601; the server's time zone, "
        "TIME_ZONE, when it has no offset).",
    )


@router.get("/trades", response=responses({200: list[TradeOut]}))
@paginate(KeysetPagination, ordering=("-created_at", "-id"))
def list_trades(request, filters: Query[TradeFilters]):
    """Every order intent of every bot, newest first."""
    trades = Trade.objects.annotate(bot_name=F("bot__name"))
    if filters.bot:
        trades = trades.filter(bot_id=filters.bot)
    if filters.symbol:
        trades = trades.filter(symbol=filters.symbol.upper())
    if filters.side:
        trades = trades.filter(side=filters.side)
    if filters.status:
        trades = trades.filter(status=filters.status)
    if filters.since:
        trades = trades.filter(created_at__gte=filters.since)
    return trades


@router.get("/trades/{int:trade_id}", response=responses({200: TradeOut}, 404))
def get_trade(request, trade_id: int):
    return get_object_or_404(Trade.objects.annotate(bot_name=F("bot__name")), pk=trade_id)


# --- positions ---------------------------------------------------------------------------------


class PositionOut(Schema):
    id: int
    bot_id: UUID | None = Field(description="Null when the bot was deleted.")
    bot_name: str | None
    symbol: str
    qty: Money
    avg_entry_price: Money
    entry_reason: str
    stop_loss_price: Money | None
    take_profit_price: Money | None
    is_open: bool
    opened_at: datetime

    @staticmethod
    def resolve_bot_name(position: Position) -> str | None:
        return _bot_name(position)


class OpenPositionOut(PositionOut):
    current_price: Money | None = Field(description="Null when the broker did not answer.")
    market_value: Money | None
    unrealized_pl: Money | None
    unrealized_pct: Money | None
    closing: bool = Field(description="A sell of it is in flight.")


class ClosedPositionOut(PositionOut):
    exit_price: Money | None
    realized_pnl: Money | None
    closed_at: datetime | None


class UnmanagedPositionOut(Schema):
    symbol: str
    qty: Money = Field(description="What the broker holds beyond our books (negative: short).")
    broker_qty: Money = Field(description="The broker's whole position.")
    avg_entry_price: Money
    current_price: Money | None
    market_value: Money | None
    unrealized_pl: Money | None


def _valued(positions: list[Position]) -> list[Position]:
    """The page's positions at the broker's latest prices (one broker call), with whether a
    sell of each is in flight. Without prices the positions are still listed."""
    symbols = sorted({position.symbol for position in positions})
    try:
        prices = get_broker().get_latest_prices(symbols) if symbols else {}
    except BrokerError:
        logger.warning("Latest prices unavailable for %s", ", ".join(symbols), exc_info=True)
        prices = {}
    closing = set(
        Trade.objects.filter(
            position__in=positions, side=Trade.Side.SELL, status__in=Trade.OPEN_STATUSES
        ).values_list("position_id", flat=True)
    )
    for position in positions:
        row = OpenPositionRow(position, prices.get(position.symbol), position.pk in closing)
        position.current_price = row.price
        position.market_value = row.market_value
        position.unrealized_pl = row.unrealized_pnl
        position.unrealized_pct = row.unrealized_pct
        position.closing = row.closing
    return positions


@router.get("/positions", response=responses({200: list[OpenPositionOut]}))
@paginate(KeysetPagination, ordering=("-opened_at", "-id"), rows=_valued)
def list_open_positions(request):
    """Open positions of our bots, newest first, valued at the broker's latest prices."""
    return Position.objects.filter(is_open=True).annotate(bot_name=F("bot__name"))


@router.get("/positions/closed", response=responses({200: list[ClosedPositionOut]}))
@paginate(KeysetPagination, ordering=("-closed_at", "-id"))
def list_closed_positions(request):
    """Closed positions with their realized P&L, most recently closed first."""
    return Position.objects.filter(is_open=False, closed_at__isnull=False).annotate(
        bot_name=F("bot__name")
    )


@router.get("/positions/unmanaged", response=responses({200: list[UnmanagedPositionOut]}, 503))
@paginate(KeysetPagination, ordering=("symbol",))
def list_unmanaged_positions(request):
    """What the broker holds that no bot owns (beyond our open positions and open buys)."""
    try:
        return unmanaged_positions()
    except BrokerError as error:
        raise ApiError(503, f"Broker unreachable: {error}") from None


# --- getting out -------------------------------------------------------------------------------


class BotBrief(Schema):
    id: UUID
    name: str
    status: str


class CloseOut(Schema):
    message: str
    confirmed: bool = Field(description="Whether the broker has acknowledged the sell.")
    already_in_flight: bool
    trade: TradeOut
    bot: BotBrief | None


class CloseUnmanagedOut(Schema):
    message: str
    trade: TradeOut


class EmergencyStopOut(Schema):
    message: str
    closed: list[CloseOut]
    paused: list[BotBrief]
    failed: list[str] = Field(description="Positions that could not be closed, and why.")


@router.post(
    "/positions/{int:position_id}/close",
    auth=TRADERS,
    response=responses({200: CloseOut, 202: CloseOut}, 404, 409, 502, *MUTATION_ERRORS),
)
def close_position(request, position_id: int, pause_bot: bool = True):
    """Emergency sell: the whole position at market, and (unless ``pause_bot=false``) pause its
    bot. 202 when the broker has not confirmed yet: the sell is followed until it does."""
    position = get_object_or_404(Position, pk=position_id)
    try:
        result = emergency.close_position(
            position, request.user.get_username(), pause_bot=pause_bot
        )
    except emergency.CloseRefused as refused:
        raise ApiError(refused.status, refused.message) from None
    return Status(200 if result.confirmed else 202, _close_json(result))


def _close_json(result: emergency.CloseResult) -> dict:
    return {
        "message": result.message,
        "confirmed": result.confirmed,
        "already_in_flight": result.already_in_flight,
        "trade": result.trade,
        "bot": result.bot,
    }


@router.post(
    "/positions/unmanaged/{symbol}/close",
    auth=TRADERS,
    response=responses({200: CloseUnmanagedOut}, 404, 409, 502, 503, *MUTATION_ERRORS),
)
def close_unmanaged(request, symbol: str = Path(..., pattern=SYMBOL_PATTERN)):
    """Close what the broker holds of ``symbol`` beyond our books; no bot is affected."""
    try:
        trade = emergency.close_unmanaged(symbol.upper(), request.user.get_username())
    except emergency.CloseRefused as refused:
        raise ApiError(refused.status, refused.message) from None
    except BrokerError as error:
        raise ApiError(503, f"Broker unreachable: {error}") from None
    verb = "Sold" if trade.side == Trade.Side.SELL else "Bought back"
    message = f"{verb} {plain_decimal(trade.qty)} unmanaged {trade.symbol} shares."
    return {"message": message, "trade": trade}


@router.post(
    "/emergency-stop", auth=TRADERS, response=responses({200: EmergencyStopOut}, *MUTATION_ERRORS)
)
def emergency_stop(request):
    """Sell all & pause all: pause every running bot, then close every managed position."""
    report = emergency.emergency_stop(request.user.get_username())
    return {
        "message": f"Sold {len(report.closed)} position(s), paused {len(report.paused)} bot(s).",
        "closed": [_close_json(result) for result in report.closed],
        "paused": report.paused,
        "failed": report.failed,
    }
