"""What a backtest's result says: the figures of its page, its stored metrics and the ranking of a
grid. Pure functions of a simulation.Result and its bars: no database.

Conventions of every figure here:
- JSON-ready: money as plain decimal strings ("1234.5"), ratios and percents as floats, and None
  where a figure is undefined (no trades, no losses, no volatility, too short a range), never NaN
  or infinity, which JSON cannot carry and a page cannot show.
- Percents are percents: 21.0 is +21 %. Drawdowns are negative (-10.0 is 10 % below the peak), so
  that for every figure but volatility, higher is better when a grid ranks by it.
- A position still open at the end, closed at the last close as "End of backtest", is a trade
  like any other in the trade figures: leaving it out would hide the open loss (or gain) the
  strategy was carrying when the range ended.
"""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal

import numpy as np

from backtests.simulation import Bars, Result, SimulatedTrade
from tradebots.money import plain_decimal, to_cents

SECONDS_PER_YEAR = 365.25 * 24 * 60 * 60
# Equity is float; a recovery to the cent of the peak after float sums must not count as still
# below it.
RECOVERED_TOLERANCE = 1e-9

METRIC_LABELS = {
    "total_return_pct": "Total return [%]",
    "cagr_pct": "CAGR [%]",
    "buy_and_hold_return_pct": "Buy & hold return [%]",
    "volatility_pct": "Volatility (annualised) [%]",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "max_drawdown_pct": "Max. drawdown [%]",
    "max_drawdown_duration_seconds": "Max. drawdown duration [s]",
    "max_drawdown_duration_bars": "Max. drawdown duration [bars]",
    "exposure_pct": "Exposure time [%]",
    "trades": "Trades",
    "win_rate_pct": "Win rate [%]",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy [$ per trade]",
    "average_trade_pct": "Average trade [%]",
    "best_trade_pct": "Best trade [%]",
    "worst_trade_pct": "Worst trade [%]",
    "average_holding_seconds": "Average holding time [s]",
    "sqn": "SQN",
    "final_equity": "Final equity [$]",
    "net_profit": "Net profit [$]",
    "periods_per_year": "Bars per year",
}


def periods_per_year(times: np.ndarray) -> float | None:
    """How many bars a year of this series holds, estimated from the series itself: its bar
    intervals over its span in years of 365.25 days. None with fewer than two bars or no span.

    Why from the data and not from the timeframe: a year of 1-minute bars is about 98,000 bars
    for a stock in regular hours (390 a day, ~252 days), 525,960 for a market open around the
    clock (the paper exchange's synthetic bars), and fewer still for a thinly traded symbol whose
    quiet minutes have no bar. Every annualised figure (CAGR, volatility, Sharpe, Sortino, Calmar)
    scales with this number, so a fixed factor per timeframe would be wrong for all but one kind
    of market; the series' own density is right for each. It is an estimate: a range of a few
    days around a weekend reads a little thinner than the year around it.
    """
    count = len(times)
    if count < 2:
        return None
    span = float(times[-1] - times[0])
    if span <= 0:
        return None
    return (count - 1) / (span / SECONDS_PER_YEAR)


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """The equity's change from each close to the next, as fractions (0.01 is +1 %)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return equity[1:] / equity[:-1] - 1


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """At every point, how far (in percent, zero or negative) the equity is below its highest
    value so far."""
    equity = np.asarray(equity, dtype=float)
    if not len(equity):
        return equity
    peaks = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peaks > 0, (equity / peaks - 1) * 100, 0.0)
    # A float sum that lands a hair under the peak is the peak, not a drawdown of 1e-14 %.
    return np.where(equity >= peaks * (1 - RECOVERED_TOLERANCE), 0.0, drawdown)


def longest_drawdown(equity: np.ndarray, times: np.ndarray) -> tuple[int, int]:
    """The longest time from a peak until the equity is back at it, or until the end when it
    never is: (seconds, bars). The peak is the last close at the high before the fall. (0, 0)
    when the equity never falls."""
    equity = np.asarray(equity, dtype=float)
    if len(equity) < 2:
        return 0, 0
    peaks = np.maximum.accumulate(equity)
    underwater = equity < peaks * (1 - RECOVERED_TOLERANCE)
    # Runs of underwater closes: each starts after a close at the peak (never the first close,
    # which is its own peak) and ends at the close that recovers, or at the last close.
    edges = np.diff(underwater.astype(np.int8))
    starts = np.flatnonzero(edges == 1) + 1
    ends = np.flatnonzero(edges == -1) + 1  # the recovering close
    last = len(equity) - 1
    if len(ends) < len(starts):
        ends = np.append(ends, last)
    longest = (0, 0)
    for start, end in zip(starts, ends, strict=True):
        peak = start - 1
        duration = (int(times[end] - times[peak]), int(end - peak))
        if duration > longest:
            longest = duration
    return longest


def _finite(value) -> float | None:
    """A float for JSON, or None for a figure that is undefined (NaN) or unbounded (inf)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _money(value: Decimal) -> str:
    return plain_decimal(to_cents(value))


