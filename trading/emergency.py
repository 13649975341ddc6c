"""Getting out: close a position at market (and pause its bot), or everything at once.

The sell goes through the order path (write-ahead Trade, client_order_id, reason "Manual close").
One exit at a time: while a sell of the position is in flight (the engine's or a manual one),
asking again joins it instead of sending another. The request waits on the broker for a short
interactive timeout at most, never for the fill: that arrives over the WebSocket. A close whose
outcome is unknown is said so plainly and is never dropped: a task and the order sync keep
resolving it by its client_order_id, however long the broker is away.
"""

import logging
from dataclasses import dataclass

from bots import services as bot_services
from bots.models import Bot
from tradebots.broker import (
    BrokerError,
    OrderRejected,
    Priority,
    get_broker,
    interactive,
    request_priority,
)
from tradebots.redis_client import redis_client

from . import live_updates
from .models import Position, Trade
from .orders import (
    OrderRefused,
    follow_later,
    open_trades,
    outcome_told_by_caller,
    record_sell_intent,
    record_unmanaged_intent,
    refresh,
    send_intent,
)
from .positions import UnmanagedPosition, unmanaged_positions

logger = logging.getLogger(__name__)

MANUAL_CLOSE = "Manual close"
UNMANAGED_LOCK_KEY = "tradebots:unmanaged-close:{symbol}"
EMERGENCY_PAUSE_REASON = "Emergency sell"


