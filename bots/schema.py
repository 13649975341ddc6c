"""The one schema of a bot: the settings a user sets and the strategy, as pydantic models.

Every entry point validates through these models: the bot pages' form, the admin (through
``Bot.clean()``) and the JSON API, so they accept the same values and refuse bad ones with the
same messages, made in one place (``validation_errors``). ``StrategyConfig.model_dump(mode="json")``
is exactly what ``Bot.strategy`` stores, and the engine works from the validated model.

Zero is a value, never "missing": a period, a level or a percentage of 0 is checked like any
other number. Only null or an omitted key means "the default" (for stop-loss and take-profit:
"none"). A number may come as a JSON number or as a string ("14"), with the same answer.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, get_args

from django.db.models import TextChoices
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError
from pydantic_core.core_schema import ErrorType

from tradebots.broker import TimeFrame

# Key -> human name, in the order indicators are shown and evaluated.
INDICATOR_NAMES: dict[str, str] = {
    "rsi": "RSI",
    "macd": "MACD",
    "bollinger": "Bollinger Bands",
    "sma_cross": "SMA crossover",
    "ema_cross": "EMA crossover",
    "stochastic": "Stochastic",
}
MAJORITY = "majority"
RULE_CHOICES: tuple[tuple[str, str], ...] = ((MAJORITY, "Majority vote"),) + tuple(
    INDICATOR_NAMES.items()
)
Rule = Literal[(MAJORITY, *INDICATOR_NAMES)]

MIN_PERIOD = 2
MAX_PERIOD = 500
MAX_BOLLINGER_STD = Decimal(10)
MAX_STOP_LOSS_PCT = Decimal(100)  # exclusive: a 100% stop-loss is a price of zero
MAX_TAKE_PROFIT_PCT = Decimal(1000)
# Letters, digits and dots, starting with a letter, at most 12 long: AAPL, BRK.B.
TICKER_PATTERN = re.compile(r"[A-Z][A-Z0-9.]{0,11}")
# The key validation_errors() gives to an error about the whole object rather than one field.
WHOLE = "__all__"


def _duration(seconds: int) -> str:
    """60 -> "1 minute", 900 -> "15 minutes", 86400 -> "1 day"."""
    unit, size = next(
        (unit, size)
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
        if seconds % size == 0
    )
    count = seconds // size
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


# The bar timeframes a bot can trade on (also ``Bot.Timeframe``): the gateway's, for people.
Timeframe = TextChoices(
    "Timeframe", [(frame.name, (frame.value, _duration(frame.seconds))) for frame in TimeFrame]
)


# --- value types -------------------------------------------------------------------------------


def _not_a_bool(value: Any) -> Any:
    # JSON true would otherwise pass as the whole number 1.
    if isinstance(value, bool):
        raise PydanticKnownError("int_type")
    return value


def _plain_decimal(value: Decimal) -> Decimal:
    # "1e1" is 10: stored as "10", never "1E+1".
    return Decimal(f"{value:f}")


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a lone surrogate (JSON "\ud800") already fails as str.
    if "\x00" in value:
        raise PydanticCustomError("unstorable_text", "contains characters that cannot be stored")
    return value


def _ticker(value: str) -> str:
    if not TICKER_PATTERN.fullmatch(value):
        raise PydanticCustomError("ticker", "must be a ticker symbol such as AAPL or BRK.B")
    return value


# The bool check wraps the bounded int, so the bounds stay in the JSON schema (OpenAPI).
Period = Annotated[int, Field(ge=MIN_PERIOD, le=MAX_PERIOD), BeforeValidator(_not_a_bool)]
Level = Annotated[int, Field(gt=0, lt=100), BeforeValidator(_not_a_bool)]
Deviations = Annotated[
    Decimal, Field(gt=0, le=MAX_BOLLINGER_STD, decimal_places=2), AfterValidator(_plain_decimal)
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_storable),
]
Symbol = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, min_length=1),
    AfterValidator(_ticker),
]
Capital = Annotated[
    Decimal, Field(gt=0, max_digits=14, decimal_places=2), AfterValidator(_plain_decimal)
]
StopLossPct = Annotated[
    Decimal, Field(gt=0, lt=MAX_STOP_LOSS_PCT, decimal_places=2), AfterValidator(_plain_decimal)
]
TakeProfitPct = Annotated[
    Decimal, Field(gt=0, le=MAX_TAKE_PROFIT_PCT, decimal_places=2), AfterValidator(_plain_decimal)
]


class _Schema(BaseModel):
    # Extra keys are refused, not ignored: a typo ("peroid") must not silently mean "default".
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


# --- indicators --------------------------------------------------------------------------------


class IndicatorConfig(_Schema):
    """One indicator's settings. Its fields are labelled "<indicator> <field>" in messages."""

    enabled: bool = Field(False, title="enabled")

    @classmethod
    def field_label(cls, name: str) -> str:
        """How messages and the form name one of the indicator's fields: "RSI period"."""
        return f"{cls.label} {cls.model_fields[name].title}"


