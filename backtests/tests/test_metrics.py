"""The backtest's figures against values computed by hand on small series."""

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from backtests import metrics
from backtests.simulation import END_OF_BACKTEST, Bars, Params, Result, SimulatedTrade, simulate
from bots.schema import StrategyConfig
from bots.strategy import stop_loss_reason, take_profit_reason

DAY = 24 * 60 * 60
YEAR = 31_557_600  # 365.25 days
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())


def make_bars(closes, step=DAY, start=START, times=None):
    """Bars that open at the previous close (the first at its own close), high and low 1 % out."""
    closes = np.asarray(closes, dtype=float)
    opens = np.concatenate([closes[:1], closes[:-1]])
    if times is None:
        times = start + step * np.arange(len(closes), dtype=np.int64)
    return Bars(
        time=np.asarray(times, dtype=np.int64),
        open=opens,
        high=np.maximum(opens, closes) * 1.01,
        low=np.minimum(opens, closes) * 0.99,
        close=closes,
    )


def make_trade(entry, exit, *, qty=1, entry_filled=1, exit_filled=2, reason="RSI sell signal",
               commission="0"):  # fmt: skip
    return SimulatedTrade(
        qty=Decimal(qty),
        entry_decided=entry_filled - 1,
        entry_filled=entry_filled,
        entry_price=Decimal(entry),
        entry_reason="RSI buy signal",
        exit_decided=exit_filled - 1,
        exit_filled=exit_filled,
        exit_price=Decimal(exit),
        exit_reason=reason,
        commission=Decimal(commission),
    )


def make_result(equity, trades=(), exposed=None, ready_from=0):
    equity = np.asarray(equity, dtype=float)
    if exposed is None:
        exposed = np.zeros(len(equity), dtype=bool)
    return Result(
        trades=list(trades), equity=equity, exposed=np.asarray(exposed), ready_from=ready_from
    )


def weekday_minute_times(year=2024):
    """Regular-hours minute bars (13:30 to 19:59 UTC, 390 a day) on every weekday of a year."""
    days = [
        date(year, 1, 1) + timedelta(days=offset)
        for offset in range(366)
        if (date(year, 1, 1) + timedelta(days=offset)).year == year
    ]
    weekdays = [day for day in days if day.weekday() < 5]
    opens = [
        int(datetime(d.year, d.month, d.day, 13, 30, tzinfo=UTC).timestamp()) for d in weekdays
    ]
    return np.concatenate([start + 60 * np.arange(390) for start in opens]), len(weekdays)


# periods_per_year


def test_bars_around_the_clock_read_as_their_calendar_count():
    hourly = START + 3600 * np.arange(100, dtype=np.int64)
    daily = START + DAY * np.arange(366, dtype=np.int64)
    assert metrics.periods_per_year(hourly) == pytest.approx(365.25 * 24)
    assert metrics.periods_per_year(daily) == pytest.approx(365.25)


def test_minute_bars_in_regular_hours_are_390_a_weekday_not_525_960():
    minutes, weekdays = weekday_minute_times()
    assert weekdays == 262  # 2024
    per_year = metrics.periods_per_year(minutes)
    assert per_year == pytest.approx(390 * 262, rel=1e-3)
    assert 95_000 < per_year < 105_000

    # One bar a weekday: the same calendar gives the daily count.
    days = minutes[::390]
    assert metrics.periods_per_year(days) == pytest.approx(262, rel=5e-3)


@pytest.mark.parametrize("times", [[], [START], [START, START]])
def test_no_span_no_bars_per_year(times):
    assert metrics.periods_per_year(np.array(times, dtype=np.int64)) is None


def weekday_times(count, per_day):
    """`count` bars of `per_day` a weekday (a minute apart from 13:30 UTC), from 2024-01-01."""
    times = []
    day = date(2024, 1, 1)
    while len(times) < count:
        if day.weekday() < 5:
            opening = int(datetime(day.year, day.month, day.day, 13, 30, tzinfo=UTC).timestamp())
            times.extend(opening + 60 * minute for minute in range(per_day))
        day += timedelta(days=1)
    return np.array(times[:count], dtype=np.int64)


