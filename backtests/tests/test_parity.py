"""Parity: the live engine, ticked bar by bar on the paper exchange, and the backtest over the
same bars make the same trades (decision bar, side, quantity, reason).

The replay. The clock is moved (time-machine) to each bar boundary, the instant bar t+1 opens:
the engine then sees bars <= t complete and the latest price open(t+1) (= close(t) on the paper
market), and trading.engine.evaluate_batch() runs its per-symbol tick body once for the bots.
Each engine Trade is mapped to the last completed bar at the instant it was recorded: its
decision bar. The backtest (backtests.simulation.simulate) runs over the same bars, from the
first bar of the market's history to one bar past the last tick's decision bar (so a decision
on that bar has the open it fills on), and its trades are compared up to that decision bar; the
figures' closing of a position still open at the end ("End of backtest") is no order.

The replay's market begins at HISTORY_START: the paper market's bars before it are cut off, as
for a symbol whose data starts there. At its first ticks the engine therefore has exactly the
bars the backtest has, and it starts deciding on the same bar as the backtest (warmup_bars() - 1),
so neither makes decisions the other could not. The bars are computed once for the whole replay
and served by slicing, as the paper market computes them (a pure function of time).

Deliberate differences, each tested on its own below:

(a) Wicks. A bar's high and low lie beyond its open and close; the engine only ever sees the
    price at its ticks (a bar's open, which is the previous bar's close), so a stop-loss or
    take-profit level touched only by a wick inside a bar is seen by the backtest (it checks
    every bar's low / high) and never by the engine. The parity replay therefore runs on
    wick-free bars (high = max(open, close), low = min(open, close)), one series for both.
    test_a_level_touched_only_by_a_wick_exits_the_backtest_not_the_engine shows the difference.
    Exit prices differ too, outside what is compared: the backtest fills a stop-loss or
    take-profit at its level (or at the open when a bar opened through it), without slippage;
    the engine sells at the next tick's price, slipped as the paper exchange slips.

(b) Where an indicator starts. Exponentially smoothed indicators (RSI, MACD, EMA) depend a
    little on the first bar of the series they are computed on: the engine computes them over
    the window it fetches (the strategy's warm-up plus EXTRA_BARS, or the chart's need if more:
    185 bars for the strategy here), the backtest over its whole range. The difference decays
    geometrically with the window's length. On the replay series, a 185-bar window against
    the whole series up to the same bar differs by at most about 6e-5 RSI points, 1e-5 dollars
    on the MACD and signal lines and 3e-12 dollars on a 13-bar EMA;
    test_a_fetched_window_and_the_whole_series_differ_by_little bounds these (RSI < 1e-3,
    MACD < 1e-4, EMA < 1e-9), and test_the_engines_window_and_the_whole_series_decide_alike
    shows that they change no decision.

(c) A stop-loss closer than the slippage. The backtest checks a position's levels from its entry
    bar's open on; the engine first at the tick after the buy. With a stop-loss tighter than the
    paper exchange's slippage (under 0.05% at the default 5 bps), the stop lies above the quote
    the buy filled at, so the backtest stops out on the entry bar at that open, while the engine
    sells only if the price at a later tick is at or below the stop.
    test_a_stop_loss_closer_than_the_slippage_exits_the_backtest_at_its_entry shows it.
"""

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import time_machine
from django.conf import settings
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator

from backtests.simulation import END_OF_BACKTEST, Bars, Params, SimulatedTrade, simulate
from bots import charts
from bots.models import Bot
from bots.schema import StrategyConfig
from bots.strategy import (
    prices_frame,
    signal_series,
    stop_loss_price,
    stop_loss_reason,
    take_profit_price,
    warmup_bars,
)
from bots.tests.factories import BotFactory
from tradebots.broker.base import TimeFrame
from tradebots.broker.paper import market
from trading import engine
from trading.models import Trade

TIMEFRAME = TimeFrame.MIN_1
STEP = timedelta(seconds=TIMEFRAME.seconds)
HISTORY_START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
TICKS = 2_000