def _longer_than_fast(slow: int, info: ValidationInfo) -> int:
    fast = info.data.get("fast")
    if fast is not None and fast >= slow:
        raise PydanticCustomError(
            "slow_not_above_fast",
            "must be longer than the fast period (fast {fast}, slow {slow})",
            {"fast": fast, "slow": slow},
        )
    return slow


def _above_oversold(overbought: int, info: ValidationInfo) -> int:
    oversold = info.data.get("oversold")
    if oversold is not None and oversold >= overbought:
        raise PydanticCustomError(
            "overbought_not_above_oversold",
            "must be above the oversold level (oversold {oversold}, overbought {overbought})",
            {"oversold": oversold, "overbought": overbought},
        )
    return overbought


class RsiConfig(IndicatorConfig):
    label: ClassVar[str] = INDICATOR_NAMES["rsi"]

    period: Period = Field(14, title="period")
    oversold: Level = Field(30, title="oversold level")
    # validate_default: the cross-check also runs when only the other level is given.
    overbought: Level = Field(70, title="overbought level", validate_default=True)

    _check_levels = field_validator("overbought")(_above_oversold)


class MacdConfig(IndicatorConfig):
    """Votes on the MACD line crossing its signal line."""

    label: ClassVar[str] = INDICATOR_NAMES["macd"]

    fast: Period = Field(12, title="fast period")
    slow: Period = Field(26, title="slow period", validate_default=True)
    signal: Period = Field(9, title="signal period")

    _check_periods = field_validator("slow")(_longer_than_fast)


class BollingerConfig(IndicatorConfig):
    label: ClassVar[str] = INDICATOR_NAMES["bollinger"]

    window: Period = Field(20, title="window")
    std: Deviations = Field(Decimal(2), title="standard deviations")


class SmaCrossConfig(IndicatorConfig):
    label: ClassVar[str] = INDICATOR_NAMES["sma_cross"]

    fast: Period = Field(10, title="fast period")
    slow: Period = Field(30, title="slow period", validate_default=True)

    _check_periods = field_validator("slow")(_longer_than_fast)


class EmaCrossConfig(IndicatorConfig):
    label: ClassVar[str] = INDICATOR_NAMES["ema_cross"]

    fast: Period = Field(12, title="fast period")
    slow: Period = Field(26, title="slow period", validate_default=True)

    _check_periods = field_validator("slow")(_longer_than_fast)


class StochasticConfig(IndicatorConfig):
    label: ClassVar[str] = INDICATOR_NAMES["stochastic"]

    k: Period = Field(14, title="%K period")
    d: Period = Field(3, title="%D period")
    oversold: Level = Field(20, title="oversold level")
    overbought: Level = Field(80, title="overbought level", validate_default=True)

    _check_levels = field_validator("overbought")(_above_oversold)