def test_annualised_figures_scale_with_the_bar_density():
    """The same per-bar returns on regular-hours minute bars and on daily bars: the volatility
    and the Sharpe ratio scale by the square root of the ratio of bars per year."""
    count = 390 * 20
    rng = np.random.default_rng(7)
    equity = 10_000 * np.cumprod(np.concatenate([[1], 1 + rng.normal(0.0002, 0.001, count - 1)]))
    by_minute = metrics.return_metrics(equity, weekday_times(count, 390), equity)
    by_day = metrics.return_metrics(equity, weekday_times(count, 1), equity)

    # 20 weekdays of minutes read a little dense (no weekend after the last Friday).
    assert by_minute["periods_per_year"] == pytest.approx(390 * 261, rel=0.15)
    assert by_day["periods_per_year"] == pytest.approx(365.25 * 5 / 7, rel=0.01)
    density = by_minute["periods_per_year"] / by_day["periods_per_year"]
    assert by_minute["volatility_pct"] / by_day["volatility_pct"] == pytest.approx(
        math.sqrt(density)
    )
    assert by_minute["sharpe"] / by_day["sharpe"] == pytest.approx(math.sqrt(density))


# compute: one winning trade over the equity 100, 110, 99, 121


def test_the_equity_100_110_99_121_by_hand():
    # A year between bars: one bar per year, so annualised figures are per-bar figures.
    bars = make_bars([100, 110, 99, 121], step=YEAR)
    trade = make_trade("100", "121", entry_filled=1, exit_filled=3, reason=END_OF_BACKTEST)
    result = make_result([100, 110, 99, 121], [trade], exposed=[False, True, True, True])

    figures = metrics.compute(result, bars, Decimal(100))

    returns = [0.1, -0.1, 121 / 99 - 1]
    mean = sum(returns) / 3
    sample_std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    downside = math.sqrt(0.1**2 / 3)  # only -10 % is below zero; mean over all three
    cagr = 1.21 ** (1 / 3) - 1
    assert figures["periods_per_year"] == pytest.approx(1)
    assert figures["total_return_pct"] == pytest.approx(21)
    assert figures["cagr_pct"] == pytest.approx(cagr * 100)
    assert figures["cagr_pct"] == pytest.approx(6.5602, abs=1e-4)
    assert figures["buy_and_hold_return_pct"] == pytest.approx(21)
    assert figures["volatility_pct"] == pytest.approx(sample_std * 100)
    assert figures["volatility_pct"] == pytest.approx(16.2669, abs=1e-4)
    assert figures["sharpe"] == pytest.approx(mean / sample_std)
    assert figures["sortino"] == pytest.approx(mean / downside)
    assert figures["calmar"] == pytest.approx(cagr / 0.1)
    assert figures["max_drawdown_pct"] == pytest.approx(-10)
    # From the peak at 110 (bar 1) to the recovery at 121 (bar 3).
    assert figures["max_drawdown_duration_bars"] == 2
    assert figures["max_drawdown_duration_seconds"] == 2 * YEAR
    assert figures["exposure_pct"] == pytest.approx(75)
    # The single trade, closed as "End of backtest", is counted.
    assert figures["trades"] == 1
    assert figures["win_rate_pct"] == 100
    assert figures["profit_factor"] is None  # no losses
    assert figures["expectancy"] == "21"
    assert figures["average_trade_pct"] == figures["best_trade_pct"] == 21
    assert figures["worst_trade_pct"] == 21
    assert figures["average_holding_seconds"] == 2 * YEAR
    assert figures["sqn"] is None  # one trade
    assert figures["final_equity"] == "121"
    assert figures["net_profit"] == "21"
    assert set(figures) == set(metrics.METRIC_LABELS)


