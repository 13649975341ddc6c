"""A bot's strategy: which indicators it watches, their parameters, and when it buys or sells.

Pure functions over plain values: no database, no broker. Indicator maths comes from the `ta`
library; prices travel as Decimal and are converted to float only for pandas/ta.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import pandas as pd
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

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

MIN_PERIOD = 2
MAX_PERIOD = 500
MAX_BOLLINGER_STD = Decimal(10)
VALUE_PLACES = Decimal("0.0001")
CENTS = Decimal("0.01")


# --- Configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RsiConfig:
    enabled: bool
    period: int = 14
    oversold: int = 30
    overbought: int = 70


@dataclass(frozen=True)
class MacdConfig:
    """Votes on the MACD line crossing its signal line."""

    enabled: bool
    fast: int = 12
    slow: int = 26
    signal: int = 9


@dataclass(frozen=True)
class BollingerConfig:
    enabled: bool
    window: int = 20
    std: Decimal = Decimal(2)


@dataclass(frozen=True)
class SmaCrossConfig:
    enabled: bool
    fast: int = 10
    slow: int = 30


@dataclass(frozen=True)
class EmaCrossConfig:
    enabled: bool
    fast: int = 12
    slow: int = 26


@dataclass(frozen=True)
class StochasticConfig:
    enabled: bool
    k: int = 14
    d: int = 3
    oversold: int = 20
    overbought: int = 80


IndicatorConfig = (
    RsiConfig | MacdConfig | BollingerConfig | SmaCrossConfig | EmaCrossConfig | StochasticConfig
)
CONFIG_CLASSES: dict[str, type[IndicatorConfig]] = {
    "rsi": RsiConfig,
    "macd": MacdConfig,
    "bollinger": BollingerConfig,
    "sma_cross": SmaCrossConfig,
    "ema_cross": EmaCrossConfig,
    "stochastic": StochasticConfig,
}

PERIOD_PARAMS = frozenset({"period", "fast", "slow", "signal", "window", "k", "d"})
LEVEL_PARAMS = frozenset({"oversold", "overbought"})
PARAM_LABELS = {
    "period": "period",
    "oversold": "oversold level",
    "overbought": "overbought level",
    "fast": "fast period",
    "slow": "slow period",
    "signal": "signal period",
    "window": "window",
    "std": "standard deviations",
    "k": "%K period",
    "d": "%D period",
}


class FlatField(NamedTuple):
    """One form field of the flat strategy form, e.g. ("rsi_period", "rsi", "period", 14, ...)."""

    name: str
    indicator: str
    param: str
    default: bool | int | Decimal
    label: str


def _param_defaults(key: str) -> dict[str, Any]:
    return {field.name: field.default for field in dataclasses.fields(CONFIG_CLASSES[key])}


def _param_label(key: str, param: str) -> str:
    """Labels like "RSI period"; the enabled checkbox is labelled by the indicator name alone."""
    if param == "enabled":
        return INDICATOR_NAMES[key]
    return f"{INDICATOR_NAMES[key]} {PARAM_LABELS[param]}"


def flat_fields() -> list[FlatField]:
    """Every indicator field of the flat form (the rules, buy_rule and sell_rule, come apart)."""
    return [
        FlatField(
            name=f"{key}_{param}",
            indicator=key,
            param=param,
            default=False if param == "enabled" else default,
            label=_param_label(key, param),
        )
        for key in INDICATOR_NAMES
        for param, default in _param_defaults(key).items()
    ]


def _normalise_param(param: str, value: Any) -> Any:
    """Bring the std to Decimal; leave everything else as given so validation can name bad input."""
    if param == "std" and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    return value


def _json_value(value: Any) -> Any:
    # Decimal travels as its exact string ("2.5") so a JSON round-trip gives back the same number.
    return str(value) if isinstance(value, Decimal) else value


def _build_config(key: str, params: Mapping[str, Any]) -> IndicatorConfig:
    values = {}
    for param, default in _param_defaults(key).items():
        value = params.get(param)
        if param == "enabled":
            values[param] = bool(value)
        else:
            blank = value is None or value == ""
            values[param] = default if blank else _normalise_param(param, value)
    return CONFIG_CLASSES[key](**values)


@dataclass(frozen=True)
class Strategy:
    rsi: RsiConfig = RsiConfig(enabled=False)
    macd: MacdConfig = MacdConfig(enabled=False)
    bollinger: BollingerConfig = BollingerConfig(enabled=False)
    sma_cross: SmaCrossConfig = SmaCrossConfig(enabled=False)
    ema_cross: EmaCrossConfig = EmaCrossConfig(enabled=False)
    stochastic: StochasticConfig = StochasticConfig(enabled=False)
    buy_rule: str = MAJORITY
    sell_rule: str = MAJORITY

    @classmethod
    def default(cls) -> Strategy:
        return cls(rsi=RsiConfig(enabled=True), buy_rule="rsi", sell_rule="rsi")

    def config(self, key: str) -> IndicatorConfig:
        return getattr(self, key)

    @property
    def enabled_indicators(self) -> tuple[str, ...]:
        return tuple(key for key in INDICATOR_NAMES if self.config(key).enabled)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Strategy:
        """Read the JSONField shape written by to_dict(); what is missing takes its default."""
        data = data or {}
        indicators = data.get("indicators") or {}
        return cls(
            **{key: _build_config(key, indicators.get(key) or {}) for key in INDICATOR_NAMES},
            buy_rule=data.get("buy_rule") or MAJORITY,
            sell_rule=data.get("sell_rule") or MAJORITY,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "indicators": {
                key: {
                    param: _json_value(value)
                    for param, value in dataclasses.asdict(self.config(key)).items()
                }
                for key in INDICATOR_NAMES
            },
            "buy_rule": self.buy_rule,
            "sell_rule": self.sell_rule,
        }

    @classmethod
    def from_flat(cls, data: Mapping[str, Any]) -> Strategy:
        """Read flat form fields (rsi_enabled, rsi_period, ..., buy_rule, sell_rule). A blank
        parameter (None or ""), as a form leaves for a disabled indicator, takes its default."""
        params: dict[str, dict[str, Any]] = {key: {} for key in INDICATOR_NAMES}
        for field in flat_fields():
            params[field.indicator][field.param] = data.get(field.name)
        return cls(
            **{key: _build_config(key, params[key]) for key in INDICATOR_NAMES},
            buy_rule=data.get("buy_rule") or MAJORITY,
            sell_rule=data.get("sell_rule") or MAJORITY,
        )

    def to_flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {
            field.name: getattr(self.config(field.indicator), field.param)
            for field in flat_fields()
        }
        flat["buy_rule"] = self.buy_rule
        flat["sell_rule"] = self.sell_rule
        return flat


# --- Validation -------------------------------------------------------------------------------


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_config(key: str, config: IndicatorConfig) -> dict[str, str]:
    errors: dict[str, str] = {}
    params = dataclasses.asdict(config)
    for param, value in params.items():
        field_name = f"{key}_{param}"
        label = _param_label(key, param)
        if param in PERIOD_PARAMS:
            if not _is_whole_number(value):
                errors[field_name] = f"{label} must be a whole number."
            elif not MIN_PERIOD <= value <= MAX_PERIOD:
                errors[field_name] = f"{label} must be between {MIN_PERIOD} and {MAX_PERIOD}."
        elif param in LEVEL_PARAMS:
            if not _is_whole_number(value):
                errors[field_name] = f"{label} must be a whole number."
            elif not 0 < value < 100:
                errors[field_name] = f"{label} must be above 0 and below 100."
        elif param == "std":
            if not isinstance(value, Decimal | int | float) or isinstance(value, bool):
                errors[field_name] = f"{label} must be a number."
            elif not (math.isfinite(value) and 0 < value <= MAX_BOLLINGER_STD):
                errors[field_name] = f"{label} must be greater than 0 and at most 10."

    def both_valid(first: str, second: str) -> bool:
        """Both parameters exist for this indicator and passed their own checks."""
        names = {f"{key}_{first}", f"{key}_{second}"}
        return first in params and second in params and not names & errors.keys()

    if both_valid("fast", "slow") and params["fast"] >= params["slow"]:
        errors[f"{key}_fast"] = (
            "Fast period must be shorter than slow period "
            f"(fast {params['fast']}, slow {params['slow']})."
        )
    if both_valid("oversold", "overbought") and params["oversold"] >= params["overbought"]:
        errors[f"{key}_oversold"] = (
            "Oversold level must be below overbought level "
            f"(oversold {params['oversold']}, overbought {params['overbought']})."
        )
    return errors


def validate_strategy(strategy: Strategy) -> dict[str, str]:
    """Errors keyed by flat form field name ("rsi_period", "buy_rule", "indicators", ...).

    Only enabled indicators are checked: a disabled one's parameters are never used, and the
    operator should not be stopped by fields that do not matter.
    """
    errors: dict[str, str] = {}
    enabled = strategy.enabled_indicators
    if not enabled:
        errors["indicators"] = "Enable at least one indicator."
    for key in enabled:
        errors.update(_validate_config(key, strategy.config(key)))
    for field_name, side, rule in (
        ("buy_rule", "Buy", strategy.buy_rule),
        ("sell_rule", "Sell", strategy.sell_rule),
    ):
        if rule == MAJORITY:
            continue
        if rule not in INDICATOR_NAMES:
            errors[field_name] = f"{side} rule must be a majority vote or one of the indicators."
        elif rule not in enabled:
            errors[field_name] = f"{side} rule uses {INDICATOR_NAMES[rule]}, which is not enabled."
    return errors


def _required_bars(key: str, config: IndicatorConfig) -> int:
    """Bars needed for the indicator to have a value on the latest two bars (crosses compare the
    latest bar with the one before), given where `ta` produces its first value."""
    match config:
        case RsiConfig(period=period):
            return period + 1
        case MacdConfig(slow=slow, signal=signal):
            # The signal line is an EMA of the MACD line, which itself starts at bar `slow`.
            return slow + signal
        case BollingerConfig(window=window):
            return window + 1
        case SmaCrossConfig(slow=slow) | EmaCrossConfig(slow=slow):
            return slow + 1
        case StochasticConfig(k=k, d=d):
            # %D is a moving average of %K, which itself starts at bar `k`.
            return k + d
    raise ValueError(f"Unknown indicator {key!r}")


def warmup_bars(strategy: Strategy) -> int:
    """How many bars evaluate() needs to decide: fetch at least this many, oldest first."""
    return max(
        (_required_bars(key, strategy.config(key)) for key in strategy.enabled_indicators),
        default=0,
    )


# --- Signals ----------------------------------------------------------------------------------


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


@dataclass(frozen=True)
class Signal:
    action: Action
    fired: tuple[str, ...]  # the indicator keys whose votes made the action
    reason: str
    values: dict[str, dict[str, Decimal | None]]  # latest value of every enabled indicator


class BarLike(Protocol):
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class _Computed:
    """One indicator over a whole bar series: its lines and its buy/sell vote on every bar."""

    lines: dict[str, pd.Series]
    buy: pd.Series
    sell: pd.Series


def _crossed_above(spread: pd.Series) -> pd.Series:
    return (spread.shift(1) <= 0) & (spread > 0)


def _crossed_below(spread: pd.Series) -> pd.Series:
    return (spread.shift(1) >= 0) & (spread < 0)


def _compute_rsi(config: RsiConfig, prices: pd.DataFrame) -> _Computed:
    rsi = RSIIndicator(prices["close"], window=config.period).rsi()
    return _Computed({"rsi": rsi}, buy=rsi < config.oversold, sell=rsi > config.overbought)


def _compute_macd(config: MacdConfig, prices: pd.DataFrame) -> _Computed:
    macd = MACD(
        prices["close"],
        window_slow=config.slow,
        window_fast=config.fast,
        window_sign=config.signal,
    )
    diff = macd.macd_diff()
    return _Computed(
        {"macd": macd.macd(), "signal": macd.macd_signal(), "diff": diff},
        buy=_crossed_above(diff),
        sell=_crossed_below(diff),
    )


def _compute_bollinger(config: BollingerConfig, prices: pd.DataFrame) -> _Computed:
    bands = BollingerBands(prices["close"], window=config.window, window_dev=float(config.std))
    upper, lower = bands.bollinger_hband(), bands.bollinger_lband()
    return _Computed(
        {"upper": upper, "middle": bands.bollinger_mavg(), "lower": lower},
        buy=prices["close"] < lower,
        sell=prices["close"] > upper,
    )


def _compute_sma_cross(config: SmaCrossConfig, prices: pd.DataFrame) -> _Computed:
    fast = SMAIndicator(prices["close"], window=config.fast).sma_indicator()
    slow = SMAIndicator(prices["close"], window=config.slow).sma_indicator()
    return _Computed(
        {"fast": fast, "slow": slow},
        buy=_crossed_above(fast - slow),
        sell=_crossed_below(fast - slow),
    )


def _compute_ema_cross(config: EmaCrossConfig, prices: pd.DataFrame) -> _Computed:
    fast = EMAIndicator(prices["close"], window=config.fast).ema_indicator()
    slow = EMAIndicator(prices["close"], window=config.slow).ema_indicator()
    return _Computed(
        {"fast": fast, "slow": slow},
        buy=_crossed_above(fast - slow),
        sell=_crossed_below(fast - slow),
    )


def _compute_stochastic(config: StochasticConfig, prices: pd.DataFrame) -> _Computed:
    oscillator = StochasticOscillator(
        prices["high"], prices["low"], prices["close"], window=config.k, smooth_window=config.d
    )
    k = oscillator.stoch()
    return _Computed(
        {"k": k, "d": oscillator.stoch_signal()},
        buy=k < config.oversold,
        sell=k > config.overbought,
    )


_COMPUTE: dict[str, Callable[[Any, pd.DataFrame], _Computed]] = {
    "rsi": _compute_rsi,
    "macd": _compute_macd,
    "bollinger": _compute_bollinger,
    "sma_cross": _compute_sma_cross,
    "ema_cross": _compute_ema_cross,
    "stochastic": _compute_stochastic,
}

# Lines that share the price axis and so belong on the price chart.
PRICE_OVERLAYS: dict[str, tuple[str, ...]] = {
    "bollinger": ("upper", "middle", "lower"),
    "sma_cross": ("fast", "slow"),
    "ema_cross": ("fast", "slow"),
}


def _prices_frame(bars: Sequence[BarLike]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            column: [float(getattr(bar, column)) for bar in bars]
            for column in ("open", "high", "low", "close")
        },
        dtype=float,
    )


def _compute_all(strategy: Strategy, bars: Sequence[BarLike]) -> dict[str, _Computed]:
    prices = _prices_frame(bars)
    return {key: _COMPUTE[key](strategy.config(key), prices) for key in strategy.enabled_indicators}


def _to_decimal(value: float) -> Decimal | None:
    if not math.isfinite(value):
        return None
    return Decimal(str(value)).quantize(VALUE_PLACES, rounding=ROUND_HALF_UP)


def _latest_value(line: pd.Series) -> Decimal | None:
    return _to_decimal(line.iloc[-1]) if len(line) else None


def _votes(computed: Mapping[str, _Computed], action: Action) -> dict[str, pd.Series]:
    return {
        key: (result.buy if action is Action.BUY else result.sell)
        for key, result in computed.items()
    }


def _rule_fires(rule: str, votes: Mapping[str, pd.Series], length: int) -> pd.Series:
    """On every bar: does the rule fire, given each enabled indicator's vote."""
    if rule == MAJORITY:
        if not votes:
            return pd.Series(False, index=range(length))
        count = sum(vote.astype(int) for vote in votes.values())
        return 2 * count > len(votes)
    if rule in votes:
        return votes[rule]
    return pd.Series(False, index=range(length))