# Five indicators, majority vote: on these minute bars it buys and sells by signal, and its
# stop-loss and take-profit both trigger (the test checks that every kind of exit occurs).
MAJORITY_STRATEGY = StrategyConfig.model_validate(
    {
        "indicators": {
            "rsi": {"enabled": True, "period": 14, "oversold": 35, "overbought": 65},
            "macd": {"enabled": True},
            "bollinger": {"enabled": True, "window": 20, "std": "1.5"},
            "stochastic": {"enabled": True, "oversold": 25, "overbought": 75},
            "ema_cross": {"enabled": True, "fast": 5, "slow": 13},
        },
        "buy_rule": "majority",
        "sell_rule": "majority",
    }
)
# RSI stays below 98 on these bars: buys at its first decision, never sells by signal.
BUY_AND_HOLD_STRATEGY = StrategyConfig.model_validate(
    {
        "indicators": {"rsi": {"enabled": True, "oversold": 98, "overbought": 99}},
        "buy_rule": "rsi",
        "sell_rule": "rsi",
    }
)

unpatched_bars = market.bars


def wick_free(bar):
    return replace(bar, high=max(bar.open, bar.close), low=min(bar.open, bar.close))


class ReplayMarket:
    """The paper market's bars from ``history_start`` on (none before it), without their wicks
    unless ``wicks``: computed once per symbol for the whole replay and served by slicing, as
    the paper market would compute them at every tick (its bars are a pure function of time)."""

    def __init__(self, history_start: datetime, bar_count: int, *, wicks: bool):
        self.history_start, self.bar_count, self.wicks = history_start, bar_count, wicks
        self._series = {}

    def series(self, symbol: str) -> list:
        if symbol not in self._series:
            until = self.history_start + self.bar_count * STEP
            found = unpatched_bars(symbol, TIMEFRAME, self.bar_count, until)
            self._series[symbol] = found if self.wicks else [wick_free(bar) for bar in found]
        return self._series[symbol]

    def bars(self, symbol, timeframe, limit, until):
        """market.bars(): the last ``limit`` completed bars before ``until``."""
        assert timeframe == TIMEFRAME and until <= self.history_start + self.bar_count * STEP
        completed = math.floor((until - self.history_start) / STEP)
        return self.series(symbol)[max(completed - limit, 0) : completed]

    def frame(self, symbol: str) -> Bars:
        """The whole series, as the backtest reads it."""
        return Bars.from_rows(
            [
                (int(bar.timestamp.timestamp()), bar.open, bar.high, bar.low, bar.close)
                for bar in self.series(symbol)
            ]
        )


def bar_index(instant: datetime) -> int:
    """The bar that opens at or runs through ``instant``, counted from HISTORY_START."""
    return math.floor((instant - HISTORY_START) / STEP)


def replay_engine(bots: list[Bot], warmup: int, ticks: int) -> None:
    """Tick the engine at the boundaries where bars warmup-1 ... warmup+ticks-2 have just
    closed: its first tick is the first at which the strategy can decide. Every tick must have
    decided for every bot (a bot that errs, is skipped or waits would miss its trades)."""
    first = HISTORY_START + warmup * STEP
    batch = engine.Batch(TIMEFRAME, tuple(sorted({bot.symbol for bot in bots})))
    with time_machine.travel(first, tick=False) as traveller:
        for tick in range(ticks):
            traveller.move_to(first + tick * STEP)
            outcomes = engine.evaluate_batch(batch)
            undecided = [o.describe() for o in outcomes if o.action not in ("buy", "sell", "hold")]
            assert len(outcomes) == len(bots) and not undecided, undecided


def engine_trades(bot: Bot) -> list[tuple[int, str, Decimal, str]]:
    trades = list(Trade.objects.filter(bot=bot).order_by("created_at", "id"))
    assert all(trade.status == Trade.Status.FILLED for trade in trades)
    # Recorded at the instant a bar opened: the bar before it is the one the tick decided on.
    return [
        (bar_index(trade.created_at) - 1, trade.side, trade.qty, trade.reason) for trade in trades
    ]