def test_buy_and_hold_and_exposure_are_measured_after_the_warm_up():
    bars = make_bars([50, 100, 100, 110, 99, 121])
    trade = make_trade("100", "121", entry_filled=3, exit_filled=5, reason=END_OF_BACKTEST)
    exposed = [False, False, False, True, True, True]
    result = make_result([100, 100, 100, 110, 99, 121], [trade], exposed, ready_from=2)

    after_warm_up = metrics.compute(result, bars, Decimal(100))
    assert after_warm_up["buy_and_hold_return_pct"] == pytest.approx(21)  # 100 -> 121
    assert after_warm_up["exposure_pct"] == pytest.approx(75)  # 3 of bars 2..5
    assert after_warm_up["periods_per_year"] == pytest.approx(365.25)  # 3 intervals in 3 days

    everything = metrics.compute(result, bars, Decimal(100), include_warmup=True)
    assert everything["buy_and_hold_return_pct"] == pytest.approx(142)  # 50 -> 121
    assert everything["exposure_pct"] == pytest.approx(50)
    # The warm-up adds flat days: the same 21 % over five days instead of three.
    assert everything["cagr_pct"] < after_warm_up["cagr_pct"]
    assert everything["total_return_pct"] == after_warm_up["total_return_pct"] == 21


# trade figures


def test_two_winners_and_a_loser_by_hand():
    times = START + DAY * np.arange(10, dtype=np.int64)
    trades = [
        make_trade("100", "110", entry_filled=1, exit_filled=3),  # +10, 2 days
        make_trade("100", "120", entry_filled=4, exit_filled=5),  # +20, 1 day
        make_trade("100", "95", entry_filled=6, exit_filled=9),  # -5, 3 days
    ]
    figures = metrics.trade_metrics(trades, times)

    assert figures["trades"] == 3
    assert figures["win_rate_pct"] == pytest.approx(200 / 3)
    assert figures["profit_factor"] == pytest.approx(30 / 5)
    assert figures["expectancy"] == "8.33"  # 25 / 3
    assert figures["average_trade_pct"] == pytest.approx(25 / 3)
    assert figures["best_trade_pct"] == 20
    assert figures["worst_trade_pct"] == -5
    assert figures["average_holding_seconds"] == 2 * DAY
    # P&L 10, 20, -5: mean 25/3, squared deviations sum to 950/3, sample variance 475/3.
    assert figures["sqn"] == pytest.approx(math.sqrt(3) * (25 / 3) / math.sqrt(475 / 3))
    assert figures["sqn"] == pytest.approx(1.14708, abs=1e-5)


def test_all_losing_trades():
    times = START + DAY * np.arange(5, dtype=np.int64)
    trades = [
        make_trade("100", "95", entry_filled=1, exit_filled=2),
        make_trade("100", "90", entry_filled=3, exit_filled=4),
    ]
    figures = metrics.trade_metrics(trades, times)

    assert figures["win_rate_pct"] == 0
    assert figures["profit_factor"] == 0.0  # no gross profit over 15 of losses
    assert figures["expectancy"] == "-7.5"
    assert figures["best_trade_pct"] == -5
    assert figures["worst_trade_pct"] == -10
    # P&L -5, -10: mean -7.5, sample std 5 / sqrt(2).
    assert figures["sqn"] == pytest.approx(-3.0)


def test_a_winner_makes_money_after_commission():
    times = START + DAY * np.arange(3, dtype=np.int64)
    trades = [
        make_trade("100", "100", qty=10, commission="0.20"),  # -0.20: a loss
        make_trade("100", "100.10", qty=10, commission="0.20"),  # +1.00 - 0.20
        make_trade("100", "100", qty=10),  # broke even: not a winner
    ]
    figures = metrics.trade_metrics(trades, times)

    assert figures["win_rate_pct"] == pytest.approx(100 / 3)
    assert figures["profit_factor"] == pytest.approx(0.8 / 0.2)
    assert figures["expectancy"] == "0.2"


def test_identical_trades_have_no_sqn():
    times = START + DAY * np.arange(3, dtype=np.int64)
    trades = [make_trade("100", "110"), make_trade("100", "110")]
    assert metrics.trade_metrics(trades, times)["sqn"] is None


