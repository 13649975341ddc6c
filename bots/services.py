"""Bot use cases: create, update, delete, lifecycle, and the rules that guard them.

Every entry point (pages, JSON API, admin) calls these functions.

Capital. *Allocated* is the sum of every bot's capital, stopped ones included (the specification's
figure). Buying power falls as bots buy, so subtracting allocated from it would count invested
money twice. Instead each bot *reserves* what it may still spend:

    reserved = max(0, capital − cost of its open position − notional of its open buy orders)

where the cost of the open position is qty × avg_entry_price, and the notional of an open buy
Trade is its unfilled part, (qty − filled_qty) × expected_price: what already filled is in the
position's cost. A buy with no expected_price counts 0, so the bot keeps reserving its capital
(conservative). *Deployed* is the sum of those costs and notionals, and

    available = buying power − Σ reserved   (over ALL bots, stopped ones included).

Creating a bot, raising its capital and starting it are checked against available (update and
start: excluding that bot's own reservation), under the allocation lock so concurrent requests
cannot over-commit. Lowering capital, or changing anything else, is never refused for capital.

Exposure. A bot's exposure is its open position plus its open orders (Trades in
``Trade.OPEN_STATUSES``). While exposed, its symbol and timeframe cannot change and it cannot be
deleted. The check and the write happen under the bot's row lock, the same lock the order path
takes to record an intent, so the two cannot interleave.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.template.loader import render_to_string

from tradebots import account_refresh, live
from tradebots.broker import BrokerAuthRejected, BrokerError, NotFound, get_broker
from tradebots.money import format_money, plain_decimal

from .books import books
from .models import AllocationLock, Bot, BotStatusChange

ZERO = Decimal(0)
BOT_CARD = "bots/list.html#bot-card"
# Settings the engine's picture of a bot depends on: fixed while the bot is exposed.
LOCKED_WHILE_EXPOSED = ("symbol", "timeframe")


class BotError(Exception):
    """A use case refused; ``fields`` maps form fields to messages where one field is at fault."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class CapitalExceeded(BotError):
    pass


class BrokerUnreachable(BotError):
    pass


class BotExposed(BotError):
    """The bot holds a position or has an open order, so the change would orphan it."""


# --- capital -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapitalFigures:
    """Our books' side of the capital rule (see the module docstring)."""

    allocated: Decimal  # Σ capital
    reserved: Decimal  # Σ max(0, capital − invested)
    deployed: Decimal  # Σ invested: open position cost + unfilled open buy notional


@dataclass(frozen=True)
class CapitalSummary:
    buying_power: Decimal
    allocated: Decimal
    reserved: Decimal
    deployed: Decimal

    @property
    def available(self) -> Decimal:
        return self.buying_power - self.reserved


def get_allocated_capital(exclude_bot_id=None) -> Decimal:
    bots = Bot.objects.all()
    if exclude_bot_id is not None:
        bots = bots.exclude(pk=exclude_bot_id)
    return bots.aggregate(total=Sum("capital"))["total"] or Decimal(0)


def _capital_rows() -> list[tuple]:
    """(pk, capital, invested) of every bot, in one query."""
    return list(
        books().with_invested(Bot.objects.order_by()).values_list("pk", "capital", "invested")
    )


def _pk(bot_id):
    # Rows carry UUIDs; an id given as a string must still match its row.
    return None if bot_id is None else Bot._meta.pk.to_python(bot_id)


def _figures(rows) -> CapitalFigures:
    allocated = reserved = deployed = ZERO
    for _, capital, invested in rows:
        allocated += capital
        deployed += invested
        reserved += reservation(capital, invested)
    return CapitalFigures(allocated, reserved, deployed)


def reservation(capital: Decimal, invested: Decimal) -> Decimal:
    """What a bot with this capital and this much invested may still spend."""
    return max(ZERO, capital - invested)


