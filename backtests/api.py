"""JSON API for backtests: the same services as the pages."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from django.shortcuts import get_object_or_404
from ninja import Body, Field, Router, Schema
from ninja.pagination import paginate
from ninja.responses import Status
from pydantic import PlainValidator

from bots.models import Bot
from bots.schema import WHOLE, StrategyConfig, Timeframe
from tradebots.api import MUTATION_ERRORS, TRADERS, ApiError, json_object, responses
from tradebots.money import Money
from tradebots.pagination import KeysetPagination

from . import services
from .models import Backtest
from .schema import BacktestInvalid, BacktestSettings, validate_backtest

router = Router(tags=["backtests"])

BacktestStatus = Literal[tuple(Backtest.Status.values)]


class NewBacktestIn(BacktestSettings):
    """A bot's settings, the range (`start`, `end`: ISO 8601; a date alone as `end` means
    through that day) and the commission; `bot_id` ties the run to a bot ("Backtest this
    bot")."""

    bot_id: UUID | None = None


# Documented as NewBacktestIn, validated in the view by the schema itself so that refusals carry
# its own messages (as on the pages).
NewBacktest = Annotated[dict, PlainValidator(json_object, json_schema_input_type=NewBacktestIn)]


class BacktestTradeOut(Schema):
    number: int
    qty: Money
    entry_at: datetime
    entry_price: Money
    entry_reason: str
    exit_at: datetime
    exit_price: Money
    exit_reason: str
    pnl: Money
    return_pct: Money


class BacktestEquityPointOut(Schema):
    time: int = Field(description="Unix seconds (the bar's open).")
    equity: float = Field(description="The account's value at the bar's close (for charts).")


class BacktestBriefOut(Schema):
    id: UUID
    name: str
    bot_id: UUID | None
    symbol: str
    timeframe: Timeframe
    start: datetime
    end: datetime
    status: BacktestStatus
    progress: int = Field(description="Percent done.")
    message: str = Field(description="What it is doing, or why it failed.")
    created_at: datetime
    finished_at: datetime | None


class BacktestOut(BacktestBriefOut):
    strategy: StrategyConfig
    capital: Money
    stop_loss_pct: Money | None
    take_profit_pct: Money | None
    allow_fractional: bool
    slippage_bps: Money
    commission_bps: Money
    bar_count: int
    first_bar_at: datetime | None
    last_bar_at: datetime | None
    metrics: dict[str, Any] = Field(
        description="Empty until done. Percentages as numbers (12.5 is 12.5%), money as decimal "
        "strings, ratios as numbers, null where undefined (e.g. Sharpe of a flat curve); with "
        "`exit_reasons` and `monthly_returns` tables."
    )
    equity_curve: list[BacktestEquityPointOut] = Field(
        description="Thinned to at most 2,000 points."
    )
    trades: list[BacktestTradeOut]

    @staticmethod
    def resolve_equity_curve(backtest: Backtest) -> list[dict]:
        return [{"time": time, "equity": value} for time, value in backtest.equity]

    @staticmethod
    def resolve_trades(backtest: Backtest) -> list:
        return list(backtest.trades.order_by("number"))


def _validated(document: dict) -> tuple[BacktestSettings, Bot | None]:
    document = dict(document)
    bot_id = document.pop("bot_id", None)
    try:
        requested = validate_backtest(document)
    except BacktestInvalid as invalid:
        fields = dict(invalid.errors)
        general = fields.pop(WHOLE, [])
        message = f"Invalid backtest: {' '.join(general)}" if general else "Invalid backtest"
        raise ApiError(400, message, fields) from None
    bot = None
    if bot_id is not None:
        try:
            bot = Bot.objects.filter(pk=UUID(str(bot_id))).first()
        except ValueError:
            bot = None
        if bot is None:
            raise ApiError(400, "Invalid backtest", {"bot_id": ["No such bot."]})
    return requested, bot


@router.post(
    "/backtests", auth=TRADERS, response=responses({202: BacktestBriefOut}, 503, *MUTATION_ERRORS)
)
def create_backtest(request, payload: Body[NewBacktest]):
    """Queue a backtest; follow it with GET /api/backtests/{id} (status, progress)."""
    requested, bot = _validated(payload)
    try:
        backtest = services.request_backtest(requested, request.user, bot)
    except services.BacktestRefused as refused:
        raise ApiError(400, refused.message, refused.fields) from None
    return Status(202, backtest)


@router.get("/backtests", response=responses({200: list[BacktestBriefOut]}))
@paginate(KeysetPagination, ordering=("-created_at", "-id"))
def list_backtests(request):
    """Every backtest, newest first (without its trades and curve)."""
    return Backtest.objects.filter(optimisation=None).defer("equity", "drawdown", "metrics")


@router.get("/backtests/{uuid:backtest_id}", response=responses({200: BacktestOut}, 404))
def get_backtest(request, backtest_id: UUID):
    """A backtest with its metrics, trades and equity curve once done."""
    return get_object_or_404(Backtest, pk=backtest_id)
