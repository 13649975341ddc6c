"""The order path: the one way the engine, the emergency sell and the commands place orders.

1. The Trade is written (status ``pending``, with its client_order_id and reason) and committed
   BEFORE the order is sent, so a crash or timeout leaves a record the next sync can complete.
2. The order goes to the broker under that client_order_id; the gateway itself resolves unknown
   outcomes by looking the id up, so an intent is never sent twice nor under a second id.
3. The Trade follows the broker's answer; positions change only from actual fills. What is not
   final at once is verified by a task (``follow_later``) and by the order sync (``settle``).

A bot's exposure is its position plus its open orders. An intent is recorded under the bot's
row lock, and refused (``OrderRefused``, naming the order in the way) while any order of the bot
is open; a sell is of its position's own symbol and quantity, linked to the position when
recorded, under the position's row lock, so there is one exit at a time, engine or manual. An
engine order unfilled past ORDER_STALE_SECONDS is canceled; an engine intent that never reached
the broker within ORDER_INTENT_TTL_SECONDS is abandoned; a manual close is neither.
"""

import contextlib
import logging
import re
import uuid
from collections.abc import Collection
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from bots import services as bot_services
from bots.models import Bot
from bots.strategy import stop_loss_price, take_profit_price
from tradebots import account_refresh, live
from tradebots.broker import (
    BrokerError,
    BudgetExhausted,
    NotFound,
    Order,
    OrderRejected,
    OrderSide,
    Priority,
    get_broker,
    request_priority,
)
from tradebots.money import PRICE_PLACES, plain_decimal

from . import live_updates
from .models import Position, Trade

logger = logging.getLogger(__name__)

# The bot statuses an engine order still stands in, checked under the bot's lock.
RUNNING_ONLY = (Bot.Status.RUNNING,)
PROTECTIVE_EXIT = (Bot.Status.RUNNING, Bot.Status.PAUSED)

CLIENT_ORDER_ID = re.compile(r"^bot-(?P<bot>[0-9a-f]{8})-(?P<intent>[0-9a-f]{8})$")
MANUAL_CLIENT_ORDER_ID = re.compile(r"^manual-[0-9a-f]{12}$")

# Alpaca's order statuses, in our vocabulary.
TRADE_STATUS_FOR_ORDER_STATUS = {
    "new": Trade.Status.ACCEPTED,
    "accepted": Trade.Status.ACCEPTED,
    "pending_new": Trade.Status.ACCEPTED,
    "accepted_for_bidding": Trade.Status.ACCEPTED,
    "calculated": Trade.Status.ACCEPTED,
    "held": Trade.Status.ACCEPTED,
    "pending_review": Trade.Status.ACCEPTED,
    "pending_cancel": Trade.Status.ACCEPTED,
    "pending_replace": Trade.Status.ACCEPTED,
    "done_for_day": Trade.Status.ACCEPTED,
    "suspended": Trade.Status.ACCEPTED,
    "stopped": Trade.Status.ACCEPTED,
    "partially_filled": Trade.Status.PARTIALLY_FILLED,
    "filled": Trade.Status.FILLED,
    "canceled": Trade.Status.CANCELED,
    "replaced": Trade.Status.CANCELED,
    "expired": Trade.Status.EXPIRED,
    "rejected": Trade.Status.REJECTED,
}


def generate_client_order_id(bot: Bot | None) -> str:
    """``bot-{bot id[:8]}-{random[:8]}``; an order no bot owns (closing an unmanaged position)
    is ``manual-{random[:12]}``, still recorded as a Trade so it is traceable."""
    if bot is None:
        return f"manual-{uuid.uuid4().hex[:12]}"
    return f"bot-{bot.id.hex[:8]}-{uuid.uuid4().hex[:8]}"