def _percent(fraction) -> float | None:
    value = _finite(fraction)
    return None if value is None else value * 100


def return_metrics(
    equity: np.ndarray, times: np.ndarray, closes: np.ndarray
) -> dict[str, float | int | None]:
    """The figures of the equity curve (one value per close, the first being the capital):
    CAGR, buy & hold, volatility, Sharpe, Sortino, Calmar, max drawdown, through empyrical with
    the series' own annualisation (periods_per_year()). The return-based ones are None when the
    equity ever reaches zero or below (the simulation never compounds, so repeated losses can
    take it there): a percent change from a value at or below zero means nothing.

    Buy & hold buys at the first bar's close and holds to the last close: the same closes the
    equity is measured on, so the two returns cover exactly the same stretch of the market."""
    # Imported here, not with the module: empyrical brings scipy.stats (~63 MB), which the web
    # process and the engine's workers, importing this app with every other, never use.
    import empyrical

    equity = np.asarray(equity, dtype=float)
    annualization = periods_per_year(times)
    returns = bar_returns(equity)
    figures: dict[str, float | int | None] = dict.fromkeys(
        ("cagr_pct", "volatility_pct", "sharpe", "sortino", "calmar")
    )
    if annualization is not None and (equity > 0).all():
        with np.errstate(all="ignore"):
            figures.update(
                cagr_pct=_percent(empyrical.annual_return(returns, annualization=annualization)),
                volatility_pct=_percent(
                    empyrical.annual_volatility(returns, annualization=annualization)
                ),
                sharpe=_finite(empyrical.sharpe_ratio(returns, annualization=annualization)),
                sortino=_finite(empyrical.sortino_ratio(returns, annualization=annualization)),
                calmar=_finite(empyrical.calmar_ratio(returns, annualization=annualization)),
            )
    first_close = float(closes[0]) if len(closes) else 0.0
    seconds, bars = longest_drawdown(equity, times)
    drawdown = drawdown_series(equity)
    figures.update(
        buy_and_hold_return_pct=(
            _percent(float(closes[-1]) / first_close - 1) if first_close > 0 else None
        ),
        max_drawdown_pct=_finite(drawdown.min()) if len(drawdown) else None,
        max_drawdown_duration_seconds=seconds,
        max_drawdown_duration_bars=bars,
        periods_per_year=_finite(annualization),
    )
    return figures