def capital_figures(exclude_bot_id=None) -> CapitalFigures:
    """Allocated, reserved and deployed over all bots (but ``exclude_bot_id``), in one query."""
    excluded = _pk(exclude_bot_id)
    return _figures(row for row in _capital_rows() if row[0] != excluded)


def _split_capital(bot_id) -> tuple[CapitalFigures, Decimal, Decimal | None]:
    """The other bots' figures, and this bot's capital (None if absent) and invested amount, as
    stored now: from one query."""
    bot_id = _pk(bot_id)
    rows = _capital_rows()
    own = [(capital, invested) for pk, capital, invested in rows if pk == bot_id]
    capital, invested = own[0] if own else (None, ZERO)
    return _figures(row for row in rows if row[0] != bot_id), capital, invested


def _why_unchecked(error) -> tuple[str, str]:
    """(with detail, without) why the broker could not check: rejected keys say so."""
    if isinstance(error, BrokerAuthRejected):
        return str(error), str(error)
    return f"the broker is unreachable ({error})", "the broker is unreachable"


def get_buying_power() -> Decimal:
    try:
        return get_broker().get_account().buying_power
    except BrokerError as error:
        why, short = _why_unchecked(error)
        raise BrokerUnreachable(
            f"Cannot check capital: {why}. Nothing was changed.",
            {"capital": f"Cannot check available capital: {short}."},
        ) from error


def capital_summary(exclude_bot_id=None) -> CapitalSummary:
    buying_power = get_buying_power()
    figures = capital_figures(exclude_bot_id)
    return CapitalSummary(buying_power, figures.allocated, figures.reserved, figures.deployed)


def check_symbol(symbol: str) -> None:
    try:
        asset = get_broker().get_asset(symbol)
    except NotFound:
        raise BotError(
            f"Unknown symbol {symbol}.", {"symbol": f"Unknown symbol {symbol}."}
        ) from None
    except BrokerError as error:
        why, short = _why_unchecked(error)
        raise BrokerUnreachable(
            f"Cannot check the symbol: {why}.",
            {"symbol": f"Cannot check the symbol: {short}."},
        ) from error
    if not asset.tradable:
        message = f"{symbol} is not tradable at the broker."
        raise BotError(message, {"symbol": message})


def _check_capital(capital: Decimal, buying_power: Decimal, bot_id=None) -> None:
    """Raise unless a bot (``bot_id``, or a new one) with ``capital`` fits in the available
    capital excluding its own reservation; call with the allocation lock held."""
    others, _, invested = _split_capital(bot_id)
    available = buying_power - others.reserved
    needed = reservation(capital, invested)
    if needed <= available:
        return
    if invested:
        message = (
            f"Capital {format_money(capital)} would reserve {format_money(needed)} "
            f"({format_money(invested)} is already invested), more than the available "
            f"{format_money(available)} (buying power {format_money(buying_power)} − "
            f"reserved by other bots {format_money(others.reserved)})."
        )
    else:
        message = (
            f"Capital {format_money(capital)} exceeds the available {format_money(available)} "
            f"(buying power {format_money(buying_power)} − reserved "
            f"{format_money(others.reserved)})."
        )
    raise CapitalExceeded(message, {"capital": message})


def _lock_allocations() -> None:
    # A row lock on PostgreSQL; on SQLite the IMMEDIATE transaction already holds the write lock.
    AllocationLock.objects.select_for_update().get_or_create(pk=1)


# --- exposure ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exposure:
    """A bot's open position (if any) and its open orders."""

    position_symbol: str | None = None
    position_qty: Decimal | None = None
    open_trades: tuple = ()

    def __bool__(self) -> bool:
        return self.position_qty is not None or bool(self.open_trades)

    def describe(self) -> str:
        """e.g. "holds 10 AAPL and has an open buy order for 5 AAPL (accepted)"."""
        parts = []
        if self.position_qty is not None:
            parts.append(f"holds {plain_decimal(self.position_qty)} {self.position_symbol}")
        for trade in self.open_trades:
            unfilled = trade.qty - trade.filled_qty
            parts.append(
                f"has an open {trade.side} order for {plain_decimal(unfilled)} {trade.symbol} "
                f"({trade.get_status_display().lower()})"
            )
        return " and ".join(parts)

    def remedy(self) -> str:
        steps = []
        if self.position_qty is not None:
            steps.append("close its position")
        if self.open_trades:
            steps.append("let its open order fill or be cancelled")
        return " and ".join(steps)