def _rule_reason(rule: str, action: Action) -> str:
    who = "Majority vote" if rule == MAJORITY else INDICATOR_NAMES[rule]
    return f"{who} {action} signal"


def evaluate(strategy: Strategy, bars: Sequence[BarLike], holding: bool) -> Signal:
    """Decide on the latest bar: not holding, only the buy rule is checked (BUY or HOLD);
    holding, only the sell rule (SELL or HOLD). `bars` are oldest first."""
    computed = _compute_all(strategy, bars)
    values = {
        key: {name: _latest_value(line) for name, line in result.lines.items()}
        for key, result in computed.items()
    }

    def hold(reason: str) -> Signal:
        return Signal(Action.HOLD, fired=(), reason=reason, values=values)

    if not strategy.enabled_indicators:
        return hold("No indicators enabled")
    needed = warmup_bars(strategy)
    if len(bars) < needed:
        return hold(f"Not enough data ({len(bars)} bars, need {needed})")

    action, rule = (Action.SELL, strategy.sell_rule) if holding else (Action.BUY, strategy.buy_rule)
    votes = _votes(computed, action)
    if not _rule_fires(rule, votes, len(bars)).iloc[-1]:
        return hold("No signal")
    if rule == MAJORITY:
        fired = tuple(key for key, vote in votes.items() if vote.iloc[-1])
    else:
        fired = (rule,)
    return Signal(action, fired=fired, reason=_rule_reason(rule, action), values=values)


