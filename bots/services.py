"""Bot use cases: create, update, delete, lifecycle, and the capital rules that guard them.

Every entry point (pages, JSON API, admin) calls these functions. Allocated capital is the sum of
every bot's capital, stopped ones included; available capital is the broker's buying power minus
that. The check and the write happen while holding the allocation lock.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.apps import apps
from django.db import transaction
from django.db.models import Sum
from django.template.loader import render_to_string

from tradebots import live
from tradebots.money import format_money

from .models import AllocationLock, Bot, BotStatusChange


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


@dataclass(frozen=True)
class CapitalSummary:
    buying_power: Decimal
    allocated: Decimal

    @property
    def available(self) -> Decimal:
        return self.buying_power - self.allocated


def get_allocated_capital(exclude_bot_id=None) -> Decimal:
    bots = Bot.objects.all()
    if exclude_bot_id is not None:
        bots = bots.exclude(pk=exclude_bot_id)
    return bots.aggregate(total=Sum("capital"))["total"] or Decimal(0)


def _broker():
    # bots never imports trading at module level (DESIGN.md, "Layers").
    from trading.broker import get_broker

    return get_broker()


def get_buying_power() -> Decimal:
    from trading.broker import BrokerError

    try:
        return _broker().get_account().buying_power
    except BrokerError as error:
        raise BrokerUnreachable(
            f"Cannot check capital: the broker is unreachable ({error}). Nothing was changed.",
            {"capital": "Cannot check available capital: the broker is unreachable."},
        ) from error


def capital_summary(exclude_bot_id=None) -> CapitalSummary:
    return CapitalSummary(get_buying_power(), get_allocated_capital(exclude_bot_id))


def check_symbol(symbol: str) -> None:
    from trading.broker import BrokerError, NotFound

    try:
        asset = _broker().get_asset(symbol)
    except NotFound:
        raise BotError(
            f"Unknown symbol {symbol}.", {"symbol": f"Unknown symbol {symbol}."}
        ) from None
    except BrokerError as error:
        raise BrokerUnreachable(
            f"Cannot check the symbol: the broker is unreachable ({error}).",
            {"symbol": "Cannot check the symbol: the broker is unreachable."},
        ) from error
    if not asset.tradable:
        message = f"{symbol} is not tradable at the broker."
        raise BotError(message, {"symbol": message})


def _check_capital(capital: Decimal, buying_power: Decimal, exclude_bot_id=None) -> None:
    """Raise unless ``capital`` fits; call with the allocation lock held."""
    allocated = get_allocated_capital(exclude_bot_id)
    available = buying_power - allocated
    if capital > available:
        message = (
            f"Capital {format_money(capital)} exceeds the available {format_money(available)} "
            f"(buying power {format_money(buying_power)} − allocated {format_money(allocated)})."
        )
        raise CapitalExceeded(message, {"capital": message})


def _lock_allocations() -> None:
    # A row lock on PostgreSQL; on SQLite the IMMEDIATE transaction already holds the write lock.
    AllocationLock.objects.select_for_update().get_or_create(pk=1)


def validate_bot_fields(data: dict, bot: Bot | None = None) -> dict[str, str]:
    """The broker-dependent checks (symbol, capital) without writing: for inline form errors."""
    errors: dict[str, str] = {}
    try:
        if data.get("symbol") and (bot is None or data["symbol"] != bot.symbol):
            check_symbol(data["symbol"])
    except BotError as error:
        errors.update(error.fields)
    if data.get("capital") is not None:
        try:
            _check_capital(data["capital"], get_buying_power(), bot.pk if bot else None)
        except BotError as error:
            errors.update(error.fields)
    return errors


def create_bot(data: dict, actor: str) -> Bot:
    check_symbol(data["symbol"])
    buying_power = get_buying_power()
    with transaction.atomic():
        _lock_allocations()
        _check_capital(data["capital"], buying_power)
        bot = Bot.objects.create(**data)
        _record_status(bot, "", Bot.Status.STOPPED, actor, "Created")
    return bot


def update_bot(bot: Bot, data: dict, actor: str) -> Bot:
    if data.get("symbol", bot.symbol) != bot.symbol:
        check_symbol(data["symbol"])
    buying_power = get_buying_power() if "capital" in data else None
    with transaction.atomic():
        _lock_allocations()
        if buying_power is not None:
            _check_capital(data["capital"], buying_power, exclude_bot_id=bot.pk)
        for field, value in data.items():
            setattr(bot, field, value)
        bot.save()
    broadcast_bot(bot)
    return bot


def has_open_position(bot: Bot) -> bool:
    try:
        position_model = apps.get_model("trading", "Position")
    except LookupError:  # the engine's models are not installed yet
        return False
    return position_model.objects.filter(bot=bot, is_open=True).exists()


def delete_bot(bot: Bot, actor: str) -> None:
    if bot.status == Bot.Status.RUNNING:
        raise BotError(f"Stop '{bot.name}' before deleting it.")
    if has_open_position(bot):
        raise BotError(f"'{bot.name}' holds an open position; close it before deleting the bot.")
    bot.delete()


# --- lifecycle ---------------------------------------------------------------------------------

# Target status -> the statuses it can be reached from.
ALLOWED_FROM = {
    Bot.Status.RUNNING: {Bot.Status.STOPPED, Bot.Status.PAUSED, Bot.Status.ERROR},
    Bot.Status.PAUSED: {Bot.Status.RUNNING},
    Bot.Status.STOPPED: {Bot.Status.RUNNING, Bot.Status.PAUSED, Bot.Status.ERROR},
}
VERBS = {Bot.Status.RUNNING: "start", Bot.Status.PAUSED: "pause", Bot.Status.STOPPED: "stop"}


def start_bot(bot: Bot, actor: str) -> Bot:
    """Start trading, after checking the capital against the buying power of this moment."""
    _require_transition(bot, Bot.Status.RUNNING)
    buying_power = get_buying_power()
    with transaction.atomic():
        _lock_allocations()
        allocated = get_allocated_capital()
        others = allocated - bot.capital
        if bot.capital > buying_power - others:
            raise CapitalExceeded(
                f"Cannot start '{bot.name}': buying power is {format_money(buying_power)}, "
                f"allocated capital is {format_money(allocated)} and this bot needs "
                f"{format_money(bot.capital)}. Lower its capital or free some first."
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
    """After commit, every open page gets the bot's fresh card (status, position, gains)."""

    def render():
        fresh = Bot.objects.with_figures().filter(pk=bot.pk).first()
        if fresh is None:
            return []
        return render_to_string("bots/partials/bot_live_update.html", {"bot": fresh})

    transaction.on_commit(lambda: live.push(f"bot:{bot.pk}", render))