def is_our_client_order_id(client_order_id: str | None) -> bool:
    """Whether this app sent the order: a bot's id, or the manual id of an unmanaged close."""
    return bool(
        CLIENT_ORDER_ID.match(client_order_id or "")
        or MANUAL_CLIENT_ORDER_ID.match(client_order_id or "")
    )


def bot_prefix_of(client_order_id: str | None) -> str | None:
    """The 8 hex digits of the bot id a client_order_id names, or None if it is not ours."""
    match = CLIENT_ORDER_ID.match(client_order_id or "")
    return match["bot"] if match else None


class OrderRefused(Exception):
    """No intent was recorded: the bot or the position already has an order in flight, or the
    position is gone. ``in_flight`` is the open Trade that stands in the way, if any."""

    def __init__(self, message: str, in_flight: Trade | None = None):
        super().__init__(message)
        self.message = message
        self.in_flight = in_flight


def place_order(
    bot: Bot,
    side: str,
    qty: Decimal | None,
    reason: str,
    *,
    verify: bool = True,
    expected_price: Decimal | None = None,
) -> Trade:
    """Record a bot's intent and send it: a buy of ``qty``, or a sell of its whole open position
    (whose own quantity is used; ``qty`` may repeat it). Verification runs as its own task."""
    if side == Trade.Side.BUY:
        trade = record_buy_intent(bot, qty, reason, expected_price=expected_price)
    else:
        position = Position.objects.filter(bot=bot, is_open=True).first()
        if position is None:
            raise OrderRefused(f"'{bot.name}' holds no position to sell.")
        if qty is not None and qty != position.qty:
            raise ValueError(f"A sell is for the whole position ({position.qty}), not {qty}")
        trade = record_sell_intent(position, reason)
    return send_intent(trade, verify=verify)


def record_buy_intent(
    bot: Bot,
    qty: Decimal,
    reason: str,
    *,
    symbol: str | None = None,
    expected_price: Decimal | None = None,
    origin: str = Trade.Origin.ENGINE,
    require_running: bool = False,
) -> Trade:
    """The write-ahead half of a buy, refused while the bot has any open order. ``symbol`` is
    the one the decision was made on (its price sized ``qty``): under the lock the bot must
    still trade it, still be flat, and (for the engine: ``require_running``) still be running,
    or nothing is sent."""
    with transaction.atomic():
        symbol = symbol or bot.symbol
        locked_bot = _lock_flat_bot(
            bot.pk, statuses=RUNNING_ONLY if require_running else None, symbol=symbol, buying=True
        )
        trade = Trade.objects.create(
            bot=locked_bot, symbol=symbol, side=Trade.Side.BUY, qty=qty,
            reason=reason, client_order_id=generate_client_order_id(locked_bot),
            expected_price=expected_price, origin=origin,
        )  # fmt: skip
        _notify(trade, created=True)
    return trade


def record_sell_intent(
    position: Position,
    reason: str,
    *,
    origin: str = Trade.Origin.ENGINE,
    statuses: Collection[str] | None = None,
) -> Trade:
    """The write-ahead half of an exit: a sell of the position's own symbol and quantity, linked
    to the position at once, so that a second exit (engine or manual) finds it and is refused.
    ``statuses`` (the engine's): the bot must still be in one of them under the lock, or the
    decision no longer stands (a signal sell needs a running bot; a stop-loss or take-profit
    also sells for a paused one, never for a stopped one).

    Locks are taken in one order everywhere, bot row then position row, so the check and the
    write cannot interleave with another exit, a buy, a symbol change or a delete."""
    with transaction.atomic():
        bot = _lock_flat_bot(position.bot_id, statuses=statuses) if position.bot_id else None
        locked = Position.objects.select_for_update(of=("self",)).get(pk=position.pk)
        if not locked.is_open:
            raise OrderRefused(f"The {locked.symbol} position is already closed.")
        if locked.bot_id != (bot.pk if bot else None):
            raise OrderRefused(f"The {locked.symbol} position changed owner; try again.")
        if bot is None:  # a bot's open orders were checked with its lock; an orphan's are here
            exiting = open_trades().filter(position=locked, side=Trade.Side.SELL).first()
            if exiting is not None:
                raise OrderRefused(waiting_message(exiting), in_flight=exiting)
        trade = Trade.objects.create(
            bot=bot, position=locked, symbol=locked.symbol, side=Trade.Side.SELL, qty=locked.qty,
            reason=reason, client_order_id=generate_client_order_id(bot), origin=origin,
        )  # fmt: skip
        _notify(trade, created=True)
    return trade


