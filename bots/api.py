"""JSON API for bots; the same service functions as the pages."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from django.shortcuts import get_object_or_404
from ninja import Body, Field, Router, Schema
from ninja.pagination import paginate
from ninja.responses import Status
from pydantic import ConfigDict, PlainValidator, ValidationError, create_model

from tradebots.api import MUTATION_ERRORS, TRADERS, ApiError, json_object, responses
from tradebots.money import Money
from tradebots.pagination import KeysetPagination

from . import charts, services
from .models import Bot
from .schema import WHOLE, BotSettings, StrategyConfig, Timeframe, validation_errors

router = Router(tags=["bots"])

BotStatus = Literal[tuple(Bot.Status.values)]


# Documented as BotSettings, but validated in the view by BotSettings itself so that refusals
# carry the schema's own messages (bots.schema.validation_errors), as on the bot pages.
NewBot = Annotated[dict, PlainValidator(json_object, json_schema_input_type=BotSettings)]


def _optional(field) -> tuple:
    annotation = (
        Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    )
    return annotation | None, Field(None, title=field.title)


BotSettingsChanges = create_model(
    "BotSettingsChanges",
    __doc__="The settings to change: every field optional, objects merged into the bot's "
    "current settings (JSON merge patch), null meaning the default.",
    __config__=ConfigDict(extra="forbid"),
    **{name: _optional(field) for name, field in BotSettings.model_fields.items()},
)
BotChanges = Annotated[dict, PlainValidator(json_object, json_schema_input_type=BotSettingsChanges)]


class OpenPositionBrief(Schema):
    id: int
    qty: Money
    avg_entry_price: Money


class BotOut(Schema):
    id: UUID
    name: str
    symbol: str
    capital: Money
    timeframe: Timeframe
    status: BotStatus
    last_error: str
    strategy: StrategyConfig | None = Field(
        description="Null when the stored strategy is one the schema refuses (stored before "
        "every entry point checked it): see strategy_problems."
    )
    strategy_problems: list[str] = Field(
        description="What to fix in the stored strategy; empty when it is valid."
    )
    stop_loss_pct: Money | None
    take_profit_pct: Money | None
    allow_fractional: bool
    realized_gains: Money = Field(description="Realized P&L of the bot's closed positions.")
    open_position: OpenPositionBrief | None
    client_order_id_prefix: str = Field(description="Every order of this bot carries it.")
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_client_order_id_prefix(bot: Bot) -> str:
        return f"bot-{bot.short_id}-"

    @staticmethod
    def resolve_strategy(bot: Bot) -> StrategyConfig | None:
        return _checked_strategy(bot)[0]

    @staticmethod
    def resolve_strategy_problems(bot: Bot) -> list[str]:
        return [message for messages in _checked_strategy(bot)[1].values() for message in messages]


def _checked_strategy(bot: Bot) -> tuple[StrategyConfig | None, dict[str, list[str]]]:
    """The bot's stored strategy through the schema: (it, {}) or (None, what to fix by path)."""
    try:
        return StrategyConfig.model_validate(bot.strategy), {}
    except ValidationError as error:
        return None, {
            f"strategy.{path}" if path != WHOLE else "strategy": messages
            for path, messages in validation_errors(error).items()
        }


class StatusChangeOut(Schema):
    from_status: BotStatus | Literal[""] = Field(description="Empty when the bot was created.")
    to_status: BotStatus
    actor: str
    reason: str
    created_at: datetime


class BarOut(Schema):
    time: int = Field(description="Unix seconds.")
    open: Money
    high: Money
    low: Money
    close: Money


class PointOut(Schema):
    time: int
    value: Money


class OverlayOut(Schema):
    name: str
    color: str
    points: list[PointOut]


class MarkerOut(Schema):
    time: int
    side: Literal["buy", "sell"]
    text: str


class PaneSeriesOut(Schema):
    name: str
    kind: Literal["line", "histogram"]
    color: str
    points: list[PointOut]


class LevelOut(Schema):
    name: str
    value: Money = Field(description="A horizontal line: an oversold or overbought level, zero.")


class PaneOut(Schema):
    key: Literal["rsi", "macd", "stochastic"]
    name: str
    series: list[PaneSeriesOut]
    levels: list[LevelOut]


class FillOut(Schema):
    time: int = Field(description="The bar the fill happened in (Unix seconds of its start).")
    side: Literal["buy", "sell"]
    qty: Money
    price: Money = Field(description="Average fill price.")


class ChartOut(Schema):
    bars: list[BarOut]
    overlays: list[OverlayOut] = Field(description="Indicator lines on the price scale.")
    panes: list[PaneOut] = Field(
        description="One pane under the price chart per enabled oscillator (RSI, MACD, "
        "Stochastic), with the levels its rule compares with."
    )
    markers: list[MarkerOut] = Field(
        description="Where the buy or the sell rule began to fire: the first bar of each run "
        "of bars where it holds."
    )
    fills: list[FillOut] = Field(description="The bot's buys and sells on these bars.")


def _settings(document: dict) -> BotSettings:
    try:
        return BotSettings.model_validate(document)
    except ValidationError as error:
        fields = validation_errors(error)
        general = fields.pop(WHOLE, [])
        message = f"Invalid bot: {' '.join(general)}" if general else "Invalid bot"
        raise ApiError(400, message, fields) from None