def test_no_trades_and_flat_equity():
    bars = make_bars([100, 101, 99, 102, 100])
    figures = metrics.compute(make_result([1000] * 5), bars, Decimal(1000))

    assert figures["total_return_pct"] == 0
    assert figures["cagr_pct"] == 0
    assert figures["volatility_pct"] == 0
    # No volatility: the ratios over it are undefined, not infinite.
    assert figures["sharpe"] is None
    assert figures["sortino"] is None
    assert figures["calmar"] is None
    assert figures["max_drawdown_pct"] == 0
    assert figures["max_drawdown_duration_bars"] == 0
    assert figures["max_drawdown_duration_seconds"] == 0
    assert figures["exposure_pct"] == 0
    assert figures["trades"] == 0
    for key in ("win_rate_pct", "profit_factor", "expectancy", "average_trade_pct", "sqn",
                "best_trade_pct", "worst_trade_pct", "average_holding_seconds"):  # fmt: skip
        assert figures[key] is None, key
    assert figures["final_equity"] == "1000"
    assert figures["net_profit"] == "0"
    assert figures["buy_and_hold_return_pct"] == pytest.approx(0)
    json.dumps(figures, allow_nan=False)


def test_gains_without_a_loss_have_no_sortino_or_calmar():
    bars = make_bars([100, 110, 121])
    trade = make_trade("100", "121", entry_filled=1, exit_filled=2, reason=END_OF_BACKTEST)
    figures = metrics.compute(make_result([100, 110, 121], [trade]), bars, Decimal(100))

    assert figures["sharpe"] is None  # two equal returns: no spread
    assert figures["sortino"] is None  # no downside
    assert figures["calmar"] is None  # no drawdown
    assert figures["cagr_pct"] is not None
    json.dumps(figures, allow_nan=False)


def test_an_equity_at_or_below_zero_has_no_return_ratios():
    bars = make_bars([100, 50, 10, 20])
    trade = make_trade("100", "-20", qty=2, entry_filled=1, exit_filled=3, reason=END_OF_BACKTEST)
    figures = metrics.compute(make_result([100, 50, -30, -20], [trade]), bars, Decimal(100))

    for key in ("cagr_pct", "volatility_pct", "sharpe", "sortino", "calmar"):
        assert figures[key] is None, key
    assert figures["total_return_pct"] == pytest.approx(-240)
    assert figures["max_drawdown_pct"] == pytest.approx(-130)
    json.dumps(figures, allow_nan=False)


def test_a_single_bar_has_no_annualised_figures():
    figures = metrics.compute(make_result([100]), make_bars([100]), Decimal(100))
    for key in ("cagr_pct", "volatility_pct", "sharpe", "sortino", "calmar", "periods_per_year"):
        assert figures[key] is None, key
    assert figures["total_return_pct"] == 0
    json.dumps(figures, allow_nan=False)


def test_a_few_minutes_of_fast_gains_do_not_annualise_to_infinity():
    bars = make_bars([100, 150, 225], step=60)
    trade = make_trade("100", "225", entry_filled=1, exit_filled=2, reason=END_OF_BACKTEST)
    figures = metrics.compute(make_result([100, 150, 225], [trade]), bars, Decimal(100))
    assert figures["cagr_pct"] is None  # 2.25 ** 262,980 overflows
    json.dumps(figures, allow_nan=False)


def test_bad_input_is_refused():
    bars = make_bars([100, 110, 120])
    with pytest.raises(ValueError, match="not simulated on these bars"):
        metrics.compute(make_result([100, 110]), bars, Decimal(100))
    with pytest.raises(ValueError, match="capital must be positive"):
        metrics.compute(make_result([100, 110, 120]), bars, Decimal(0))


# drawdowns


def test_drawdown_series_in_percent_below_the_peak():
    series = metrics.drawdown_series(np.array([100, 110, 99, 121, 110]))
    assert series.tolist() == pytest.approx([0, 0, -10, 0, 110 / 121 * 100 - 100])