def record_unmanaged_intent(symbol: str, side: str, qty: Decimal, reason: str) -> Trade:
    """An order no bot owns (closing what the broker holds beyond our books)."""
    trade = Trade.objects.create(
        bot=None, symbol=symbol, side=side, qty=qty, reason=reason,
        client_order_id=generate_client_order_id(None), origin=Trade.Origin.MANUAL,
    )  # fmt: skip
    _notify(trade, created=True)
    return trade


def open_trades():
    return Trade.objects.filter(status__in=Trade.OPEN_STATUSES)


def _lock_flat_bot(
    bot_id,
    *,
    statuses: Collection[str] | None = None,
    symbol: str | None = None,
    buying: bool = False,
) -> Bot:
    """The bot's row, locked; refused while any order of the bot is open (its exposure is its
    position plus its open orders, and a new order must see all of it), when its status is no
    longer one of ``statuses`` (the engine's decision no longer stands), no longer trades
    ``symbol``, or, ``buying``, already holds a position.

    The lock and the checks are two statements on purpose: under PostgreSQL's READ COMMITTED a
    subquery in the locking statement would read the snapshot from before it waited for the
    lock, and miss the order the previous holder just committed; a statement started after the
    lock sees it."""
    locked = Bot.objects.select_for_update().filter(pk=bot_id).first()
    if locked is None:
        raise OrderRefused("The bot no longer exists.")
    if statuses is not None and locked.status not in statuses:
        raise OrderRefused(f"'{locked.name}' is {locked.get_status_display().lower()}.")
    if symbol is not None and locked.symbol != symbol:
        raise OrderRefused(f"'{locked.name}' now trades {locked.symbol}, not {symbol}.")
    first_open = open_trades().filter(bot=OuterRef("pk")).order_by("created_at").values("pk")
    holding = Position.objects.filter(bot=OuterRef("pk"), is_open=True).values("pk")
    waiting_id, held_id = (
        Bot.objects.filter(pk=locked.pk)
        .annotate(waiting_id=Subquery(first_open[:1]), held_id=Subquery(holding[:1]))
        .values_list("waiting_id", "held_id")
        .get()
    )
    if waiting_id is not None:
        waiting = Trade.objects.get(pk=waiting_id)
        raise OrderRefused(waiting_message(waiting), in_flight=waiting)
    if buying and held_id is not None:
        held = Position.objects.get(pk=held_id)
        raise OrderRefused(
            f"'{locked.name}' already holds {plain_decimal(held.qty)} {held.symbol}."
        )
    return locked


def waiting_message(trade: Trade) -> str:
    state = trade.get_status_display().lower()
    return f"Waiting for order {trade.client_order_id} ({trade.side}, {state})"


def send_intent(trade: Trade, *, verify: bool = True) -> Trade:
    if transaction.get_connection().in_atomic_block:
        # The intent must be committed before the order leaves, or a crash could lose it.
        raise RuntimeError("Orders must not be sent inside a transaction")
    trade = submit(trade)
    if verify and trade.is_open:
        follow_later(trade)
    return trade


