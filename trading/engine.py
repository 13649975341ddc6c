"""The trading engine: what a tick does.

A tick reads the market clock once, groups the running bots by timeframe and symbol, and hands
batches of up to ENGINE_BATCH_SYMBOLS symbols to workers. A batch makes one market-data call for
all its symbols (bars) and one for their latest prices, evaluates each distinct strategy once per
symbol, then lets each bot decide: a bot with an open order waits for it (its exposure is its
position plus its open orders); otherwise stop-loss / take-profit first, then its sell rule when
holding, its buy rule when flat. Exits are sent before entries. The open pages of the batch's
bots then get their charts again, drawn from the same bars (bots.charts.push_charts). Fills are
verified by a task, never by sleeping here. A bot is evaluated by one worker at a time (a Redis
lock shared by every process and machine), and one bot's failure never stops the others.
"""

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from pydantic import ValidationError

from bots import charts
from bots import services as bot_services
from bots.models import Bot
from bots.schema import StrategyConfig, validation_errors
from bots.strategy import (
    Action,
    evaluate,
    stop_loss_reason,
    take_profit_reason,
    warmup_bars,
)
from tradebots import live
from tradebots.broker import BrokerError, Clock, Priority, get_broker, request_priority
from tradebots.redis_client import redis_client

from .models import Position, Trade
from .orders import (
    PROTECTIVE_EXIT,
    RUNNING_ONLY,
    OrderRefused,
    open_trades,
    record_buy_intent,
    record_sell_intent,
    send_intent,
    waiting_message,
)

logger = logging.getLogger(__name__)

MARKET_STATUS_CACHE_KEY = "engine-market-status"
PAUSED_HOLD_REASON = "Paused: only its stop-loss and take-profit are watched"
REJECTIONS_CACHE_KEY = "engine-rejections-{bot_id}"
GROUP_LOCK_KEY = "tradebots:engine:{timeframe}:{symbol}"
GROUP_LOCK_SECONDS = 120  # longer than any evaluation; expires if a worker dies holding it
EXTRA_BARS = 50  # beyond the strategies' warm-up, so EMA-type indicators settle
FRACTION = Decimal("0.001")  # fractional quantities are bought to a thousandth of a share


@dataclass(frozen=True)
class Batch:
    timeframe: str
    symbols: tuple[str, ...]


@dataclass
class BotOutcome:
    bot_id: str
    bot_name: str
    symbol: str
    action: str  # buy, sell, hold, waiting, skipped, error
    reason: str
    trade_status: str | None = None

    def describe(self) -> str:
        trade = f" → order {self.trade_status}" if self.trade_status else ""
        return f"{self.bot_name} ({self.symbol}): {self.action.upper()} – {self.reason}{trade}"


@dataclass
class TickReport:
    market_open: bool
    batches: list[Batch] = field(default_factory=list)
    outcomes: list[BotOutcome] = field(default_factory=list)


# --- the tick ----------------------------------------------------------------------------------


def plan_batches(bots: Iterable[Bot]) -> list[Batch]:
    symbols_by_timeframe: dict[str, set[str]] = defaultdict(set)
    for bot in bots:
        symbols_by_timeframe[bot.timeframe].add(bot.symbol)
    size = settings.ENGINE_BATCH_SYMBOLS
    batches = []
    for timeframe, symbols in sorted(symbols_by_timeframe.items()):
        ordered = sorted(symbols)
        batches.extend(
            Batch(timeframe, tuple(ordered[start : start + size]))
            for start in range(0, len(ordered), size)
        )
    return batches


def run_tick(dispatch: Callable[[Batch], list[BotOutcome] | None]) -> TickReport:
    """One tick. ``dispatch`` runs a batch: on a Celery worker (engine_tick) or right here (the
    management command), in which case its outcomes are collected in the report."""
    clock = get_broker().get_clock()
    record_market_status(clock)
    live.broadcast(
        live.DASHBOARD_GROUP, "trading/partials/market_status.html", {"market": market_status()}
    )
    if not clock.is_open:
        return TickReport(market_open=False)
    evaluated = evaluated_bots(Bot.objects.all()).only("symbol", "timeframe")
    report = TickReport(market_open=True, batches=plan_batches(evaluated))
    for batch in report.batches:
        report.outcomes.extend(dispatch(batch) or [])
    return report