class IndicatorSet(_Schema):
    """Every indicator a strategy can use, each enabled or not."""

    label: ClassVar[str] = "Indicators"

    rsi: RsiConfig = Field(RsiConfig(), title=INDICATOR_NAMES["rsi"])
    macd: MacdConfig = Field(MacdConfig(), title=INDICATOR_NAMES["macd"])
    bollinger: BollingerConfig = Field(BollingerConfig(), title=INDICATOR_NAMES["bollinger"])
    sma_cross: SmaCrossConfig = Field(SmaCrossConfig(), title=INDICATOR_NAMES["sma_cross"])
    ema_cross: EmaCrossConfig = Field(EmaCrossConfig(), title=INDICATOR_NAMES["ema_cross"])
    stochastic: StochasticConfig = Field(StochasticConfig(), title=INDICATOR_NAMES["stochastic"])

    def config(self, key: str) -> IndicatorConfig:
        if key not in INDICATOR_NAMES:
            raise KeyError(key)
        return getattr(self, key)


# --- the strategy ------------------------------------------------------------------------------


class StrategyConfig(_Schema):
    """Which indicators a bot watches, their parameters, and which rule buys and which sells: a
    named indicator's vote, or the majority of the enabled indicators' votes."""

    label: ClassVar[str] = "Strategy"

    indicators: IndicatorSet = Field(IndicatorSet(), title="Indicators")
    # validate_default: an omitted rule (majority) is still checked against the indicators.
    buy_rule: Rule = Field(MAJORITY, title="Buy rule", validate_default=True)
    sell_rule: Rule = Field(MAJORITY, title="Sell rule", validate_default=True)

    @field_validator("buy_rule", "sell_rule")
    @classmethod
    def _rule_uses_an_enabled_indicator(cls, rule: str, info: ValidationInfo) -> str:
        indicators = info.data.get("indicators")
        if indicators is not None and rule != MAJORITY and not indicators.config(rule).enabled:
            raise PydanticCustomError(
                "rule_indicator_disabled",
                "uses {indicator}, which is not enabled",
                {"indicator": INDICATOR_NAMES[rule]},
            )
        return rule

    @model_validator(mode="after")
    def _something_enabled(self) -> StrategyConfig:
        if not self.enabled_indicators:
            raise PydanticCustomError("no_indicator", "must enable at least one indicator")
        return self

    @classmethod
    def default(cls) -> StrategyConfig:
        """A new bot's strategy: RSI with its usual settings buys and sells."""
        return cls(
            indicators=IndicatorSet(rsi=RsiConfig(enabled=True)), buy_rule="rsi", sell_rule="rsi"
        )

    def config(self, key: str) -> IndicatorConfig:
        return self.indicators.config(key)

    @property
    def enabled_indicators(self) -> tuple[str, ...]:
        return tuple(key for key in INDICATOR_NAMES if self.config(key).enabled)


# --- the bot -----------------------------------------------------------------------------------


class BotSettings(_Schema):
    """What a user sets on a bot (status, errors and timestamps are the app's)."""

    label: ClassVar[str] = "Bot"

    name: Name = Field(title="Name")
    symbol: Symbol = Field(title="Symbol")
    capital: Capital = Field(title="Capital")
    timeframe: Timeframe = Field(Timeframe.MIN_5, title="Timeframe")
    strategy: StrategyConfig = Field(default_factory=StrategyConfig.default, title="Strategy")
    stop_loss_pct: StopLossPct | None = Field(None, title="Stop-loss")
    take_profit_pct: TakeProfitPct | None = Field(None, title="Take-profit")
    allow_fractional: bool = Field(False, title="Allow fractional shares")

    def bot_fields(self) -> dict[str, Any]:
        """The Bot model's field values: the strategy as the JSON it is stored as."""
        fields = self.model_dump(exclude={"strategy"})
        fields["strategy"] = self.strategy.model_dump(mode="json")
        return fields


def validate_setting(name: str, value: Any) -> Any:
    """One BotSettings field on its own, e.g. the symbol a user just typed, for the checks that
    need the broker; raises ValidationError like the whole model would."""
    return _setting_adapter(name).validate_python(value)