def submit(trade: Trade) -> Trade:
    """Send a recorded intent under its client_order_id and store the broker's answer."""
    try:
        order = get_broker().submit_market_order(
            trade.symbol, trade.qty, OrderSide(trade.side), trade.client_order_id
        )
    except OrderRejected as error:
        logger.warning("Order %s rejected: %s", trade.client_order_id, error)
        return _mark(trade, Trade.Status.REJECTED, str(error))
    except BudgetExhausted as error:
        # Certainly not sent: the intent stays pending and the sync sends it when a slot frees.
        logger.warning("Order %s not sent yet: %s", trade.client_order_id, error)
        return _mark(trade, Trade.Status.PENDING, str(error))
    except BrokerError as error:
        # Outcome unknown even after the gateway's own lookups: the sync asks again later.
        logger.warning("Order %s outcome unknown: %s", trade.client_order_id, error)
        return _mark(trade, Trade.Status.UNKNOWN, str(error))
    return record_order(trade, order)


def follow_later(trade: Trade, attempt: int = 1) -> None:
    """Verify the fill in a task (never by sleeping here: callers may hold the engine's lock).
    The task re-checks up to ORDER_VERIFY_RETRIES times; the order sync takes over after."""
    from .tasks import verify_trade

    def enqueue():
        try:
            verify_trade.apply_async(
                (trade.pk, attempt), countdown=settings.ORDER_VERIFY_DELAY_SECONDS
            )
        except Exception:  # noqa: BLE001 - the order sync follows the trade anyway
            logger.warning("Could not schedule verification of %s", trade.client_order_id)

    transaction.on_commit(enqueue)


def verify(trade_id: int, attempt: int) -> str:
    """One verification step (the verify_trade task): settle the trade, and come back later
    while it is still open, ORDER_VERIFY_RETRIES times at most."""
    trade = Trade.objects.filter(pk=trade_id).first()
    if trade is None or not trade.is_open:
        return trade.status if trade else "gone"
    settle(trade)
    trade.refresh_from_db()
    if trade.is_open:
        if attempt <= settings.ORDER_VERIFY_RETRIES:
            follow_later(trade, attempt + 1)
        else:
            logger.warning(
                "Order %s still %s after verification; the order sync will follow it",
                trade.client_order_id, trade.status,
            )  # fmt: skip
    return trade.status


def refresh(trade: Trade) -> Trade:
    broker = get_broker()
    if trade.order_id:
        order = broker.get_order(trade.order_id)
    else:
        order = broker.get_order_by_client_order_id(trade.client_order_id)
    return record_order(trade, order)


def sync_open_orders() -> dict[str, int]:
    """Complete every Trade the broker may have moved on since we last looked: pending intents
    (maybe never sent), unknown outcomes, accepted and partially filled orders; cancel those
    left unfilled past ORDER_STALE_SECONDS. Exits first (stop-loss, take-profit, manual)."""
    counts = {
        "checked": 0, "updated": 0, "resent": 0, "abandoned": 0, "canceled": 0, "failed": 0,
        "unchanged": 0,
    }  # fmt: skip
    with live.coalesced():
        for trade in open_trades().select_related("bot").order_by("-side", "created_at"):
            counts["checked"] += 1
            counts[settle(trade)] += 1
    del counts["unchanged"]
    return counts


def settle(trade: Trade) -> str:
    """Bring one open Trade forward and say what happened: updated, unchanged, resent,
    abandoned, canceled (stale at the broker) or failed (broker unreachable)."""
    before = (trade.status, trade.filled_qty)
    try:
        with request_priority(_priority_of(trade)):
            trade = refresh(trade)
            if trade.is_open and _is_stale(trade):
                return _cancel_stale(trade)
    except NotFound:
        return _complete_unsent(trade)
    except BrokerError as error:
        logger.warning("Sync of %s failed: %s", trade.client_order_id, error)
        return "failed"
    return "updated" if (trade.status, trade.filled_qty) != before else "unchanged"


def _priority_of(trade: Trade) -> Priority:
    return Priority.EXIT if trade.side == Trade.Side.SELL else Priority.ENTRY


