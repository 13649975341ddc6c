"""A strategy replayed over historical bars: the fill model, bar by bar. Pure: no database, no
broker. The decisions are bots.strategy.signal_series(), the live engine's own rules.

Fill model (DESIGN.md, "Backtesting"):
- A rule decided on bar t's close fills at bar t+1's open, the slippage the paper exchange uses
  (PAPER_SLIPPAGE_BPS) against the trader, to the cent as the paper exchange rounds.
- Quantity as the engine's: the bot's capital over bar t+1's open, whole shares (or thousandths
  when fractions are allowed), never compounding: every entry uses the bot's capital.
- Stop-loss / take-profit levels are the engine's (from the entry fill, to the cent), checked
  against every bar's low / high from the entry bar on; both touched in one bar: the stop-loss
  counts. They fill at their level, or at the open when the bar opened through it.
- A bar that ends a position by its stop-loss or take-profit makes no new entry on its close: the
  live engine's tick that sells does not also buy.
- A signal on the last bar, with no next bar to fill on, does nothing; a position still open at
  the end is closed at the last close ("End of backtest") for the figures.
- Commission: commission_bps of each fill's value (default 0, as Alpaca).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import numpy as np
import pandas as pd

from bots.schema import StrategyConfig
from bots.strategy import (
    IndicatorCache,
    SignalSeries,
    signal_series,
    stop_loss_price,
    stop_loss_reason,
    take_profit_price,
    take_profit_reason,
    warmup_bars,
)
from tradebots.money import CENT

BASIS_POINT = Decimal("0.0001")
FRACTION = Decimal("0.001")  # as the engine buys fractions
END_OF_BACKTEST = "End of backtest"
LOOP_BLOCK_BARS = 4096


class NotEnoughBars(ValueError):
    """The range is empty, or too short for the strategy's indicators."""


@dataclass(frozen=True)
class Bars:
    """A bar series as the simulation reads it: epoch seconds and float prices, oldest first."""

    time: np.ndarray  # int64, when each bar opened (UTC epoch seconds)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def frame(self) -> pd.DataFrame:
        # The arrays themselves, not copies, which would add 3 MB to every run on a year of
        # minute bars: the indicators only read the columns (Series, copied on write).
        return pd.DataFrame(
            {"open": self.open, "high": self.high, "low": self.low, "close": self.close},
            copy=False,
        )

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(*(array[start:stop] for array in (self.time, self.open, self.high, self.low,
                                                      self.close)))  # fmt: skip

    @classmethod
    def from_rows(cls, rows) -> Bars:
        """From (epoch seconds, open, high, low, close) rows, prices as Decimal or float."""
        array = np.array(rows, dtype=object).reshape(-1, 5)
        return cls(
            time=array[:, 0].astype(np.int64),
            open=array[:, 1].astype(float),
            high=array[:, 2].astype(float),
            low=array[:, 3].astype(float),
            close=array[:, 4].astype(float),
        )


@dataclass(frozen=True)
class Params:
    """What trades: the bot's strategy and settings, and the costs."""

    strategy: StrategyConfig
    capital: Decimal
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    allow_fractional: bool = False
    slippage_bps: Decimal = Decimal(0)
    commission_bps: Decimal = Decimal(0)


@dataclass(frozen=True)
class SimulatedTrade:
    """A round trip. `*_decided` are the bars whose close (or, for a stop-loss / take-profit,
    whose low / high) made the decision; `*_filled` the bars it filled in."""

    qty: Decimal
    entry_decided: int
    entry_filled: int
    entry_price: Decimal
    entry_reason: str
    exit_decided: int
    exit_filled: int
    exit_price: Decimal
    exit_reason: str
    commission: Decimal

    @property
    def pnl(self) -> Decimal:
        return (self.exit_price - self.entry_price) * self.qty - self.commission

    @property
    def return_pct(self) -> Decimal:
        cost = self.entry_price * self.qty
        return (self.pnl / cost * 100) if cost else Decimal(0)


@dataclass
class Result:
    trades: list[SimulatedTrade]
    equity: np.ndarray  # the account's value on every bar's close
    exposed: np.ndarray  # bool per bar: a position was held at its close
    ready_from: int  # the first bar that could decide (the warm-up before it)
    notes: list[str] = field(default_factory=list)


def _slipped(price: float, buying: bool, slippage_bps: Decimal) -> Decimal:
    # The paper exchange's market_fill_price: the price moved against the trader, to the cent.
    factor = 1 + slippage_bps * BASIS_POINT if buying else 1 - slippage_bps * BASIS_POINT
    return (Decimal(repr(price)) * factor).quantize(CENT)


def _quantity(capital: Decimal, price: float, fractional: bool) -> Decimal:
    at = Decimal(repr(price))
    if fractional:
        return (capital / at).quantize(FRACTION, rounding=ROUND_DOWN)
    return Decimal(math.floor(capital / at))