def exposure_of(bot: Bot) -> Exposure:
    """The bot's open position and open Trades (two queries). Call under the bot's row lock when
    the answer guards a write."""
    return exposures_of([bot])[bot.pk]


def exposures_of(bots) -> dict:
    """Each bot's Exposure by primary key, in two queries however many bots."""
    ids = [bot.pk for bot in bots]
    positions, trades = books().open_holdings(ids)
    return {
        pk: Exposure(
            position_symbol=positions[pk].symbol if pk in positions else None,
            position_qty=positions[pk].qty if pk in positions else None,
            open_trades=tuple(trades.get(pk, ())),
        )
        for pk in ids
    }


def has_exposure(bot: Bot) -> bool:
    return bool(exposure_of(bot))


def _refuse_settings_change(bot: Bot, data: dict) -> None:
    """Refuse a new symbol or timeframe while the bot is exposed: the engine would otherwise act
    on holdings and orders that belong to the old settings."""
    changing = [
        name for name in LOCKED_WHILE_EXPOSED if name in data and data[name] != getattr(bot, name)
    ]
    if not changing:
        return
    exposure = exposure_of(bot)
    if not exposure:
        return
    held = f"'{bot.name}' {exposure.describe()}"
    fields = {name: f"{held}; its {name} cannot change until it is flat." for name in changing}
    message = f"{held}; its {' and '.join(changing)} cannot change until it is flat."
    raise BotExposed(message, fields)


def validate_bot_fields(data: dict, bot: Bot | None = None) -> dict[str, str]:
    """The checks that need the broker or the books (symbol, timeframe, capital) without
    writing: for inline form errors."""
    errors: dict[str, str] = {}
    if bot is not None:
        try:
            _refuse_settings_change(bot, data)
        except BotError as error:
            errors.update(error.fields)
    try:
        symbol = data.get("symbol")
        if symbol and "symbol" not in errors and (bot is None or symbol != bot.symbol):
            check_symbol(symbol)
    except BotError as error:
        errors.update(error.fields)
    capital = data.get("capital")
    # Lowering or keeping capital is always allowed: no broker call for it.
    if capital is not None and (bot is None or capital > bot.capital):
        try:
            _check_capital(capital, get_buying_power(), bot.pk if bot else None)
        except BotError as error:
            errors.update(error.fields)
    return errors


# --- create, update, delete --------------------------------------------------------------------


def create_bot(data: dict, actor: str) -> Bot:
    check_symbol(data["symbol"])
    buying_power = get_buying_power()
    with transaction.atomic():
        _lock_allocations()
        _check_capital(data["capital"], buying_power)
        bot = Bot.objects.create(**data)
        _record_status(bot, "", Bot.Status.STOPPED, actor, "Created")
        account_refresh.account_changed()
    return bot


def _lock_bot(bot: Bot) -> Bot:
    try:
        return Bot.objects.select_for_update().get(pk=bot.pk)
    except Bot.DoesNotExist:
        raise BotError(f"'{bot.name}' no longer exists.") from None