def _is_stale(trade: Trade) -> bool:
    """An engine order left unfilled too long keeps its bot waiting: cancel it. A manual close
    keeps working at the broker until it fills or the operator cancels it there."""
    if trade.origin == Trade.Origin.MANUAL:
        return False
    sent = trade.submitted_at or trade.created_at
    return timezone.now() - sent > timedelta(seconds=settings.ORDER_STALE_SECONDS)


def _cancel_stale(trade: Trade) -> str:
    """Unfilled too long: cancel it under its id; what filled is booked by the refresh after."""
    logger.warning("Order %s unfilled after %ss: canceling", trade.client_order_id,
                   settings.ORDER_STALE_SECONDS)  # fmt: skip
    try:
        get_broker().cancel_order(trade.order_id)
    except OrderRejected as error:  # filled or canceled meanwhile: the refresh tells
        logger.info("Cancel of %s refused: %s", trade.client_order_id, error)
    trade = refresh(trade)
    return "canceled" if not trade.is_open else "failed"


def _complete_unsent(trade: Trade) -> str:
    """The broker has no order for this intent: it never left (a crash between write and send,
    a hung or refused submit). A manual close is always sent, however late: the operator asked
    to get out, and the position stays open until the broker confirms. An engine signal from
    minutes ago is no reason to trade now, so a stale one is abandoned."""
    age = timezone.now() - trade.created_at
    if trade.origin == Trade.Origin.MANUAL or age <= timedelta(
        seconds=settings.ORDER_INTENT_TTL_SECONDS
    ):
        with request_priority(_priority_of(trade)):
            submit(trade)  # same client_order_id: the broker refuses a second order for it
        return "resent"
    _mark(trade, Trade.Status.CANCELED, "Never reached the broker; not sent after the fact.")
    return "abandoned"


def _mark(trade: Trade, status: str, message: str) -> Trade:
    """Our own verdict on an intent (rejected, unknown, never sent), written only while the
    trade is still open: an answer the broker gave meanwhile is never overwritten."""
    with transaction.atomic():
        current = Trade.objects.select_for_update().get(pk=trade.pk)
        if not current.is_open:
            return current
        trade.status = status
        trade.error_message = message
        trade.save(update_fields=["status", "error_message", "updated_at"])
    _notify(trade)
    if trade.origin == Trade.Origin.MANUAL and not trade.is_open:
        _tell_outcome(trade)
    return trade


def record_order(trade: Trade, order: Order) -> Trade:
    """Bring the Trade in line with the broker's order, applying any new fill to the position."""
    with transaction.atomic():
        given = trade
        trade = Trade.objects.select_for_update().get(pk=trade.pk)
        if trade.bot_id and Trade.bot.is_cached(given) and given.bot_id == trade.bot_id:
            trade.bot = given.bot  # saves re-reading the bot for the fill
        if _is_older_than_our_books(trade, order):
            return trade
        new_fill = order.filled_qty - trade.filled_qty
        if new_fill > 0 and order.filled_avg_price is not None:
            # The average over all fills, minus what was already booked, prices this fill.
            booked = trade.filled_qty * (trade.price or 0)
            fill_price = (order.filled_qty * order.filled_avg_price - booked) / new_fill
            fill_price = fill_price.quantize(PRICE_PLACES)
            position = _apply_fill(trade, new_fill, fill_price)
            account_refresh.account_changed()
            if position is not None:
                trade.position = position
            trade.filled_qty = order.filled_qty
            trade.price = order.filled_avg_price
        trade.order_id = order.id
        trade.status = TRADE_STATUS_FOR_ORDER_STATUS.get(order.status, Trade.Status.UNKNOWN)
        trade.submitted_at = order.submitted_at or trade.submitted_at
        trade.filled_at = order.filled_at or trade.filled_at
        if trade.status != Trade.Status.UNKNOWN:
            trade.error_message = ""
        trade.save(update_fields=RECORDED_FIELDS)
        _notify(trade)
        if trade.origin == Trade.Origin.MANUAL and not trade.is_open:
            _tell_outcome(trade)
    return trade