@functools.cache
def _setting_adapter(name: str) -> TypeAdapter:
    field = BotSettings.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, field])


# --- messages ----------------------------------------------------------------------------------

# What a failed built-in check says after the field's label: "RSI period" + "must be at least 2".
_PREDICATES: dict[str, str] = {
    "missing": "is required",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "decimal_type": "must be a number",
    "decimal_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "decimal_max_digits": "must have at most {max_digits} digits",
    "decimal_max_places": "must have at most {decimal_places} decimal places",
    "decimal_whole_digits": "must have at most {whole_digits} digits before the decimal point",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "string_unicode": "contains characters that cannot be stored",
    "string_too_short": "is required",  # every text field here needs one character, no more
    "string_too_long": "must be at most {max_length} characters long",
    "literal_error": "must be one of {expected}",
    "datetime_type": "must be a date (YYYY-MM-DD) or a date and time (ISO 8601)",
    "datetime_parsing": "must be a date (YYYY-MM-DD) or a date and time (ISO 8601)",
    "datetime_from_date_parsing": "must be a date (YYYY-MM-DD) or a date and time (ISO 8601)",
    "enum": "must be one of {expected}",
}
_BUILT_IN_ERRORS = frozenset(get_args(ErrorType))
_MODELS: dict[str, type[_Schema]] = {
    model.__name__: model
    for model in (
        BotSettings, StrategyConfig, IndicatorSet, RsiConfig, MacdConfig, BollingerConfig,
        SmaCrossConfig, EmaCrossConfig, StochasticConfig,
    )
}  # fmt: skip


def validation_errors(
    exc: ValidationError, root: type[_Schema] | None = None
) -> dict[str, list[str]]:
    """The messages of a failed validation by field path: "capital",
    "strategy.indicators.rsi.period", or WHOLE for the object itself. Each message names its
    field ("RSI period must be at least 2.") so it reads the same wherever it is shown, and
    never repeats the input, which may be anything. ``root``: the model validated, when it is
    not one of this module's (a schema built on BotSettings elsewhere)."""
    root = root or _MODELS.get(exc.title)
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        path = ".".join(str(part) for part in loc) or WHOLE
        errors.setdefault(path, []).append(_message(root, loc, error))
    return errors


def _message(root: type[_Schema] | None, loc: tuple, error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(_model_at(root, loc[:-1]), loc[-1])
    if kind in _PREDICATES:
        predicate = _PREDICATES[kind].format(**error.get("ctx", {}))
    elif kind in _BUILT_IN_ERRORS:
        predicate = f"is invalid: {error['msg']}"
    else:  # ours (PydanticCustomError): the message is the predicate
        predicate = error["msg"]
    return f"{_label(root, loc)} {predicate}."


def _label(root: type[_Schema] | None, loc: tuple) -> str:
    """The field's name in messages: an indicator's fields are named after it (("strategy",
    "indicators", "rsi", "period") is "RSI period"), every other field by its title."""
    model, label = root, root.label if root else "Input"
    for part in loc:
        field = model.model_fields.get(part) if model and isinstance(part, str) else None
        if field is None:
            return str(loc[-1])
        label = model.field_label(part) if issubclass(model, IndicatorConfig) else field.title
        model = field.annotation if _is_schema(field.annotation) else None
    return label


def _model_at(root: type[_Schema] | None, loc: tuple) -> type[_Schema] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(part) if model and isinstance(part, str) else None
        model = field.annotation if field and _is_schema(field.annotation) else None
    return model


def _unknown_key(parent: type[_Schema] | None, key: Any) -> str:
    shown = repr(str(key)[:40])  # escaped and short: the key may be anything
    if parent is None:
        return f"Unknown field {shown}."
    known = ", ".join(parent.model_fields)
    if parent is IndicatorSet:
        return f"Unknown indicator {shown}; use one of {known}."
    return f"Unknown field {shown} in {parent.label}; use one of {known}."


def _is_schema(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, _Schema)