def backtest(bot: Bot, bars: Bars) -> list[SimulatedTrade]:
    params = Params(
        strategy=StrategyConfig.model_validate(bot.strategy),
        capital=bot.capital,
        stop_loss_pct=bot.stop_loss_pct,
        take_profit_pct=bot.take_profit_pct,
        allow_fractional=bot.allow_fractional,
        slippage_bps=settings.PAPER_SLIPPAGE_BPS,
    )
    return simulate(params, bars).trades


def backtest_events(
    trades: list[SimulatedTrade], last_decided: int
) -> list[tuple[int, str, Decimal, str]]:
    """The backtest's round trips as the engine's orders, up to the last bar the engine decided
    on; the figures' closing of a position still open at the end is no order."""
    events = []
    for trade in trades:
        if trade.entry_decided <= last_decided:
            events.append((trade.entry_decided, "buy", trade.qty, trade.entry_reason))
        if trade.exit_reason != END_OF_BACKTEST and trade.exit_decided <= last_decided:
            events.append((trade.exit_decided, "sell", trade.qty, trade.exit_reason))
    return events


def replay_market(monkeypatch, warmup: int, ticks: int, *, wicks: bool) -> ReplayMarket:
    """The market the engine reads during a replay of ``ticks`` ticks: bars up to the one after
    the last tick's decision bar, which the backtest needs to fill that decision."""
    replay = ReplayMarket(HISTORY_START, warmup + ticks, wicks=wicks)
    monkeypatch.setattr(market, "bars", replay.bars)
    return replay


def running_bot(strategy: StrategyConfig, **fields) -> Bot:
    return BotFactory(
        status=Bot.Status.RUNNING,
        timeframe=Bot.Timeframe.MIN_1,
        capital=Decimal("10000"),
        strategy=strategy.model_dump(mode="json"),
        **fields,
    )


# The engine sends orders outside any transaction, so these replays need a transactional database
# (conftest.py marks them "transactional": `make test-fast` leaves them out).
@pytest.mark.django_db(transaction=True)
def test_the_engine_ticked_bar_by_bar_and_the_backtest_make_the_same_trades(monkeypatch):
    warmup = warmup_bars(MAJORITY_STRATEGY)
    replay = replay_market(monkeypatch, warmup, TICKS, wicks=False)
    # Two bots on one symbol, so the tick evaluates the strategy once for both whenever they
    # hold alike: whole shares, and fractions with other stop-loss / take-profit levels.
    whole = running_bot(
        MAJORITY_STRATEGY, symbol="AAPL", stop_loss_pct=Decimal("1.5"), take_profit_pct=Decimal(2)
    )
    fractional = running_bot(
        MAJORITY_STRATEGY, symbol="AAPL", stop_loss_pct=Decimal(1),
        take_profit_pct=Decimal("1.5"), allow_fractional=True,
    )  # fmt: skip

    replay_engine([whole, fractional], warmup, TICKS)

    last_decided = warmup + TICKS - 2
    for bot in (whole, fractional):
        expected = backtest_events(backtest(bot, replay.frame(bot.symbol)), last_decided)
        assert engine_trades(bot) == expected
        # The replay is only worth something if it went through every kind of decision.
        reasons = {reason.split(" (")[0] for _, _, _, reason in expected}
        assert reasons == {
            "Majority vote buy signal",
            "Majority vote sell signal",
            "Stop-loss triggered",
            "Take-profit triggered",
        }
        assert len(expected) >= 50
    fractional_quantities = [qty for _, _, qty, _ in engine_trades(fractional)]
    assert all(qty != qty.to_integral_value() for qty in fractional_quantities)


def test_the_replay_market_serves_the_paper_markets_own_bars(monkeypatch):
    replay = replay_market(monkeypatch, 35, 400, wicks=True)
    until = HISTORY_START + 300 * STEP
    assert replay.bars("AAPL", TIMEFRAME, 185, until) == unpatched_bars(
        "AAPL", TIMEFRAME, 185, until
    )
    # Before its history starts, the replay's market has fewer bars than asked for.
    assert replay.bars("AAPL", TIMEFRAME, 185, HISTORY_START + 40 * STEP) == unpatched_bars(
        "AAPL", TIMEFRAME, 40, HISTORY_START + 40 * STEP
    )