RECORDED_FIELDS = (
    "position", "filled_qty", "price", "order_id", "status", "submitted_at", "filled_at",
    "error_message", "updated_at",
)  # fmt: skip


def _is_older_than_our_books(trade: Trade, order: Order) -> bool:
    """A broker answer read before one we already booked (two readers crossing): fills only
    grow, and a filled order never reopens."""
    reopened = trade.status == Trade.Status.FILLED and not order.is_final
    return order.filled_qty < trade.filled_qty or reopened


_caller_tells_outcome: ContextVar[bool] = ContextVar("caller_tells_outcome", default=False)


@contextlib.contextmanager
def outcome_told_by_caller():
    """Inside the block (a request placing a manual close), an outcome the broker gives at once
    is the request's own answer; only one that arrives later is pushed as a toast."""
    token = _caller_tells_outcome.set(True)
    try:
        yield
    finally:
        _caller_tells_outcome.reset(token)


def _tell_outcome(trade: Trade) -> None:
    """A manual close is the operator's own request: its outcome reaches every open page."""
    if _caller_tells_outcome.get():
        return
    if trade.status == Trade.Status.FILLED:
        qty = plain_decimal(trade.filled_qty)
        message, level = f"Sold {qty} {trade.symbol} (manual close).", "success"
    else:
        detail = f": {trade.error_message}" if trade.error_message else ""
        message = f"Manual close of {trade.symbol} {trade.get_status_display().lower()}{detail}."
        level = "error"
    live.toast_on_commit(message, level)


def _apply_fill(trade: Trade, qty: Decimal, price: Decimal) -> Position | None:
    bot = trade.bot
    now = timezone.now()
    if trade.side == Trade.Side.BUY:
        if bot is None:  # buying back an unmanaged short: no bot's holding to book it on
            return None
        position = Position.objects.select_for_update().filter(bot=bot, is_open=True).first()
        if position is None:
            position = Position(
                bot=bot, symbol=trade.symbol, qty=0, avg_entry_price=price,
                entry_reason=trade.reason or "", opened_at=now,
            )  # fmt: skip
        total = position.qty + qty
        average = (position.qty * position.avg_entry_price + qty * price) / total
        position.avg_entry_price = average.quantize(PRICE_PLACES)
        position.qty = total
        if bot and bot.stop_loss_pct is not None:
            position.stop_loss_price = stop_loss_price(position.avg_entry_price, bot.stop_loss_pct)
        if bot and bot.take_profit_pct is not None:
            position.take_profit_price = take_profit_price(
                position.avg_entry_price, bot.take_profit_pct
            )
    else:
        # The exit was linked to its position when recorded: never guess by the bot's settings.
        position = (
            Position.objects.select_for_update().filter(pk=trade.position_id).first()
            if trade.position_id
            else None
        )
        if position is None or not position.is_open:
            logger.warning("Sell fill for %s with no open position to book it on", trade)
            return position
        position.bot = bot  # the same row: saves reading it again for the pushed row
        sold = min(qty, position.qty)
        pnl = (price - position.avg_entry_price) * sold
        position.realized_pnl = ((position.realized_pnl or 0) + pnl).quantize(PRICE_PLACES)
        if sold < position.qty:
            position.qty -= sold
        else:
            # Closed: qty keeps what was held at the close, for the closed-positions table.
            position.is_open = False
            position.exit_price = price.quantize(PRICE_PLACES)
            position.closed_at = now
    opened = position.pk is None
    position.save()
    transaction.on_commit(lambda: live_updates.position_changed(position, created=opened))
    if bot is not None:
        bot_services.broadcast_bot(bot)
    return position


def _notify(trade: Trade, created: bool = False) -> None:
    transaction.on_commit(lambda: live_updates.trade_changed(trade, created))
