"""What a bot's strategy says on a series of bars: indicator values, buy / sell / hold, the
chart's overlays, oscillator panes and signal markers, and the stop-loss / take-profit prices.

Pure functions over a validated StrategyConfig (bots/schema.py) and plain values: no database,
no broker. Indicator maths comes from the `ta` library; prices travel as Decimal and are
converted to float only for pandas/ta.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

from tradebots.money import format_money, to_cents

from .schema import (
    INDICATOR_NAMES,
    MAJORITY,
    RULE_CHOICES,
    BollingerConfig,
    EmaCrossConfig,
    IndicatorConfig,
    MacdConfig,
    RsiConfig,
    SmaCrossConfig,
    StochasticConfig,
    StrategyConfig,
)

VALUE_PLACES = Decimal("0.0001")


# --- Warm-up ----------------------------------------------------------------------------------


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


def warmup_bars(strategy: StrategyConfig) -> int:
    """How many bars evaluate() needs to decide: fetch at least this many, oldest first."""
    return max(_required_bars(key, strategy.config(key)) for key in strategy.enabled_indicators)


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
# Oscillators on a scale of their own, each drawn in a pane under the price chart.
OSCILLATOR_PANES: dict[str, tuple[str, ...]] = {
    "rsi": ("rsi",),
    "macd": ("macd", "signal", "diff"),
    "stochastic": ("k", "d"),
}


def prices_frame(bars: Sequence[BarLike]) -> pd.DataFrame:
    """Bars as the float columns pandas and ta compute on (open, high, low, close)."""
    return pd.DataFrame(
        {
            column: [float(getattr(bar, column)) for bar in bars]
            for column in ("open", "high", "low", "close")
        },
        dtype=float,
    )


# An indicator's computation depends only on its own settings and the prices: a grid that varies
# one indicator reuses the others' (IndicatorCache, keyed by the indicator's frozen config). It
# keeps only the votes, which is all signal_series() reads: the lines (a float per bar each, three
# for MACD or Bollinger) are for charts and latest values, which never use a cache, and would make
# a grid over MACD's periods hold ~2 MB per combination on a year of minute bars
# (make bench-backtest) for as long as the worker keeps the cache.
IndicatorCache = dict[tuple[str, IndicatorConfig], _Computed]


def _compute_all(
    strategy: StrategyConfig,
    prices: pd.DataFrame,
    cache: IndicatorCache | None = None,
    keep_lines: bool = True,
) -> dict[str, _Computed]:
    """Every enabled indicator over ``prices``. Without ``keep_lines`` only the votes are kept,
    each indicator's lines dropped as soon as it has voted: a year of minute bars with all six
    indicators would otherwise hold thirteen float lines at once in every backtest."""
    computed = {}
    for key in strategy.enabled_indicators:
        config = strategy.config(key)
        if cache is not None and (key, config) in cache:
            computed[key] = cache[(key, config)]
            continue
        result = _COMPUTE[key](config, prices)
        votes_only = _Computed({}, buy=result.buy, sell=result.sell)
        computed[key] = result if keep_lines else votes_only
        if cache is not None:
            cache[(key, config)] = votes_only
    return computed


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


@dataclass(frozen=True)
class SignalSeries:
    """A strategy's rules decided on the close of every bar of a series, oldest first: the one
    decision function of the live engine (which acts on the last bar) and the backtest (which
    walks them all), so the two cannot disagree on what a rule says."""

    buy: np.ndarray  # bool per bar: the buy rule fires on this bar's close
    sell: np.ndarray  # bool per bar: the sell rule fires on this bar's close
    buy_reason: str
    sell_reason: str
    ready_from: int  # the first bar with enough bars up to it to decide (the warm-up)


def signal_series(
    strategy: StrategyConfig,
    prices: pd.DataFrame,
    cache: IndicatorCache | None = None,
) -> SignalSeries:
    """The buy and sell rules on every bar of ``prices`` (prices_frame()). A bar before the
    warm-up never fires: with fewer bars than warmup_bars() a rule has no value to vote on."""
    computed = _compute_all(strategy, prices, cache, keep_lines=False)
    return _signal_series(strategy, computed, len(prices))


def _signal_series(
    strategy: StrategyConfig, computed: Mapping[str, _Computed], length: int
) -> SignalSeries:
    ready_from = warmup_bars(strategy) - 1
    ready = np.arange(length) >= ready_from

    def fires(action: Action, rule: str) -> np.ndarray:
        votes = _votes(computed, action)
        return _rule_fires(rule, votes, length).to_numpy(dtype=bool, na_value=False) & ready

    return SignalSeries(
        buy=fires(Action.BUY, strategy.buy_rule),
        sell=fires(Action.SELL, strategy.sell_rule),
        buy_reason=_rule_reason(strategy.buy_rule, Action.BUY),
        sell_reason=_rule_reason(strategy.sell_rule, Action.SELL),
        ready_from=ready_from,
    )


def evaluate(strategy: StrategyConfig, bars: Sequence[BarLike], holding: bool) -> Signal:
    """Decide on the latest bar: not holding, only the buy rule is checked (BUY or HOLD);
    holding, only the sell rule (SELL or HOLD). `bars` are oldest first. The decision is
    signal_series()'s on the last bar."""
    computed = _compute_all(strategy, prices_frame(bars))
    values = {
        key: {name: _latest_value(line) for name, line in result.lines.items()}
        for key, result in computed.items()
    }

    def hold(reason: str) -> Signal:
        return Signal(Action.HOLD, fired=(), reason=reason, values=values)

    needed = warmup_bars(strategy)
    if len(bars) < needed:
        return hold(f"Not enough data ({len(bars)} bars, need {needed})")

    series = _signal_series(strategy, computed, len(bars))
    action, rule = (Action.SELL, strategy.sell_rule) if holding else (Action.BUY, strategy.buy_rule)
    if not (series.sell if holding else series.buy)[-1]:
        return hold("No signal")
    if rule == MAJORITY:
        fired = tuple(key for key, vote in _votes(computed, action).items() if vote.iloc[-1])
    else:
        fired = (rule,)
    reason = series.sell_reason if holding else series.buy_reason
    return Signal(action, fired=fired, reason=reason, values=values)