def wick_only_level(bars: Bars, entry: Decimal, level_of, below: bool):
    """The first percentage (two decimals, as a bot's setting) whose level, from ``entry``, is
    touched by a wick of ``bars`` but by none of their opens and closes."""
    ticks = [Decimal(repr(float(price))) for price in (*bars.open, bars.close[-1])]
    extreme = Decimal(repr(float(min(bars.low) if below else max(bars.high))))
    for hundredths in range(1, 1000):
        pct = Decimal(hundredths) / 100
        level = level_of(entry, pct)
        if below and level >= extreme and all(price > level for price in ticks):
            return pct
        if not below and level <= extreme and all(price < level for price in ticks):
            return pct
    raise AssertionError("No level in these bars is touched by a wick alone")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("exit_kind", "level_of", "below"),
    [("Stop-loss", stop_loss_price, True), ("Take-profit", take_profit_price, False)],
)
def test_a_level_touched_only_by_a_wick_exits_the_backtest_not_the_engine(
    monkeypatch, exit_kind, level_of, below
):
    # A short replay on the paper market's own bars, wicks included.
    ticks = 60
    warmup = warmup_bars(BUY_AND_HOLD_STRATEGY)
    replay = replay_market(monkeypatch, warmup, ticks, wicks=True)
    first_decided, last_decided = warmup - 1, warmup + ticks - 2
    bars = replay.frame("AAPL")
    # The buy on the first decision fills at the next open, slipped as the paper exchange does.
    entry = (
        Decimal(repr(float(bars.open[first_decided + 1])))
        * (1 + settings.PAPER_SLIPPAGE_BPS / 10_000)
    ).quantize(Decimal("0.01"))
    held = bars.slice(first_decided + 1, last_decided + 1)
    pct = wick_only_level(held, entry, level_of, below)
    levels = {"stop_loss_pct": pct} if below else {"take_profit_pct": pct}
    bot = running_bot(BUY_AND_HOLD_STRATEGY, symbol="AAPL", **levels)

    replay_engine([bot], warmup, ticks)

    simulated = backtest(bot, bars)
    assert simulated[0].entry_decided == first_decided
    assert simulated[0].exit_reason.startswith(f"{exit_kind} triggered")
    exit_bar = simulated[0].exit_decided
    assert exit_bar <= last_decided
    level = float(level_of(entry, pct))
    touched_by_wick = bars.low[exit_bar] <= level if below else bars.high[exit_bar] >= level
    assert touched_by_wick
    # The engine saw every price from that bar's open on and none reached the level: it holds.
    assert [side for _, side, _, _ in engine_trades(bot)] == ["buy"]
    # On the same bars without their wicks the backtest holds as the engine did: the wick alone
    # made the exit.
    wick_free_bars = ReplayMarket(HISTORY_START, warmup + ticks, wicks=False).frame("AAPL")
    assert backtest_events(backtest(bot, wick_free_bars), last_decided) == engine_trades(bot)


def engine_window(strategy: StrategyConfig) -> int:
    """How many bars the engine fetches for a batch whose bots all trade ``strategy``."""
    return max(warmup_bars(strategy) + engine.EXTRA_BARS, charts.bars_needed(strategy))