def record_market_status(clock: Clock) -> None:
    cache.set(
        MARKET_STATUS_CACHE_KEY,
        {
            "is_open": clock.is_open,
            "next_open": clock.next_open.isoformat(),
            "next_close": clock.next_close.isoformat(),
            "checked_at": clock.timestamp.isoformat(),
        },
        timeout=None,
    )


def market_status() -> dict | None:
    """What the last tick learned of the market clock (for the dashboard)."""
    try:
        stored = cache.get(MARKET_STATUS_CACHE_KEY)
    except redis.RedisError:
        return None
    if not stored:
        return None
    return {
        "is_open": stored["is_open"],
        **{
            name: datetime.fromisoformat(stored[name])
            for name in ("next_open", "next_close", "checked_at")
        },
    }


# --- a batch -----------------------------------------------------------------------------------


def evaluate_batch(batch: Batch) -> list[BotOutcome]:
    # A bot is only ever evaluated with the other bots of its (timeframe, symbol), so one lock
    # per such group keeps every bot to one evaluation at a time, with few Redis round trips.
    locks, busy = {}, []
    for symbol in batch.symbols:
        lock = redis_client().lock(
            GROUP_LOCK_KEY.format(timeframe=batch.timeframe, symbol=symbol),
            timeout=GROUP_LOCK_SECONDS,
        )
        if lock.acquire(blocking=False):
            locks[symbol] = lock
        else:
            busy.append(symbol)
    try:
        outcomes = [
            _outcome(bot, "skipped", "Being evaluated by another worker")
            for bot in evaluated_bots(
                Bot.objects.filter(timeframe=batch.timeframe, symbol__in=busy)
            ).only("pk", "name", "symbol")
        ]
        if locks:
            evaluated = _evaluate_locked_bots(Batch(batch.timeframe, tuple(locks)))
            _remember_outcomes(evaluated)
            outcomes.extend(evaluated)
    finally:
        for lock in locks.values():
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("An engine lock expired during the tick: evaluation ran too long")
    return outcomes


def _remember_outcomes(outcomes: list[BotOutcome]) -> None:
    """Each evaluated bot's decision, why and when, on the bot (one statement for the batch),
    and its card pushed where a page shows it: the trader sees what the bot last thought and
    when it thinks next."""
    if not outcomes:
        return
    now = timezone.now()
    bots = [
        Bot(pk=o.bot_id, last_action=o.action, last_reason=o.reason[:300], last_evaluated_at=now)
        for o in outcomes
    ]
    Bot.objects.bulk_update(bots, ["last_action", "last_reason", "last_evaluated_at"])
    # Cards are rendered only when a page shows them: the bots list, or the bot's own page.
    watched = live.watched_groups(["bots", *(live.bot_group(bot.pk) for bot in bots)])
    with live.coalesced():
        for bot in bots:
            if "bots" in watched or live.bot_group(bot.pk) in watched:
                bot_services.broadcast_bot(bot)