def _first_of_runs(fires: Sequence[bool]) -> list[bool]:
    """True on the first bar of each run of consecutive bars where the rule fires."""
    return [fired and (index == 0 or not fires[index - 1]) for index, fired in enumerate(fires)]


def indicator_series(strategy: StrategyConfig, bars: Sequence[BarLike]) -> dict[str, Any]:
    """What a price chart draws over the bars:

    {"overlays": {"bollinger": {"upper": [(timestamp, Decimal), ...], "middle": ..., "lower": ...},
                  "sma_cross": {"fast": [...], "slow": [...]}, "ema_cross": {...}},
     "panes": {"rsi": {"rsi": [...]}, "macd": {"macd": [...], "signal": [...], "diff": [...]},
               "stochastic": {"k": [...], "d": [...]}},
     "markers": [(timestamp, Action.BUY, "RSI buy signal"), ...]}

    Only enabled indicators appear; bars where a line has no value yet are left out of it. A
    marker is put on the first bar of each run of bars where the buy or the sell rule fires,
    whatever the bot held at the time: a rule that holds for ten bars in a row is one signal,
    not ten.
    """
    computed = _compute_all(strategy, prices_frame(bars))
    timestamps = [bar.timestamp for bar in bars]

    def lines(groups: Mapping[str, tuple[str, ...]]) -> dict:
        return {
            key: {
                name: [
                    (timestamp, decimal)
                    for timestamp, value in zip(timestamps, computed[key].lines[name], strict=True)
                    if (decimal := _to_decimal(value)) is not None
                ]
                for name in groups[key]
            }
            for key in computed
            if key in groups
        }

    rules = ((Action.BUY, strategy.buy_rule), (Action.SELL, strategy.sell_rule))
    starts = {
        action: _first_of_runs(_rule_fires(rule, _votes(computed, action), len(bars)).tolist())
        for action, rule in rules
    }
    markers = [
        (timestamp, action, _rule_reason(rule, action))
        for index, timestamp in enumerate(timestamps)
        for action, rule in rules
        if starts[action][index]
    ]
    return {"overlays": lines(PRICE_OVERLAYS), "panes": lines(OSCILLATOR_PANES), "markers": markers}


def describe_strategy(strategy: StrategyConfig) -> dict:
    """A strategy as pages list it: each enabled indicator with its parameters, and the rules."""
    rule_names = dict(RULE_CHOICES)
    return {
        "indicators": [
            {
                "name": INDICATOR_NAMES[key],
                "params": strategy.config(key).model_dump(mode="json", exclude={"enabled"}),
            }
            for key in strategy.enabled_indicators
        ],
        "buy_rule": rule_names[strategy.buy_rule],
        "sell_rule": rule_names[strategy.sell_rule],
    }


# --- Stop-loss / take-profit ------------------------------------------------------------------


def stop_loss_price(entry_price: Decimal, pct: Decimal) -> Decimal:
    """The price `pct` percent (5 means 5%) below the entry, to the cent, halves rounded up."""
    return to_cents(entry_price * (100 - Decimal(pct)) / 100)


def take_profit_price(entry_price: Decimal, pct: Decimal) -> Decimal:
    """The price `pct` percent (5 means 5%) above the entry, to the cent, halves rounded up."""
    return to_cents(entry_price * (100 + Decimal(pct)) / 100)


def stop_loss_reason(price: Decimal) -> str:
    return f"Stop-loss triggered (price ≤ {format_money(price)})"


def take_profit_reason(price: Decimal) -> str:
    return f"Take-profit triggered (price ≥ {format_money(price)})"