def test_a_fetched_window_and_the_whole_series_differ_by_little():
    replay = ReplayMarket(HISTORY_START, warmup_bars(MAJORITY_STRATEGY) + TICKS, wicks=False)
    close = pd.Series(replay.frame("AAPL").close)
    window = engine_window(MAJORITY_STRATEGY)
    assert window == 185
    rsi, macd, ema = (MAJORITY_STRATEGY.config(key) for key in ("rsi", "macd", "ema_cross"))

    def lines(prices: pd.Series) -> dict[str, float]:
        converging = MACD(prices, window_slow=macd.slow, window_fast=macd.fast,
                          window_sign=macd.signal)  # fmt: skip
        return {
            "rsi": RSIIndicator(prices, window=rsi.period).rsi().iloc[-1],
            "macd": converging.macd().iloc[-1],
            "macd signal": converging.macd_signal().iloc[-1],
            "ema slow": EMAIndicator(prices, window=ema.slow).ema_indicator().iloc[-1],
        }

    differences = dict.fromkeys(("rsi", "macd", "macd signal", "ema slow"), 0.0)
    for last in range(window - 1, len(close), 10):
        fetched = lines(close.iloc[last - window + 1 : last + 1].reset_index(drop=True))
        full = lines(close.iloc[: last + 1])
        for name in differences:
            differences[name] = max(differences[name], abs(fetched[name] - full[name]))
    # A few hundred-thousandths of an RSI point, millionths of a dollar for MACD: far below
    # anything a threshold or a cross could tell apart here (see the next test).
    assert 0 < differences["rsi"] < 1e-3
    assert 0 < differences["macd"] < 1e-4
    assert 0 < differences["macd signal"] < 1e-4
    assert differences["ema slow"] < 1e-9


def test_the_engines_window_and_the_whole_series_decide_alike():
    """Across the replay, the rules decided on the engine's fetched window (as evaluate() does,
    on its last bar) and on the whole series up to that bar (as the backtest does) agree: on
    every fifth bar here, to keep this test quick (the replay above checks every bar where a
    decision made a trade)."""
    warmup = warmup_bars(MAJORITY_STRATEGY)
    replay = ReplayMarket(HISTORY_START, warmup + TICKS, wicks=False)
    whole = signal_series(MAJORITY_STRATEGY, replay.frame("AAPL").frame())
    window = engine_window(MAJORITY_STRATEGY)
    fetched_buy, fetched_sell = [], []
    decided = slice(warmup - 1, warmup + TICKS - 1, 5)
    for decided_bar in range(decided.start, decided.stop, decided.step):
        bars = replay.bars("AAPL", TIMEFRAME, window, HISTORY_START + (decided_bar + 1) * STEP)
        signals = signal_series(MAJORITY_STRATEGY, prices_frame(bars))
        fetched_buy.append(signals.buy[-1])
        fetched_sell.append(signals.sell[-1])
    assert fetched_buy == whole.buy[decided].tolist()
    assert fetched_sell == whole.sell[decided].tolist()
    assert sum(fetched_buy) >= 20 and sum(fetched_sell) >= 20


@pytest.mark.django_db(transaction=True)
def test_a_stop_loss_closer_than_the_slippage_exits_the_backtest_at_its_entry(monkeypatch):
    ticks = 2
    warmup = warmup_bars(BUY_AND_HOLD_STRATEGY)
    replay = replay_market(monkeypatch, warmup, ticks, wicks=False)
    bars = replay.frame("AAPL")
    entry_bar = warmup  # the buy decided on the first decidable bar fills at the next open
    quote = Decimal(repr(float(bars.open[entry_bar])))
    bot = running_bot(BUY_AND_HOLD_STRATEGY, symbol="AAPL", stop_loss_pct=Decimal("0.01"))
    entry = (quote * (1 + settings.PAPER_SLIPPAGE_BPS / 10_000)).quantize(Decimal("0.01"))
    stop = stop_loss_price(entry, bot.stop_loss_pct)
    # The setting: the stop lies above the quote the buy filled at (0.01% below a fill 0.05%
    # above it), and the next tick's price is above the stop again.
    assert quote < stop < Decimal(repr(float(bars.close[entry_bar])))

    replay_engine([bot], warmup, ticks)

    (simulated,) = backtest(bot, bars)
    assert (simulated.entry_filled, simulated.exit_filled) == (entry_bar, entry_bar)
    assert (simulated.exit_price, simulated.exit_reason) == (quote, stop_loss_reason(stop))
    assert [side for _, side, _, _ in engine_trades(bot)] == ["buy"]