def simulate(params: Params, bars: Bars, cache: IndicatorCache | None = None) -> Result:
    count = len(bars)
    if count == 0:
        raise NotEnoughBars("The range holds no bars.")
    needed = warmup_bars(params.strategy)
    if count < needed + 1:
        raise NotEnoughBars(
            f"The range holds {count} bars; the strategy's indicators need {needed} before "
            f"the first decision and one more to trade on."
        )
    signals = signal_series(params.strategy, bars.frame(), cache)
    commission_rate = params.commission_bps * BASIS_POINT
    trades: list[SimulatedTrade] = []

    # The open position, as plain locals: this loop runs once per bar.
    holding = False
    qty = entry_price = Decimal(0)
    entry_decided = entry_filled = 0
    entry_reason = ""
    stop = profit = None  # levels as Decimal
    stop_at = -math.inf  # the same levels as floats, for the per-bar comparisons
    profit_at = math.inf
    enter_from = exit_from = -1  # the bar a decision was taken on, waiting for the next open

    def close(decided: int, filled: int, price: Decimal, reason: str) -> None:
        value = (entry_price + price) * qty
        trades.append(
            SimulatedTrade(
                qty, entry_decided, entry_filled, entry_price, entry_reason,
                decided, filled, price, reason, (value * commission_rate).quantize(CENT),
            )
        )  # fmt: skip

    for index, bar_open, bar_high, bar_low, buy, sell in _per_bar(bars, signals):
        if exit_from >= 0:
            close(exit_from, index, _slipped(bar_open, False, params.slippage_bps),
                  signals.sell_reason)  # fmt: skip
            holding, exit_from = False, -1
        if enter_from >= 0:
            qty = _quantity(params.capital, bar_open, params.allow_fractional)
            if qty > 0:
                holding = True
                entry_price = _slipped(bar_open, True, params.slippage_bps)
                entry_decided, entry_filled, entry_reason = enter_from, index, signals.buy_reason
                stop = profit = None
                stop_at, profit_at = -math.inf, math.inf
                if params.stop_loss_pct is not None:
                    stop = stop_loss_price(entry_price, params.stop_loss_pct)
                    stop_at = float(stop)
                if params.take_profit_pct is not None:
                    profit = take_profit_price(entry_price, params.take_profit_pct)
                    profit_at = float(profit)
            enter_from = -1
        if holding:
            if bar_low <= stop_at:
                # Opened through the stop: filled at the open, not the level.
                fill = stop if bar_open > stop_at else Decimal(repr(bar_open))
                close(index, index, fill, stop_loss_reason(stop))
                holding = False
                continue
            if bar_high >= profit_at:
                fill = profit if bar_open < profit_at else Decimal(repr(bar_open))
                close(index, index, fill, take_profit_reason(profit))
                holding = False
                continue
            if sell and index + 1 < count:
                exit_from = index
        elif buy and index + 1 < count:
            enter_from = index

    last = count - 1
    if holding:
        close(last, last, Decimal(repr(float(bars.close[last]))), END_OF_BACKTEST)
    equity, exposed = _equity(params.capital, bars, trades, float(commission_rate))
    return Result(trades=trades, equity=equity, exposed=exposed, ready_from=signals.ready_from)


def _per_bar(
    bars: Bars, signals: SignalSeries
) -> Iterator[tuple[int, float, float, float, bool, bool]]:
    """(index, open, high, low, buy, sell) of every bar as plain Python values, which the loop
    compares fastest, converted a block at a time: a year of minute bars as whole lists would
    hold ~8 MB at once in every run of a grid."""
    for first in range(0, len(bars), LOOP_BLOCK_BARS):
        block = slice(first, first + LOOP_BLOCK_BARS)
        yield from zip(
            itertools.count(first),
            bars.open[block].tolist(),
            bars.high[block].tolist(),
            bars.low[block].tolist(),
            signals.buy[block].tolist(),
            signals.sell[block].tolist(),
        )


def _equity(capital: Decimal, bars: Bars, trades: list[SimulatedTrade], commission_rate: float):
    """The account's value at every close: the capital, what closed trades made, and the open
    position at that close. A position is held at the closes from its entry bar up to the one
    before its exit (an exit at an open or inside a bar is not held at that bar's close), except
    a close at the end, held through the last bar."""
    count = len(bars)
    equity = np.full(count, float(capital))
    exposed = np.zeros(count, dtype=bool)
    realized = 0.0
    for trade in trades:
        held_until = trade.exit_filled + (1 if trade.exit_reason == END_OF_BACKTEST else 0)
        held = slice(trade.entry_filled, held_until)
        qty, entry = float(trade.qty), float(trade.entry_price)
        entry_fee = entry * qty * commission_rate
        equity[held] = float(capital) + realized + (bars.close[held] - entry) * qty - entry_fee
        exposed[held] = True
        realized += float(trade.pnl)
        equity[held_until:] = float(capital) + realized
    return equity, exposed