def test_a_drawdown_never_recovered_lasts_to_the_end():
    times = START + DAY * np.arange(4, dtype=np.int64)
    assert metrics.longest_drawdown(np.array([100, 120, 90, 95]), times) == (2 * DAY, 2)


def test_the_longest_drawdown_is_the_longest_in_time():
    # Back at the peak counts as recovered. The first drawdown has more bars, the second more time.
    times = np.array([0, 1, 2, 3, 4, 100, 200], dtype=np.int64) + START
    equity = np.array([100, 90, 95, 100, 90, 99, 100])
    assert metrics.longest_drawdown(equity, times) == (197, 3)


def test_a_float_hair_below_the_peak_is_the_peak():
    times = START + DAY * np.arange(3, dtype=np.int64)
    equity = np.array([100.0, 90.0, 100.0 - 1e-12])
    assert metrics.longest_drawdown(equity, times) == (2 * DAY, 2)
    assert metrics.drawdown_series(equity)[-1] == 0


# exit reasons


def test_exit_reasons_grouped_by_kind():
    trades = [
        make_trade("100", "95", reason=stop_loss_reason(Decimal("95"))),
        make_trade("200", "190", reason=stop_loss_reason(Decimal("190"))),
        make_trade("100", "110", reason=take_profit_reason(Decimal("110"))),
        make_trade("100", "104", reason="RSI sell signal"),
        make_trade("100", "98", reason="RSI sell signal"),
        make_trade("100", "101", reason=END_OF_BACKTEST),
    ]
    rows = {row["reason"]: row for row in metrics.exit_reasons(trades)}

    assert list(rows) == [
        "RSI sell signal",
        "Stop-loss triggered",
        "End of backtest",
        "Take-profit triggered",
    ]  # the most frequent first, then by name
    stops = rows["Stop-loss triggered"]
    assert stops["count"] == 2
    assert stops["win_rate_pct"] == 0
    assert stops["total_pnl"] == "-15"
    assert stops["average_return_pct"] == pytest.approx(-5)
    signals = rows["RSI sell signal"]
    assert signals["count"] == 2
    assert signals["win_rate_pct"] == 50
    assert signals["total_pnl"] == "2"
    assert signals["average_return_pct"] == pytest.approx(1)
    assert rows["Take-profit triggered"]["total_pnl"] == "10"
    assert rows["End of backtest"]["win_rate_pct"] == 100
    assert metrics.exit_reasons([]) == []


# monthly returns


def at(*args):
    return int(datetime(*args, tzinfo=UTC).timestamp())


def test_monthly_returns_from_month_end_equity():
    times = np.array([
        at(2023, 12, 15), at(2023, 12, 29), at(2024, 1, 10), at(2024, 1, 31, 23, 59),
        at(2024, 3, 5),
    ])  # fmt: skip
    equity = np.array([100, 110, 99, 121, 133.1])

    rows = metrics.monthly_returns(equity, times)

    assert [row["year"] for row in rows] == [2023, 2024]
    december = rows[0]
    assert december["months"][:11] == [None] * 11
    assert december["months"][11] == pytest.approx(10)  # 100 (the capital) -> 110
    assert december["total"] == pytest.approx(10)
    year = rows[1]
    assert year["months"][0] == pytest.approx(
        10
    )  # 110 -> 121: the low inside January is not its end
    assert year["months"][1] is None  # no bar in February
    assert year["months"][2] == pytest.approx(10)  # 121 -> 133.1
    assert year["months"][3:] == [None] * 9
    assert year["total"] == pytest.approx(21)  # 110 -> 133.1
    json.dumps(rows, allow_nan=False)


def test_the_first_month_starts_from_the_capital():
    times = np.array([at(2024, 2, 1), at(2024, 2, 20)])
    rows = metrics.monthly_returns(np.array([100, 105]), times, capital=Decimal(80))
    assert rows[0]["months"][1] == pytest.approx(105 / 80 * 100 - 100)
    assert metrics.monthly_returns(np.array([]), np.array([], dtype=np.int64)) == []