def trade_metrics(trades: list[SimulatedTrade], times: np.ndarray) -> dict:
    """The figures of the trade list: count, win rate, profit factor, expectancy, average / best /
    worst trade, average holding time, SQN. `times` are the bars' opening times, which the trades'
    bar indices point into: a holding time runs from the entry fill's bar to the exit fill's bar.

    A winner made money after commission; a trade that broke even is not a winner. SQN (Van
    Tharp's system quality number) is sqrt(n) x mean / standard deviation of the trades' P&L."""
    count = len(trades)
    figures = {
        "trades": count,
        "win_rate_pct": None,
        "profit_factor": None,
        "expectancy": None,
        "average_trade_pct": None,
        "best_trade_pct": None,
        "worst_trade_pct": None,
        "average_holding_seconds": None,
        "sqn": None,
    }
    if not count:
        return figures
    pnls = [trade.pnl for trade in trades]
    returns = [trade.return_pct for trade in trades]
    gross_profit = sum((pnl for pnl in pnls if pnl > 0), Decimal(0))
    gross_loss = -sum((pnl for pnl in pnls if pnl < 0), Decimal(0))
    wins = sum(1 for pnl in pnls if pnl > 0)
    held = [int(times[trade.exit_filled] - times[trade.entry_filled]) for trade in trades]
    figures.update(
        win_rate_pct=wins / count * 100,
        profit_factor=float(gross_profit / gross_loss) if gross_loss else None,
        expectancy=_money(sum(pnls, Decimal(0)) / count),
        average_trade_pct=float(sum(returns, Decimal(0)) / count),
        best_trade_pct=float(max(returns)),
        worst_trade_pct=float(min(returns)),
        average_holding_seconds=sum(held) / count,
    )
    if count >= 2:
        pnl_values = np.array([float(pnl) for pnl in pnls])
        spread = pnl_values.std(ddof=1)
        if spread > 0:
            figures["sqn"] = _finite(math.sqrt(count) * pnl_values.mean() / spread)
    return figures


def compute(
    result: Result, bars: Bars, capital: Decimal, *, include_warmup: bool = False
) -> dict[str, str | float | int | None]:
    """Every figure of a backtest (the keys of METRIC_LABELS), JSON-ready.

    The figures are measured from the first bar the strategy could decide on (result.ready_from)
    unless `include_warmup`: before it the indicators are warming up, nothing can be held and the
    equity is the capital, so counting those bars would dilute the exposure, the volatility and
    the annualised return with time the strategy was never given. Buy & hold and the exposure are
    measured over the same bars. Total return, net profit and final equity are exact: the capital
    plus the trades' P&L in Decimal (every position is closed by the end).

    Exposure time: the share of the measured closes at which a position was held."""
    if capital <= 0:
        raise ValueError(f"The capital must be positive, not {capital}.")
    count = len(bars)
    if not count:
        raise ValueError("There are no bars to measure.")
    if len(result.equity) != count or len(result.exposed) != count:
        raise ValueError(
            f"The result has {len(result.equity)} equity values for {count} bars: "
            f"it was not simulated on these bars."
        )
    start = 0 if include_warmup else min(max(result.ready_from, 0), count - 1)
    net_profit = sum((trade.pnl for trade in result.trades), Decimal(0))
    measured = slice(start, count)
    return {
        "total_return_pct": float(net_profit / capital * 100),
        **return_metrics(result.equity[measured], bars.time[measured], bars.close[measured]),
        "exposure_pct": float(np.mean(result.exposed[measured]) * 100),
        **trade_metrics(result.trades, bars.time),
        "final_equity": _money(capital + net_profit),
        "net_profit": _money(net_profit),
    }


def reason_kind(reason: str) -> str:
    """An exit reason without its detail: the stop-loss and take-profit reasons name their level
    ("Stop-loss triggered (price ≤ $95.00)"), and every stop-loss is one kind of exit."""
    return reason.split(" (", 1)[0]