def _merged(current: dict, changes: dict) -> dict:
    """``changes`` applied to ``current`` as a JSON merge patch: objects merge key by key,
    anything else replaces."""
    merged = dict(current)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _refusal(error: services.BotError) -> ApiError:
    if isinstance(error, services.BrokerUnreachable):
        return ApiError(503, error.message, error.fields)
    if isinstance(error, services.BotExposed):
        # The request is well formed; the bot's state (a position, an open order) conflicts.
        return ApiError(409, error.message, error.fields)
    return ApiError(400, error.message, error.fields)


def _bot(pk: UUID) -> Bot:
    return get_object_or_404(Bot.objects.with_figures(), pk=pk)


@router.get("/bots", response=responses({200: list[BotOut]}))
@paginate(KeysetPagination, ordering=("name", "id"))
def list_bots(request):
    """Every bot, by name."""
    return Bot.objects.with_figures()


@router.post("/bots", auth=TRADERS, response=responses({201: BotOut}, 409, 503, *MUTATION_ERRORS))
def create_bot(request, payload: Body[NewBot]):
    """Create a stopped bot; its capital must fit in what is available."""
    settings = _settings(payload)
    try:
        bot = services.create_bot(settings.bot_fields(), request.user.get_username())
    except services.BotError as error:
        raise _refusal(error) from None
    return Status(201, _bot(bot.pk))


@router.get("/bots/{uuid:bot_id}", response=responses({200: BotOut}, 404))
def get_bot(request, bot_id: UUID):
    return _bot(bot_id)


@router.put(
    "/bots/{uuid:bot_id}",
    auth=TRADERS,
    response=responses({200: BotOut}, 404, 409, 503, *MUTATION_ERRORS),
)
def update_bot(request, bot_id: UUID, payload: Body[BotChanges]):
    """Change the fields sent (a JSON merge patch of the settings: a strategy sent with one
    indicator changes that indicator only); the others keep their values. A raise of capital
    is checked against what is available; symbol and timeframe cannot change while the bot is
    exposed."""
    bot = get_object_or_404(Bot, pk=bot_id)
    settings = _settings(_merged(bot.settings_input(), payload))
    try:
        services.update_bot(bot, settings.bot_fields(), request.user.get_username())
    except services.BotError as error:
        raise _refusal(error) from None
    return _bot(bot_id)


@router.delete("/bots/{uuid:bot_id}", auth=TRADERS, response=responses({204: None}, 404, 409, 403))
def delete_bot(request, bot_id: UUID):
    """Refused (409) while the bot runs, holds a position or has an open order."""
    bot = get_object_or_404(Bot, pk=bot_id)
    try:
        services.delete_bot(bot, request.user.get_username())
    except services.BotError as error:
        raise ApiError(409, error.message, error.fields) from None
    return Status(204, None)


def _lifecycle(request, bot_id: UUID, action: str):
    bot = get_object_or_404(Bot, pk=bot_id)
    try:
        services.LIFECYCLE_ACTIONS[action](bot, request.user.get_username())
    except services.BrokerUnreachable as error:
        raise ApiError(503, error.message) from None
    except services.BotError as error:
        raise ApiError(409, error.message) from None
    return _bot(bot_id)


LIFECYCLE_RESPONSES = responses({200: BotOut}, 404, 409, 503, *MUTATION_ERRORS)


@router.post("/bots/{uuid:bot_id}/start", auth=TRADERS, response=LIFECYCLE_RESPONSES)
def start_bot(request, bot_id: UUID):
    """Start trading, if its capital fits in the buying power of this moment."""
    return _lifecycle(request, bot_id, "start")


@router.post("/bots/{uuid:bot_id}/pause", auth=TRADERS, response=LIFECYCLE_RESPONSES)
def pause_bot(request, bot_id: UUID):
    return _lifecycle(request, bot_id, "pause")


@router.post("/bots/{uuid:bot_id}/stop", auth=TRADERS, response=LIFECYCLE_RESPONSES)
def stop_bot(request, bot_id: UUID):
    return _lifecycle(request, bot_id, "stop")


@router.get(
    "/bots/{uuid:bot_id}/status-changes", response=responses({200: list[StatusChangeOut]}, 404)
)
@paginate(KeysetPagination, ordering=("-created_at", "-id"))
def bot_status_changes(request, bot_id: UUID):
    """Who or what changed the bot's status, and why; newest first."""
    return get_object_or_404(Bot, pk=bot_id).status_changes.all()


@router.get("/bots/{uuid:bot_id}/chart", response=responses({200: ChartOut}, 404, 409, 503))
def bot_chart(request, bot_id: UUID):
    """The bot page's chart: recent bars, the enabled indicators over them and in panes below
    them, where the rules began to fire, and the bot's fills.
    409 while the stored strategy is invalid (see the bot's strategy_problems)."""
    bot = get_object_or_404(Bot, pk=bot_id)
    strategy, problems = _checked_strategy(bot)
    if strategy is None:
        raise ApiError(409, "No chart: the strategy is invalid.", problems)
    chart = charts.price_chart(bot, strategy)
    if chart["chart"] is None:
        raise ApiError(503, chart["chart_error"])
    return chart["chart"]