def indicator_series(strategy: Strategy, bars: Sequence[BarLike]) -> dict[str, Any]:
    """What a price chart draws over the bars:

    {"overlays": {"bollinger": {"upper": [(timestamp, Decimal), ...], "middle": ..., "lower": ...},
                  "sma_cross": {"fast": [...], "slow": [...]}, "ema_cross": {...}},
     "markers": [(timestamp, Action.BUY, "RSI buy signal"), ...]}

    Only enabled indicators appear; bars where a line has no value yet are left out of it. A
    marker is put wherever the buy or the sell rule fires, whatever the bot held at the time.
    """
    computed = _compute_all(strategy, bars)
    timestamps = [bar.timestamp for bar in bars]
    overlays = {
        key: {
            name: [
                (timestamp, decimal)
                for timestamp, value in zip(timestamps, computed[key].lines[name], strict=True)
                if (decimal := _to_decimal(value)) is not None
            ]
            for name in PRICE_OVERLAYS[key]
        }
        for key in computed
        if key in PRICE_OVERLAYS
    }
    fires = {
        action: _rule_fires(rule, _votes(computed, action), len(bars)).tolist()
        for action, rule in ((Action.BUY, strategy.buy_rule), (Action.SELL, strategy.sell_rule))
    }
    markers = [
        (timestamp, action, _rule_reason(rule, action))
        for index, timestamp in enumerate(timestamps)
        for action, rule in ((Action.BUY, strategy.buy_rule), (Action.SELL, strategy.sell_rule))
        if fires[action][index]
    ]
    return {"overlays": overlays, "markers": markers}


# --- Stop-loss / take-profit ------------------------------------------------------------------


def stop_loss_price(entry_price: Decimal, pct: Decimal) -> Decimal:
    """The price `pct` percent (5 means 5%) below the entry, to the cent, halves rounded up."""
    price = entry_price * (100 - Decimal(pct)) / 100
    return price.quantize(CENTS, rounding=ROUND_HALF_UP)


def take_profit_price(entry_price: Decimal, pct: Decimal) -> Decimal:
    """The price `pct` percent (5 means 5%) above the entry, to the cent, halves rounded up."""
    price = entry_price * (100 + Decimal(pct)) / 100
    return price.quantize(CENTS, rounding=ROUND_HALF_UP)


def _dollars(price: Decimal) -> str:
    return f"${Decimal(price).quantize(CENTS, rounding=ROUND_HALF_UP):,.2f}"


def stop_loss_reason(price: Decimal) -> str:
    return f"Stop-loss triggered (price ≤ {_dollars(price)})"


def take_profit_reason(price: Decimal) -> str:
    return f"Take-profit triggered (price ≥ {_dollars(price)})"