# thinning for charts


def test_a_short_series_is_kept_whole():
    times = START + np.arange(5, dtype=np.int64)
    assert metrics.thin(times, np.array([1, 2, 3, 2, 1]), max_points=5) == [
        [START, 1.0], [START + 1, 2.0], [START + 2, 3.0], [START + 3, 2.0], [START + 4, 1.0],
    ]  # fmt: skip


def test_a_long_series_keeps_its_ends_and_its_deepest_fall():
    count = 100_000
    times = START + 60 * np.arange(count, dtype=np.int64)
    values = 100 + np.sin(np.arange(count) / 500)
    values[54_321] = 20  # a one-bar crash
    points = metrics.thin(times, values, max_points=2000)

    assert len(points) <= 2000
    assert points[0] == [START, 100.0]
    assert points[-1] == [int(times[-1]), values[-1]]
    assert [int(times[54_321]), 20.0] in points
    stamps = [stamp for stamp, _ in points]
    assert stamps == sorted(set(stamps))
    # Every bucket's low is kept: the thinned series reaches each stretch's minimum.
    assert min(value for _, value in points) == 20
    json.dumps(points)


def test_thinning_keeps_each_buckets_first_lowest_point_and_its_last():
    count, max_points = 10_007, 101
    times = START + 60 * np.arange(count, dtype=np.int64)
    values = np.round(np.random.default_rng(3).normal(size=count).cumsum())  # many ties
    edges = np.linspace(1, count, (max_points - 1) // 2 + 1).astype(int)
    expected = [0]
    for first, end in zip(edges[:-1], edges[1:], strict=True):
        bucket = values[first:end].tolist()
        lowest = first + bucket.index(min(bucket))
        expected += [lowest, end - 1] if lowest != end - 1 else [end - 1]

    points = metrics.thin(times, values, max_points=max_points)

    assert points == [[int(times[index]), float(values[index])] for index in expected]


def test_thinning_to_too_few_points_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        metrics.thin(np.arange(10), np.arange(10), max_points=2)


# on a real simulation


def test_the_figures_of_a_simulated_strategy():
    count = 2000
    steps = np.arange(count)
    closes = 100 + 8 * np.sin(steps / 30) + steps * 0.01
    bars = make_bars(closes, step=3600)
    strategy = StrategyConfig.model_validate(
        {"indicators": {"rsi": {"enabled": True}}, "buy_rule": "rsi", "sell_rule": "rsi"}
    )
    params = Params(strategy=strategy, capital=Decimal(10_000), stop_loss_pct=Decimal(5))
    result = simulate(params, bars)
    assert len(result.trades) >= 3

    figures = metrics.compute(result, bars, params.capital)

    json.dumps(figures, allow_nan=False)
    assert set(figures) == set(metrics.METRIC_LABELS)
    assert figures["trades"] == len(result.trades)
    # The exact Decimal figures agree with the simulation's float equity curve.
    assert float(figures["final_equity"]) == pytest.approx(result.equity[-1], abs=0.01)
    assert figures["total_return_pct"] == pytest.approx(
        (result.equity[-1] / 10_000 - 1) * 100, abs=1e-6
    )
    assert figures["periods_per_year"] == pytest.approx(365.25 * 24)
    held = result.exposed[result.ready_from :]
    assert figures["exposure_pct"] == pytest.approx(held.sum() / len(held) * 100)
    rows = metrics.exit_reasons(result.trades)
    assert sum(row["count"] for row in rows) == len(result.trades)
    assert sum(Decimal(row["total_pnl"]) for row in rows) == pytest.approx(
        Decimal(figures["net_profit"]), abs=Decimal("0.01") * len(rows)
    )
    curve = metrics.thin(bars.time, metrics.drawdown_series(result.equity), max_points=500)
    assert len(curve) <= 500
    assert min(value for _, value in curve) == pytest.approx(figures["max_drawdown_pct"], abs=1e-9)
