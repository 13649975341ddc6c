"""The order path: the one way the engine, the emergency sell and the commands place orders.

1. The Trade is written (status ``pending``, with its client_order_id and reason) and committed
   BEFORE the order is sent, so a crash or timeout leaves a record the next sync can complete.
2. The order goes to the broker under that client_order_id; the gateway itself resolves unknown
   outcomes by looking the id up, so an intent is never sent twice nor under a second id.
3. The Trade follows the broker's answer; positions change only from actual fills.
"""

import logging
import re
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bots import services as bot_services
from bots.models import Bot
from bots.strategy import stop_loss_price, take_profit_price

from . import live_updates
from .broker import BrokerError, NotFound, Order, OrderRejected, OrderSide, get_broker
from .models import Position, Trade

logger = logging.getLogger(__name__)

PRICE_PLACES = Decimal("0.0001")  # as the models store money
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


def place_order(
    bot: Bot | None,
    side: str,
    qty: Decimal,
    reason: str,
    *,
    symbol: str | None = None,
    verify: bool = True,
) -> Trade:
    """Record the intent, send it, and (unless told not to) verify the fill."""
    return send_intent(record_intent(bot, side, qty, reason, symbol=symbol), verify=verify)


def record_intent(
    bot: Bot | None, side: str, qty: Decimal, reason: str, *, symbol: str | None = None
) -> Trade:
    """The write-ahead half of placing an order (callers holding a lock use it inside their
    transaction, then call send_intent after it commits)."""
    trade = Trade.objects.create(
        bot=bot,
        symbol=symbol or bot.symbol,
        side=side,
        qty=qty,
        reason=reason,
        client_order_id=generate_client_order_id(bot),
    )
    _notify(trade, created=True)
    return trade


def send_intent(trade: Trade, *, verify: bool = True) -> Trade:
    if transaction.get_connection().in_atomic_block:
        # The intent must be committed before the order leaves, or a crash could lose it.
        raise RuntimeError("Orders must not be sent inside a transaction")
    trade = submit(trade)
    if verify and trade.is_open:
        trade = verify_fill(trade)
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
    except BrokerError as error:
        # Outcome unknown even after the gateway's own lookups: the sync asks again later.
        logger.warning("Order %s outcome unknown: %s", trade.client_order_id, error)
        return _mark(trade, Trade.Status.UNKNOWN, str(error))
    return record_order(trade, order)


def verify_fill(trade: Trade) -> Trade:
    """Wait, then re-check a few times; store the broker's true status, never assume a fill."""
    delay = settings.ORDER_VERIFY_DELAY_SECONDS
    for _ in range(1 + settings.ORDER_VERIFY_RETRIES):
        time.sleep(delay)
        try:
            trade = refresh(trade)
        except BrokerError as error:
            logger.warning("Could not verify order %s: %s", trade.client_order_id, error)
        if not trade.is_open:
            return trade
    logger.warning(
        "Order %s still %s after verification; the order sync will follow it",
        trade.client_order_id, trade.status,
    )  # fmt: skip
    return trade


def refresh(trade: Trade) -> Trade:
    broker = get_broker()
    if trade.order_id:
        order = broker.get_order(trade.order_id)
    else:
        order = broker.get_order_by_client_order_id(trade.client_order_id)
    return record_order(trade, order)


def sync_open_orders() -> dict[str, int]:
    """Complete every Trade the broker may have moved on since we last looked: pending intents
    (maybe never sent), unknown outcomes, accepted and partially filled orders."""
    counts = {"checked": 0, "updated": 0, "resent": 0, "abandoned": 0, "failed": 0}
    for trade in Trade.objects.filter(status__in=Trade.OPEN_STATUSES).order_by("created_at"):
        counts["checked"] += 1
        before = (trade.status, trade.filled_qty)
        try:
            trade = refresh(trade)
        except NotFound:
            counts[_complete_unsent(trade)] += 1
            continue
        except BrokerError as error:
            logger.warning("Sync of %s failed: %s", trade.client_order_id, error)
            counts["failed"] += 1
            continue
        if (trade.status, trade.filled_qty) != before:
            counts["updated"] += 1
    return counts


def _complete_unsent(trade: Trade) -> str:
    """The broker has no order for this intent: it never left (a crash between write and send)."""
    age = timezone.now() - trade.created_at
    if age <= timedelta(seconds=settings.ORDER_INTENT_TTL_SECONDS):
        submit(trade)  # same client_order_id: the broker refuses a second order for it
        return "resent"
    # A signal from minutes ago is no reason to trade now.
    _mark(trade, Trade.Status.CANCELED, "Never reached the broker; not sent after the fact.")
    return "abandoned"


def _mark(trade: Trade, status: str, message: str) -> Trade:
    trade.status = status
    trade.error_message = message
    trade.save(update_fields=["status", "error_message", "updated_at"])
    _notify(trade)
    return trade


def record_order(trade: Trade, order: Order) -> Trade:
    """Bring the Trade in line with the broker's order, applying any new fill to the position."""
    with transaction.atomic():
        trade = Trade.objects.select_for_update().get(pk=trade.pk)
        new_fill = order.filled_qty - trade.filled_qty
        if new_fill > 0 and order.filled_avg_price is not None:
            # The average over all fills, minus what was already booked, prices this fill.
            booked = trade.filled_qty * (trade.price or 0)
            fill_price = (order.filled_qty * order.filled_avg_price - booked) / new_fill
            fill_price = fill_price.quantize(PRICE_PLACES)
            position = _apply_fill(trade, new_fill, fill_price)
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
        trade.save()
        _notify(trade)
    return trade


def _apply_fill(trade: Trade, qty: Decimal, price: Decimal) -> Position | None:
    bot = trade.bot
    position = (
        Position.objects.select_for_update().filter(bot=bot, is_open=True).first() if bot else None
    )
    now = timezone.now()
    if trade.side == Trade.Side.BUY:
        if position is None:
            position = Position(
                bot=bot, symbol=trade.symbol, qty=0, avg_entry_price=price,
                entry_reason=trade.reason or "", opened_at=now,
            )  # fmt: skip
        total = position.qty + qty
        average = (position.qty * position.avg_entry_price + qty * price) / total
        position.avg_entry_price = average.quantize(PRICE_PLACES)
        position.qty = total
        if bot and bot.stop_loss_pct:
            position.stop_loss_price = stop_loss_price(position.avg_entry_price, bot.stop_loss_pct)
        if bot and bot.take_profit_pct:
            position.take_profit_price = take_profit_price(
                position.avg_entry_price, bot.take_profit_pct
            )
    else:
        if position is None:
            logger.warning("Sell fill for %s with no open position of its bot", trade)
            return None
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
    position.save()
    transaction.on_commit(lambda: live_updates.position_changed(position))
    if bot is not None:
        bot_services.broadcast_bot(bot)
    return position


def _notify(trade: Trade, created: bool = False) -> None:
    transaction.on_commit(lambda: live_updates.trade_changed(trade, created))