def _evaluate_locked_bots(batch: Batch) -> list[BotOutcome]:
    # Read under the locks: a bot paused, or a position opened, since the tick began counts.
    bots = list(
        evaluated_bots(Bot.objects.filter(timeframe=batch.timeframe, symbol__in=batch.symbols))
    )
    if not bots:
        return []
    # A bot's exposure is its position plus its open orders: while one is open it waits. Orders
    # are read first: one that fills in between then shows as a position, never as nothing.
    waiting = {trade.bot_id: trade for trade in open_trades().filter(bot__in=bots)}
    positions = {
        position.bot_id: position
        for position in Position.objects.filter(bot__in=bots, is_open=True)
    }
    strategies, outcomes = {}, []
    for bot in bots:
        try:
            strategies[bot.pk] = StrategyConfig.model_validate(bot.strategy)
        except ValidationError as error:
            # Stored before every entry point validated it: this bot waits to be fixed, the
            # others trade.
            problems = " ".join(m for found in validation_errors(error).values() for m in found)
            outcomes.append(_outcome(bot, "error", f"Invalid strategy: {problems}"))
    bots = [bot for bot in bots if bot.pk in strategies]
    if not bots:
        return outcomes
    # Enough for the bots' pages too: the chart pushed after this tick is drawn from these bars
    # (same one request; Alpaca returns a time window that holds them all anyway).
    needed = max(
        max(warmup_bars(strategy) + EXTRA_BARS, charts.bars_needed(strategy))
        for strategy in strategies.values()
    )
    broker = get_broker()
    try:
        # Exits depend on this data too, so it is fetched at their priority.
        with request_priority(Priority.EXIT):
            bars = broker.get_bars(list(batch.symbols), batch.timeframe, needed)
            prices = broker.get_latest_prices(list(batch.symbols))
    except BrokerError as error:
        logger.warning("Market data for %s unavailable: %s", batch, error)
        skipped = [_outcome(bot, "skipped", f"Market data unavailable: {error}") for bot in bots]
        return outcomes + skipped
    market = BatchMarket(bars)
    decisions = []
    for bot in bots:
        try:
            decided = _decide(
                bot, strategies[bot.pk], prices.get(bot.symbol), positions.get(bot.pk),
                waiting.get(bot.pk), market,
            )  # fmt: skip
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: stop here, well before the group lock expires
        except Exception as error:  # noqa: BLE001 - one bot's failure must not stop the tick
            logger.exception("Engine failed on bot %s", bot.pk)
            decided = _outcome(bot, "error", f"{type(error).__name__}: {error}")
        (decisions if isinstance(decided, Decision) else outcomes).append(decided)
    # Exits (stop-loss, take-profit, sell signals) go before entries, for the request budget.
    decisions.sort(key=lambda decision: decision.side != Trade.Side.SELL)
    # One read of the rejection streaks for the batch instead of a write per order.
    streaks = cache.get_many(
        [REJECTIONS_CACHE_KEY.format(bot_id=decision.bot.pk) for decision in decisions]
    )
    with live.coalesced():
        for decision in decisions:
            try:
                outcomes.append(_execute(decision, streaks))
            except SoftTimeLimitExceeded:
                raise
            except Exception as error:  # noqa: BLE001
                logger.exception("Engine failed on bot %s", decision.bot.pk)
                outcomes.append(_outcome(decision.bot, "error", f"{type(error).__name__}: {error}"))
        # Rendered when the block ends, after this tick's orders: their fills are on the chart.
        charts.push_charts(((bot, strategies[bot.pk]) for bot in bots), bars)
    return outcomes


class BatchMarket:
    """What one batch knows of its market: each distinct (symbol, strategy, holding) evaluated
    once however many bots share it, and whether a symbol trades in fractions."""

    def __init__(self, bars):
        self.bars = bars
        self._signals = {}
        self._fractionable = {}

    def fractionable(self, symbol: str) -> bool:
        """Asked of the broker once per symbol and batch, only for bots that allow fractions."""
        if symbol not in self._fractionable:
            try:
                self._fractionable[symbol] = get_broker().get_asset(symbol).fractionable
            except BrokerError as error:
                logger.warning("Cannot tell whether %s is fractionable: %s", symbol, error)
                self._fractionable[symbol] = False
        return self._fractionable[symbol]

    def get(self, symbol: str, strategy: StrategyConfig, holding: bool):
        key = (symbol, strategy, holding)  # StrategyConfig is a frozen, hashable model
        if key not in self._signals:
            self._signals[key] = evaluate(strategy, self.bars.get(symbol, []), holding=holding)
        return self._signals[key]


@dataclass(frozen=True)
class Decision:
    """An order a bot wants to place this tick."""

    bot: Bot
    side: str
    reason: str
    qty: Decimal | None = None  # buys; a sell is always of the whole position
    position: Position | None = None  # sells
    price: Decimal | None = None  # what the decision was made at
    protective: bool = False  # a stop-loss or take-profit exit: it stands for a paused bot too


def evaluated_bots(bots):
    """Running bots trade on their signals. A paused bot that holds a position is evaluated too,
    for its stop-loss and take-profit only: pausing stops new trades, not the protection a
    trader set on what the bot already holds. Stopped bots are not evaluated."""
    paused_holding = Q(status=Bot.Status.PAUSED, positions__is_open=True)
    return bots.filter(Q(status=Bot.Status.RUNNING) | paused_holding).distinct()