def update_bot(bot: Bot, data: dict, actor: str) -> Bot:
    """Apply ``data`` (model fields) to the bot. Symbol and timeframe are fixed while the bot is
    exposed; only a raise of capital is checked against available capital."""
    # A first look without locks answers the common refusal before any broker call.
    _refuse_settings_change(bot, data)
    if data.get("symbol", bot.symbol) != bot.symbol:
        check_symbol(data["symbol"])
    raising = "capital" in data and data["capital"] > bot.capital
    # The broker is asked before any lock is taken: no row lock is held across a broker call.
    buying_power = get_buying_power() if raising else None
    with transaction.atomic():
        if raising:
            _lock_allocations()  # before the bot row, as start_bot does
        locked = _lock_bot(bot)
        _refuse_settings_change(locked, data)
        if "capital" in data and data["capital"] > locked.capital:
            if buying_power is None:
                raise BotError(
                    f"'{locked.name}' was changed meanwhile; reload it and try again.",
                    {"capital": "The capital was changed meanwhile; reload and try again."},
                )
            _check_capital(data["capital"], buying_power, locked.pk)
        for field, value in data.items():
            setattr(locked, field, value)
        locked.save(update_fields=[*data, "updated_at"])
        if "capital" in data:
            account_refresh.account_changed()
    for field in (*data, "updated_at"):
        setattr(bot, field, getattr(locked, field))
    broadcast_bot(locked)
    return bot


def deletion_refusal(bot: Bot) -> str | None:
    """Why the bot cannot be deleted now, or None."""
    return _deletion_refusal(bot, exposure_of(bot))


def deletion_refusals(bots) -> list[str]:
    """Why any of these bots cannot be deleted now (two queries however many bots)."""
    bots = list(bots)
    exposures = exposures_of(bots)
    return [refusal for bot in bots if (refusal := _deletion_refusal(bot, exposures[bot.pk]))]


def _deletion_refusal(bot: Bot, exposure: Exposure) -> str | None:
    if bot.status == Bot.Status.RUNNING:
        return f"Stop '{bot.name}' before deleting it."
    if exposure:
        return (
            f"'{bot.name}' {exposure.describe()}; it cannot be deleted until it is flat "
            f"({exposure.remedy()} first)."
        )
    return None


def delete_bot(bot: Bot, actor: str) -> None:
    """Delete a stopped or paused bot with no position and no open order."""
    delete_bots([bot], actor)


def delete_bots(bots, actor: str) -> int:
    """Delete all of ``bots`` or, when any of them may not go, none (the refusals say why)."""
    with transaction.atomic():
        # Locked in primary-key order so that two bulk deletes cannot deadlock.
        locked = list(
            Bot.objects.select_for_update().filter(pk__in=[bot.pk for bot in bots]).order_by("pk")
        )
        refusals = deletion_refusals(locked)
        if refusals:
            suffix = " Nothing was deleted." if len(locked) > 1 else ""
            raise BotError(" ".join(refusals) + suffix)
        for bot in locked:
            bot.delete()
        account_refresh.account_changed()
    return len(locked)


# --- lifecycle ---------------------------------------------------------------------------------

# Target status -> the statuses it can be reached from.
ALLOWED_FROM = {
    Bot.Status.RUNNING: {Bot.Status.STOPPED, Bot.Status.PAUSED, Bot.Status.ERROR},
    Bot.Status.PAUSED: {Bot.Status.RUNNING},
    Bot.Status.STOPPED: {Bot.Status.RUNNING, Bot.Status.PAUSED, Bot.Status.ERROR},
}
VERBS = {Bot.Status.RUNNING: "start", Bot.Status.PAUSED: "pause", Bot.Status.STOPPED: "stop"}


def start_bot(bot: Bot, actor: str) -> Bot:
    """Start trading, after checking the bot's reservation against the buying power of this
    moment minus what the other bots reserve."""
    _require_transition(bot, Bot.Status.RUNNING)
    buying_power = get_buying_power()
    with transaction.atomic():
        _lock_allocations()
        others, capital, invested = _split_capital(bot.pk)
        if capital is None:
            raise BotError(f"'{bot.name}' no longer exists.")
        needed = reservation(capital, invested)
        if needed > buying_power - others.reserved:
            invested_note = (
                f" (its capital {format_money(capital)} minus {format_money(invested)} "
                "already invested)"
                if invested
                else ""
            )
            raise CapitalExceeded(
                f"Cannot start '{bot.name}': buying power is {format_money(buying_power)}, "
                f"other bots reserve {format_money(others.reserved)} and this bot needs "
                f"{format_money(needed)}{invested_note}. Lower its capital or free some first."
            )
        return _set_status(bot, Bot.Status.RUNNING, actor, "Started", last_error="")


