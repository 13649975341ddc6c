"""The one shape of a backtest request: a bot's settings (bots.schema.BotSettings, so a backtest
and a bot accept the same strategies with the same messages) plus the bar range and the costs.
The pages' form, the JSON API and `manage.py backtest` all validate through it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from django.conf import settings
from django.utils import timezone
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bots.schema import BotSettings, Name, validation_errors
from bots.strategy import warmup_bars
from tradebots.broker import TimeFrame

MAX_COMMISSION_BPS = Decimal(1000)


def _utc(value: datetime) -> datetime:
    # A time without a zone is UTC, as everywhere in the API.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _through_the_day(value: Any) -> Any:
    """An end given as a date means through that day: the next midnight (UTC), exclusive."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            return value  # the datetime parser says what is wrong with it
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value + timedelta(days=1), time(), tzinfo=UTC)
    return value


Start = Annotated[datetime, AfterValidator(_utc)]
End = Annotated[datetime, BeforeValidator(_through_the_day), AfterValidator(_utc)]
CommissionBps = Annotated[Decimal, Field(ge=0, le=MAX_COMMISSION_BPS, decimal_places=2)]


class BacktestSettings(BotSettings):
    """A bot's settings replayed over [start, end) of its symbol's bars."""

    label: ClassVar[str] = "Backtest"

    name: Name = Field("Backtest", title="Name")
    start: Start = Field(title="Start")
    end: End = Field(title="End")
    commission_bps: CommissionBps = Field(Decimal(0), title="Commission (basis points)")

    @field_validator("start")
    @classmethod
    def _in_the_past(cls, start: datetime) -> datetime:
        if start >= timezone.now():
            raise PydanticCustomError("future_start", "must be in the past")
        return start

    @field_validator("end")
    @classmethod
    def _after_the_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise PydanticCustomError("empty_range", "must be after the start (the range is empty)")
        return end

    @model_validator(mode="after")
    def _not_too_long_nor_too_short(self) -> BacktestSettings:
        # Counted up to now: the bars a range reaching into the future holds.
        bars = estimated_bars(self.timeframe, self.start, min(self.end, timezone.now()))
        needed = warmup_bars(self.strategy) + 1
        if bars < needed:
            # Even with a bar at every moment of the range: no need to fetch anything to know.
            raise PydanticCustomError(
                "range_too_short",
                "spans at most {bars} bars of {timeframe}; the strategy's indicators need "
                "{needed} (their warm-up and one to trade on)",
                {"bars": bars, "timeframe": self.timeframe, "needed": needed},
            )
        if bars > settings.BACKTEST_MAX_BARS:
            raise PydanticCustomError(
                "range_too_long",
                "spans up to {bars} bars of {timeframe}; at most {cap} are allowed",
                {"bars": f"{bars:,}", "timeframe": self.timeframe,
                 "cap": f"{settings.BACKTEST_MAX_BARS:,}"},
            )  # fmt: skip
        return self

    def bot_settings(self) -> BotSettings:
        return BotSettings.model_validate(
            self.model_dump(exclude={"start", "end", "commission_bps"})
        )


def estimated_bars(timeframe: str, start: datetime, end: datetime) -> int:
    """An upper bound: every bar of the span, nights and weekends included."""
    return int((end - start).total_seconds() // TimeFrame(timeframe).seconds)


class BacktestInvalid(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(" ".join(m for messages in errors.values() for m in messages))


def validate_backtest(data: Any) -> BacktestSettings:
    """The request validated, or BacktestInvalid with the messages by field path."""
    try:
        return BacktestSettings.model_validate(data)
    except ValidationError as error:
        raise BacktestInvalid(validation_errors(error, root=BacktestSettings)) from error