def _decide(
    bot: Bot, strategy: StrategyConfig, price: Decimal | None, position, waiting, market
) -> "Decision | BotOutcome":
    if waiting is not None:
        return _outcome(bot, "waiting", waiting_message(waiting))
    if position is not None and position.symbol != bot.symbol:
        # Only possible for books from before symbol changes were refused: never trade one
        # symbol on another's price.
        return _outcome(
            bot, "skipped", f"Holds {position.symbol} but trades {bot.symbol}: close it first"
        )
    if price is None:
        return _outcome(bot, "skipped", f"No price for {bot.symbol}")
    if position is not None:
        if position.stop_loss_price is not None and price <= position.stop_loss_price:
            return Decision(bot, Trade.Side.SELL, stop_loss_reason(position.stop_loss_price),
                            position=position, price=price, protective=True)  # fmt: skip
        if position.take_profit_price is not None and price >= position.take_profit_price:
            return Decision(bot, Trade.Side.SELL, take_profit_reason(position.take_profit_price),
                            position=position, price=price, protective=True)  # fmt: skip
        if bot.status != Bot.Status.RUNNING:
            return _outcome(bot, "hold", PAUSED_HOLD_REASON)
        signal = market.get(bot.symbol, strategy, holding=True)
        if signal.action == Action.SELL:
            return Decision(bot, Trade.Side.SELL, signal.reason, position=position, price=price)
        return _outcome(bot, "hold", signal.reason)
    if bot.status != Bot.Status.RUNNING:  # flat again since the tick began
        return _outcome(bot, "hold", PAUSED_HOLD_REASON)
    signal = market.get(bot.symbol, strategy, holding=False)
    if signal.action != Action.BUY:
        return _outcome(bot, "hold", signal.reason)
    if bot.allow_fractional and market.fractionable(bot.symbol):
        qty = (bot.capital / price).quantize(FRACTION, rounding=ROUND_DOWN)
    else:
        qty = Decimal(math.floor(bot.capital / price))
    if qty <= 0:
        return _outcome(bot, "hold", f"Capital {bot.capital} buys no share at {price}")
    return Decision(bot, Trade.Side.BUY, signal.reason, qty=qty, price=price)


def _execute(decision: Decision, streaks: dict) -> BotOutcome:
    bot = decision.bot
    exiting = decision.side == Trade.Side.SELL
    with request_priority(Priority.EXIT if exiting else Priority.ENTRY):
        try:
            if exiting:
                # Checked again under the bot's lock: a stop-loss / take-profit sells for a
                # running or paused bot, a signal sell only for a running one.
                statuses = PROTECTIVE_EXIT if decision.protective else RUNNING_ONLY
                trade = record_sell_intent(decision.position, decision.reason, statuses=statuses)
            else:
                trade = record_buy_intent(
                    bot, decision.qty, decision.reason, symbol=bot.symbol,
                    expected_price=decision.price, require_running=True,
                )  # fmt: skip
        except OrderRefused as refused:  # a manual close or another order got there first
            return _outcome(bot, "waiting", refused.message)
        trade = send_intent(trade)
    _count_rejections(bot, trade, streaks)
    return _outcome(bot, decision.side, decision.reason, trade.status)


def _count_rejections(bot: Bot, trade: Trade, streaks: dict) -> None:
    """``streaks``: the rejection counts read for the batch (absent: none in a row)."""
    key = REJECTIONS_CACHE_KEY.format(bot_id=bot.pk)
    if trade.status != Trade.Status.REJECTED:
        if key in streaks:
            cache.delete(key)
        return
    rejections = (streaks.get(key) or 0) + 1
    cache.set(key, rejections, timeout=24 * 3600)
    if rejections >= settings.ENGINE_MAX_REJECTIONS:
        cache.delete(key)
        bot_services.mark_bot_error(
            bot,
            "engine",
            f"{rejections} orders rejected in a row; last: {trade.error_message}",
        )


def _outcome(bot: Bot, action: str, reason: str, trade_status: str | None = None) -> BotOutcome:
    return BotOutcome(str(bot.pk), bot.name, bot.symbol, action, reason, trade_status)