def pause_bot(bot: Bot, actor: str, reason: str = "Paused") -> Bot:
    _require_transition(bot, Bot.Status.PAUSED)
    with transaction.atomic():
        return _set_status(bot, Bot.Status.PAUSED, actor, reason)


def stop_bot(bot: Bot, actor: str, reason: str = "Stopped") -> Bot:
    _require_transition(bot, Bot.Status.STOPPED)
    with transaction.atomic():
        return _set_status(bot, Bot.Status.STOPPED, actor, reason)


def mark_bot_error(bot: Bot, actor: str, message: str) -> Bot:
    """The engine gives up on a bot: it stops trading and shows why (from any status)."""
    with transaction.atomic():
        return _set_status(bot, Bot.Status.ERROR, actor, message[:500], last_error=message)


# The lifecycle actions the pages and the API offer, by the verb in their URLs.
LIFECYCLE_ACTIONS = {"start": start_bot, "pause": pause_bot, "stop": stop_bot}


def _require_transition(bot: Bot, target: str) -> None:
    if bot.status not in ALLOWED_FROM[target]:
        state = bot.get_status_display().lower()
        raise BotError(f"Cannot {VERBS[target]} '{bot.name}': it is {state}.")


def _set_status(
    bot: Bot, target: str, actor: str, reason: str, last_error: str | None = None
) -> Bot:
    # Re-read under a row lock so two clicks cannot both apply a transition.
    locked = Bot.objects.select_for_update().get(pk=bot.pk)
    previous = locked.status
    if target in ALLOWED_FROM:
        _require_transition(locked, target)
    locked.status = target
    if last_error is not None:
        locked.last_error = last_error
    locked.save(update_fields=["status", "last_error", "updated_at"])
    _record_status(locked, previous, target, actor, reason)
    broadcast_bot(locked)
    bot.status, bot.last_error = locked.status, locked.last_error
    return locked


def _record_status(bot: Bot, previous: str, target: str, actor: str, reason: str) -> None:
    BotStatusChange.objects.create(
        bot=bot, from_status=previous, to_status=target, actor=actor, reason=reason
    )


def broadcast_bot(bot: Bot) -> None:
    """After commit, the pages showing the bot get its fresh card (status, position, gains)."""

    transaction.on_commit(lambda: live.push_each("bot-cards", bot.pk, render_bot_cards))


def with_latest_prices(bots):
    """The bots, each with ``latest_price`` (the last price read for its symbol, no broker
    call) for its card's unrealized P&L."""
    prices = books().remembered_prices()
    bots = list(bots)
    for bot in bots:
        bot.latest_price = prices.get(bot.symbol)
    return bots


def render_bot_cards(bot_ids) -> list[live.Push]:
    """Fresh cards of these bots, read in one query (a tick may change hundreds): each for the
    bots list (a row of table ``bots``, never inserted) and, when its page is open, for the
    bot's own page (one Redis round trip tells which are: a message per unwatched bot page
    would be a message per order)."""
    bots = with_latest_prices(Bot.objects.with_figures().filter(pk__in=list(bot_ids)))
    open_pages = live.watched_groups(live.bot_group(bot.pk) for bot in bots)
    pushes = []
    for fresh in bots:
        card = render_to_string(BOT_CARD, {"bot": fresh, "oob": True})
        pushes.append(live.Row("bots", str(fresh.pk), replace=card))
        if live.bot_group(fresh.pk) in open_pages:
            pushes.append(live.Fragment(live.bot_group(fresh.pk), card))
    return pushes
