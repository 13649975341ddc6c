"""Getting out: close a position at market (and pause its bot), or everything at once.

The sell goes through the order path (write-ahead Trade, client_order_id, reason "Manual close").
A close is idempotent: while a closing order for the position is in flight, asking again returns
that order instead of sending another. The request does not wait out the fill verification: the
answer comes once the broker accepted the order, the fill arrives over the WebSocket.
"""

import logging
from dataclasses import dataclass

from django.db import transaction

from bots import services as bot_services
from bots.models import Bot
from tradebots import live

from .models import Position, Trade
from .orders import record_intent, send_intent
from .positions import UnmanagedPosition, unmanaged_positions

logger = logging.getLogger(__name__)

MANUAL_CLOSE = "Manual close"
EMERGENCY_PAUSE_REASON = "Emergency sell"


class CloseRefused(Exception):
    """The close cannot happen (already closed, rejected by the broker, ...); nothing changed."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class CloseResult:
    trade: Trade
    bot: Bot | None
    already_in_flight: bool = False

    @property
    def message(self) -> str:
        if self.trade.status == Trade.Status.FILLED:
            done = "Position closed."
        else:
            done = f"Sell order {self.trade.get_status_display().lower()}; the fill follows."
        if self.bot is not None and self.bot.status == Bot.Status.PAUSED:
            return f"{done} Bot '{self.bot.name}' has been paused."
        return done


def close_position(position: Position, actor: str, pause_bot: bool = True) -> CloseResult:
    with transaction.atomic():
        locked = (
            Position.objects.select_for_update(of=("self",))
            .select_related("bot")
            .get(pk=position.pk)
        )
        if not locked.is_open:
            raise CloseRefused(f"The {locked.symbol} position is already closed.")
        in_flight = _closing_trade(locked)
        if in_flight is not None:
            return CloseResult(in_flight, locked.bot, already_in_flight=True)
        trade = record_intent(
            locked.bot, Trade.Side.SELL, locked.qty, MANUAL_CLOSE, symbol=locked.symbol
        )
        Trade.objects.filter(pk=trade.pk).update(position=locked)
    trade = send_intent(trade, verify=False)
    if trade.status in (Trade.Status.REJECTED, Trade.Status.CANCELED, Trade.Status.EXPIRED):
        raise CloseRefused(
            f"The broker refused to sell {locked.symbol}: {trade.error_message or trade.status}. "
            "The position is still open.",
            status=502,
        )
    bot = locked.bot
    if pause_bot and bot is not None and bot.status == Bot.Status.RUNNING:
        bot = bot_services.pause_bot(bot, actor, reason=f"{EMERGENCY_PAUSE_REASON} by {actor}")
    if trade.is_open:
        _verify_later(trade)
        _push_closing_row(locked)
    return CloseResult(trade, bot)


def _closing_trade(position: Position) -> Trade | None:
    return (
        Trade.objects.filter(
            position=position, side=Trade.Side.SELL, status__in=Trade.OPEN_STATUSES
        )
        .order_by("created_at")
        .first()
    )


def _verify_later(trade: Trade) -> None:
    from .tasks import verify_trade

    transaction.on_commit(lambda: verify_trade.delay(trade.pk))


def _push_closing_row(position: Position) -> None:
    live.broadcast(
        "trading/partials/position_live.html",
        {"position": position, "part": "update", "closing": True},
    )


def close_unmanaged(symbol: str, actor: str) -> Trade:
    """Close what the broker holds of ``symbol`` beyond our books; no bot is affected."""
    held = {position.symbol: position for position in unmanaged_positions()}.get(symbol)
    if held is None:
        raise CloseRefused(f"There is no unmanaged {symbol} position.", status=404)
    return _close_unmanaged(held, actor)


def _close_unmanaged(held: UnmanagedPosition, actor: str) -> Trade:
    side = Trade.Side.SELL if held.qty > 0 else Trade.Side.BUY
    trade = record_intent(None, side, abs(held.qty), f"{MANUAL_CLOSE} (unmanaged, by {actor})",
                          symbol=held.symbol)  # fmt: skip
    trade = send_intent(trade, verify=False)
    if trade.status == Trade.Status.REJECTED:
        raise CloseRefused(f"The broker refused: {trade.error_message}", status=502)
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
    for position in Position.objects.filter(is_open=True).select_related("bot"):
        try:
            closed.append(close_position(position, actor, pause_bot=False))
        except CloseRefused as error:
            failed.append(f"{position.symbol}: {error.message}")
    return EmergencyStopReport(closed=closed, failed=failed, paused=paused)