def exit_reasons(trades: list[SimulatedTrade]) -> list[dict]:
    """The exit-reason table: one row per kind of exit (reason_kind()), the most frequent first,
    with its count, win rate, total P&L and average return per trade."""
    groups: dict[str, list[SimulatedTrade]] = defaultdict(list)
    for trade in trades:
        groups[reason_kind(trade.exit_reason)].append(trade)
    rows = []
    for kind, group in groups.items():
        count = len(group)
        rows.append(
            {
                "reason": kind,
                "count": count,
                "win_rate_pct": sum(1 for trade in group if trade.pnl > 0) / count * 100,
                "total_pnl": _money(sum((trade.pnl for trade in group), Decimal(0))),
                "average_return_pct": float(
                    sum((trade.return_pct for trade in group), Decimal(0)) / count
                ),
            }
        )
    rows.sort(key=lambda row: (-row["count"], row["reason"]))
    return rows


def monthly_returns(
    equity: np.ndarray, times: np.ndarray, capital: Decimal | float | None = None
) -> list[dict]:
    """The monthly returns table: one row per calendar year (UTC) of the series,
    {"year": 2024, "months": [12 percents, None for a month without bars], "total": percent}.

    Each month's return runs from the equity at the previous month's last close to this month's
    last close; the first month's from the starting capital (by default the first close's
    equity, which is the capital: nothing can be held at the first close). A year's total
    compounds the same way, from the previous year's last close.

    Rows rather than {year: {month: ...}}: JSON turns integer keys into strings, and the table
    reads a row per year anyway."""
    equity = np.asarray(equity, dtype=float)
    if len(equity) != len(times):
        raise ValueError(f"{len(equity)} equity values for {len(times)} times.")
    if not len(equity):
        return []
    previous = float(equity[0] if capital is None else capital)
    months = np.asarray(times, dtype=np.int64).astype("datetime64[s]").astype("datetime64[M]")
    last_of_month = np.flatnonzero(np.append(months[1:] != months[:-1], True))
    rows: dict[int, dict] = {}
    year_start = previous
    for index in last_of_month.tolist():
        moment = months[index].item()  # a datetime.date, the month's first day
        year, month, value = moment.year, moment.month, float(equity[index])
        row = rows.get(year)
        if row is None:
            year_start = previous
            row = rows[year] = {"year": year, "months": [None] * 12, "total": None}
        row["months"][month - 1] = _percent(value / previous - 1) if previous > 0 else None
        row["total"] = _percent(value / year_start - 1) if year_start > 0 else None
        previous = value
    return list(rows.values())


def thin(times: np.ndarray, values: np.ndarray, max_points: int = 2000) -> list[list]:
    """At most `max_points` [[epoch seconds, value], ...] for a chart, oldest first.

    A longer series keeps its first point and, from each of (max_points - 1) // 2 equal buckets
    of the rest, the bucket's lowest point and its last: a chart of thinned equity or drawdown
    still shows every deep fall (an average or every n-th point would smooth it away) and ends
    each bucket where the series really was."""
    if max_points < 3:
        raise ValueError(f"A thinned series keeps at least 3 points, not {max_points}.")
    if len(times) != len(values):
        raise ValueError(f"{len(times)} times for {len(values)} values.")
    times, values = np.asarray(times), np.asarray(values, dtype=float)
    count = len(times)
    if count <= max_points:
        keep = np.arange(count)
    else:
        edges = np.linspace(1, count, (max_points - 1) // 2 + 1).astype(int)
        starts, ends = edges[:-1], edges[1:]
        starts, ends = starts[starts < ends], ends[starts < ends]
        # The buckets side by side, padded to the longest with +inf, so one argmin finds every
        # bucket's (first) lowest point: a loop over the buckets took a third of a grid run.
        index = starts[:, None] + np.arange((ends - starts).max())
        padded = np.where(index < ends[:, None], values[np.minimum(index, count - 1)], np.inf)
        lowest, last = starts + padded.argmin(axis=1), ends - 1
        pairs = np.column_stack((lowest, last)).ravel()
        distinct = np.column_stack((lowest != last, np.ones_like(last, dtype=bool))).ravel()
        keep = np.concatenate(([0], pairs[distinct]))
    return [
        [int(time), value]
        for time, value in zip(times[keep].tolist(), values[keep].tolist(), strict=True)
    ]