class CloseRefused(Exception):
    """The close cannot happen (already closed, rejected by the broker, ...); the position is
    unchanged (a refused sell still leaves the bot paused, as asked)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


UNCONFIRMED = "not confirmed yet; the position stays open until the broker confirms; we keep trying"


@dataclass(frozen=True)
class CloseResult:
    trade: Trade
    bot: Bot | None
    already_in_flight: bool = False

    @property
    def confirmed(self) -> bool:
        """Whether the broker has acknowledged the sell (it may still be filling)."""
        return self.trade.status not in (Trade.Status.PENDING, Trade.Status.UNKNOWN)

    @property
    def message(self) -> str:
        if self.trade.status == Trade.Status.FILLED:
            done = "Position closed."
        elif not self.confirmed:
            done = f"Sell order for {self.trade.symbol} {UNCONFIRMED}."
        else:
            done = f"Sell order {self.trade.get_status_display().lower()}; the fill follows."
        if self.already_in_flight:
            done = f"A sell of this position is already in flight. {done}"
        if self.bot is not None and self.bot.status == Bot.Status.PAUSED:
            return f"{done} Bot '{self.bot.name}' has been paused."
        return done


def close_position(
    position: Position, actor: str, pause_bot: bool = True, *, send_now: bool = True
) -> CloseResult:
    """Sell the whole position at market and (by default) pause its bot.

    One exit at a time: if a sell of the position is in flight (the engine's or an earlier
    click), this joins it. If the bot's buy is still open, it is canceled first, so that the
    position stops growing and the sell covers all of it. The request waits on the broker for
    a short interactive timeout at most; an unknown outcome is said so and followed by a task
    (and the order sync), which keep resolving it by client_order_id until the broker answers.
    ``send_now=False`` only records the intent and leaves the sending to that task."""
    try:
        trade = _record_close(position, may_cancel=send_now)
    except _JoinedExit as joined:
        return CloseResult(joined.trade, _pause(joined.trade.bot, actor, pause_bot),
                           already_in_flight=True)  # fmt: skip
    # The bot is paused before its sell goes out (as the kill switch does): it never shows
    # "running" beside a closed position, and no tick can act on it meanwhile.
    bot = _pause(trade.bot, actor, pause_bot)
    if send_now:
        with interactive(), request_priority(Priority.EXIT), outcome_told_by_caller():
            trade = send_intent(trade, verify=False)
    if trade.status in (Trade.Status.REJECTED, Trade.Status.CANCELED, Trade.Status.EXPIRED):
        paused = (
            f" Bot '{bot.name}' stays paused." if bot and bot.status == Bot.Status.PAUSED else ""
        )
        raise CloseRefused(
            f"The broker refused to sell {trade.symbol}: {trade.error_message or trade.status}. "
            f"The position is still open.{paused}",
            status=502,
        )
    if trade.is_open:
        follow_later(trade)
        _push_closing_row(trade.position)
    return CloseResult(trade, bot)


class _JoinedExit(Exception):
    def __init__(self, trade: Trade):
        self.trade = trade


def _record_close(position: Position, may_cancel: bool = True) -> Trade:
    for attempt in range(2):
        try:
            return record_sell_intent(position, MANUAL_CLOSE, origin=Trade.Origin.MANUAL)
        except OrderRefused as refused:
            blocking = refused.in_flight
            if blocking is None:
                raise CloseRefused(refused.message) from None
            if blocking.side == Trade.Side.SELL:
                # The operator's close now rides on this sell: never abandoned nor canceled
                # as stale, and its outcome is told, as for any manual close.
                Trade.objects.filter(pk=blocking.pk, status__in=Trade.OPEN_STATUSES).update(
                    origin=Trade.Origin.MANUAL
                )
                blocking.origin = Trade.Origin.MANUAL
                raise _JoinedExit(blocking) from None
            if attempt == 0 and may_cancel and _cancel_entry(blocking):
                continue
            raise CloseRefused(
                f"The bot's buy order {blocking.client_order_id} is still open at the broker; "
                "its cancellation was requested. Press SELL again in a moment.",
            ) from None
    raise AssertionError("unreachable")


def _cancel_entry(trade: Trade) -> bool:
    """Cancel an open buy of the bot (what filled is booked); True once it is no longer open."""
    try:
        with interactive(), request_priority(Priority.EXIT):
            if trade.order_id:
                try:
                    get_broker().cancel_order(trade.order_id)
                except OrderRejected:  # filled or canceled meanwhile: the refresh tells
                    pass
            trade = refresh(trade)
    except BrokerError as error:
        logger.warning("Could not cancel %s before a manual close: %s", trade, error)
        return False
    return not trade.is_open


def _pause(bot: Bot | None, actor: str, pause_bot: bool) -> Bot | None:
    if pause_bot and bot is not None and bot.status == Bot.Status.RUNNING:
        try:
            return bot_services.pause_bot(bot, actor, reason=f"{EMERGENCY_PAUSE_REASON} by {actor}")
        except bot_services.BotError as error:  # changed status meanwhile
            logger.warning("Could not pause %s: %s", bot, error)
        except Exception:  # noqa: BLE001 - the sell the trader asked for matters more
            logger.exception("Could not pause %s before its emergency sell", bot)
    return bot


def _push_closing_row(position: Position | None) -> None:
    if position is None:
        return
    live_updates.position_changed(position)


def close_unmanaged(symbol: str, actor: str) -> Trade:
    """Close what the broker holds of ``symbol`` beyond our books; no bot is affected."""
    # One close of a symbol's excess at a time: a second click must not sell it again (on a
    # margin account that would open a short).
    lock = redis_client().lock(UNMANAGED_LOCK_KEY.format(symbol=symbol), timeout=60)
    if not lock.acquire(blocking=True, blocking_timeout=10):
        raise CloseRefused(f"A close of the unmanaged {symbol} shares is under way.")
    try:
        in_flight = open_trades().filter(bot=None, position=None, symbol=symbol).first()
        if in_flight is not None:
            raise CloseRefused(
                f"A close of the unmanaged {symbol} shares is already in flight "
                f"({in_flight.client_order_id}, {in_flight.get_status_display().lower()})."
            )
        held = {position.symbol: position for position in unmanaged_positions()}.get(symbol)
        if held is None:
            raise CloseRefused(f"There is no unmanaged {symbol} position.", status=404)
        return _close_unmanaged(held, actor)
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - expired: nothing left to release
            logger.warning("The unmanaged close of %s outlived its lock", symbol)


def _close_unmanaged(held: UnmanagedPosition, actor: str) -> Trade:
    side = Trade.Side.SELL if held.qty > 0 else Trade.Side.BUY
    trade = record_unmanaged_intent(
        held.symbol, side, abs(held.qty), f"{MANUAL_CLOSE} (unmanaged, by {actor})"
    )
    with interactive(), request_priority(Priority.EXIT), outcome_told_by_caller():
        trade = send_intent(trade, verify=False)
    if trade.status == Trade.Status.REJECTED:
        raise CloseRefused(f"The broker refused: {trade.error_message}", status=502)
    if trade.is_open:
        follow_later(trade)
    return trade


@dataclass
class EmergencyStopReport:
    closed: list[CloseResult]
    failed: list[str]
    paused: list[Bot]


def emergency_counts() -> dict[str, int]:
    return {
        "positions": Position.objects.filter(is_open=True).count(),
        "bots": Bot.objects.filter(status=Bot.Status.RUNNING).count(),
    }


def emergency_stop(actor: str) -> EmergencyStopReport:
    """Pause every running bot first (so no new orders start), then close every managed
    position. One failure does not stop the rest; each is reported."""
    paused = []
    for bot in Bot.objects.filter(status=Bot.Status.RUNNING):
        try:
            paused.append(bot_services.pause_bot(bot, actor, reason=f"Emergency stop by {actor}"))
        except bot_services.BotError as error:  # changed status meanwhile
            logger.warning("Emergency stop could not pause %s: %s", bot, error)
    closed, failed = [], []
    broker_answers = True
    for position in Position.objects.filter(is_open=True).select_related("bot"):
        try:
            result = close_position(position, actor, pause_bot=False, send_now=broker_answers)
        except CloseRefused as error:
            failed.append(f"{position.symbol}: {error.message}")
            continue
        closed.append(result)
        # Once the broker does not answer, waiting on it again per position would keep the
        # operator waiting N timeouts: the rest are recorded and sent by their tasks.
        broker_answers = broker_answers and result.trade.status != Trade.Status.UNKNOWN
    return EmergencyStopReport(closed=closed, failed=failed, paused=paused)
