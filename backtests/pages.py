"""What a backtest's pages show, built from what a run stored: the figures, the equity and
drawdown chart, a page of trades, the price chart around a trade, and a comparison of runs."""

from __future__ import annotations

from datetime import timedelta

from bots.books import Fill
from bots.charts import build_chart
from bots.models import Bot
from bots.schema import StrategyConfig
from bots.strategy import describe_strategy, warmup_bars

from .models import Backtest, HistoricalBar

TRADES_PER_PAGE = 50
FAILED_RUNS_SHOWN = 20
# The price chart shows this many bars: around a chosen trade, or the end of the range.
CHART_BARS = 600
COMPARE_COLOURS = ("#2457d6", "#c2410c", "#117a3d", "#9333ea", "#0891b2", "#b42318")

# (metric key, label, unit) in the order the page lists them; units: % $ s (duration) or none.
METRICS = (
    ("total_return_pct", "Total return", "%"),
    ("cagr_pct", "CAGR", "%"),
    ("buy_and_hold_return_pct", "Buy & hold return", "%"),
    ("volatility_pct", "Annualised volatility", "%"),
    ("sharpe", "Sharpe ratio", ""),
    ("sortino", "Sortino ratio", ""),
    ("calmar", "Calmar ratio", ""),
    ("max_drawdown_pct", "Max drawdown", "%"),
    ("max_drawdown_duration_seconds", "Max drawdown duration", "s"),
    ("exposure_pct", "Exposure time", "%"),
    ("trades", "Trades", ""),
    ("win_rate_pct", "Win rate", "%"),
    ("profit_factor", "Profit factor", ""),
    ("expectancy", "Expectancy (per trade)", "$"),
    ("average_trade_pct", "Average trade", "%"),
    ("best_trade_pct", "Best trade", "%"),
    ("worst_trade_pct", "Worst trade", "%"),
    ("average_holding_seconds", "Average holding time", "s"),
    ("sqn", "SQN", ""),
    ("net_profit", "Net profit", "$"),
    ("final_equity", "Final equity", "$"),
)


def metric_rows(metrics: dict) -> list[dict]:
    return [
        {"key": key, "label": label, "value": format_metric(metrics.get(key), unit)}
        for key, label, unit in METRICS
    ]


def format_metric(value, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return format_duration(float(value))
    if unit == "$":
        number = float(value)
        return f"{'-' if number < 0 else ''}${abs(number):,.2f}"
    if unit == "%":
        return f"{float(value):,.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):,.2f}"


def format_duration(seconds: float) -> str:
    """A span as a trader reads it: "3d 4h", "2h 15m", "45m"."""
    span = timedelta(seconds=round(seconds))
    days, rest = span.days, span.seconds
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{rest}s"


def strategy_summary(backtest: Backtest) -> dict:
    return describe_strategy(StrategyConfig.model_validate(backtest.strategy))


def equity_chart(backtest: Backtest) -> dict:
    """The stored equity curve and, below it, its drawdown (percent under the running peak)."""
    return {
        "equity": [{"time": time, "value": f"{value:.2f}"} for time, value in backtest.equity],
        "drawdown": [{"time": time, "value": f"{value:.4f}"} for time, value in backtest.drawdown],
    }


def results(backtest: Backtest, after: str | None = None, trade: str | None = None) -> dict:
    metrics = backtest.metrics
    return {
        "metric_rows": metric_rows(metrics),
        "exit_reasons": metrics.get("exit_reasons", []),
        "monthly": _monthly_table(metrics.get("monthly_returns", [])),
        "equity_chart": equity_chart(backtest),
        "strategy": strategy_summary(backtest),
        "bots": Bot.objects.order_by("name").only("pk", "name", "symbol"),
        **trades_page(backtest, after),
        **price_chart(backtest, trade),
    }


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _monthly_table(monthly: list[dict]) -> dict:
    """metrics.monthly_returns' rows for the page: {"months": names, "years": rows}."""
    return {"months": MONTHS, "years": monthly}


MAX_TRADE_NUMBER = 10**9


def _page_number(text: str | None) -> int:
    """A trade number from the query string: plain digits, within bounds, else 0."""
    text = (text or "").strip()
    if not text.isascii() or not text.isdecimal() or len(text) > 10:
        return 0
    return min(int(text), MAX_TRADE_NUMBER)


def trades_page(backtest: Backtest, after: str | None) -> dict:
    """A page of trades by number: numbers are dense from 1, so a page is one index range."""
    start = _page_number(after)
    trades = list(
        backtest.trades.filter(number__gt=start).order_by("number")[: TRADES_PER_PAGE + 1]
    )
    more = len(trades) > TRADES_PER_PAGE
    trades = trades[:TRADES_PER_PAGE]
    return {
        "trades": trades,
        "trades_after": start,
        "trades_next": trades[-1].number if more else None,
        "trades_previous": max(start - TRADES_PER_PAGE, 0) if start else None,
    }


def price_chart(backtest: Backtest, trade_number: str | None) -> dict:
    """The bot chart's component over CHART_BARS stored bars: around trade ``trade_number``, or
    the last bars of the range; the backtest's entries and exits on it."""
    strategy = StrategyConfig.model_validate(backtest.strategy)
    bars = HistoricalBar.objects.filter(
        symbol=backtest.symbol,
        timeframe=backtest.timeframe,
        timestamp__gte=backtest.start,
        timestamp__lt=backtest.end,
    )
    focus = None
    number = _page_number(trade_number)
    if number:
        focus = backtest.trades.filter(number=number).first()
    warmup = warmup_bars(strategy)
    if focus is not None:
        middle = focus.entry_at + (focus.exit_at - focus.entry_at) / 2
        before = list(
            bars.filter(timestamp__lt=middle).order_by("-timestamp")[: CHART_BARS // 2 + warmup]
        )[::-1]
        after = list(bars.filter(timestamp__gte=middle).order_by("timestamp")[: CHART_BARS // 2])
        window = before + after
    else:
        window = list(bars.order_by("-timestamp")[: CHART_BARS + warmup])[::-1]
    if not window:
        return {"chart": None, "chart_error": "No bars stored for this range.", "focus": focus}
    first, last = window[0].timestamp, window[-1].timestamp
    trades = backtest.trades.filter(exit_at__gte=first, entry_at__lte=last)
    fills = sorted(
        [Fill("buy", t.qty, t.entry_price, t.entry_at) for t in trades if t.entry_at >= first]
        + [Fill("sell", t.qty, t.exit_price, t.exit_at) for t in trades if t.exit_at <= last],
        key=lambda fill: fill.filled_at,
    )
    return {"chart": build_chart(strategy, window, fills, shown=CHART_BARS), "focus": focus}


def comparison(backtests: list[Backtest]) -> dict:
    """Runs side by side: the same metrics in columns, equity curves as percent return so runs
    with different capital overlay."""
    rows = [
        {
            "label": label,
            "values": [format_metric(backtest.metrics.get(key), unit) for backtest in backtests],
        }
        for key, label, unit in METRICS
    ]
    curves = []
    for colour, backtest in zip(COMPARE_COLOURS, backtests, strict=False):
        capital = float(backtest.capital)
        curves.append(
            {
                "name": backtest.name,
                "color": colour,
                "points": [
                    {"time": time, "value": f"{(value / capital - 1) * 100:.4f}"}
                    for time, value in backtest.equity
                ],
            }
        )
    return {"backtests": backtests, "rows": rows, "curves": curves}


def optimisation_results(optimisation) -> dict:
    """The grid's runs ranked by its figure: in-sample figures, and out-of-sample ones for the
    best (the gap between the two is what over-fitting looks like)."""
    from .optimisation import RANKINGS, ranked

    label, _ = RANKINGS[optimisation.metric]
    shown = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades", "win_rate_pct")
    units = {key: unit for key, _, unit in METRICS}
    rows = []
    for rank, run in enumerate(ranked(optimisation), start=1):
        outside = run.out_of_sample_metrics or {}
        rows.append(
            {
                "rank": rank,
                "run": run,
                "score": format_metric(
                    run.metrics.get(optimisation.metric), units[optimisation.metric]
                ),
                "in_sample": [format_metric(run.metrics.get(key), units[key]) for key in shown],
                "out_of_sample": (
                    [format_metric(outside.get(key), units[key]) for key in shown]
                    if outside and "error" not in outside
                    else None
                ),
                "out_of_sample_error": outside.get("error"),
            }
        )
    return {
        "metric_label": label,
        "columns": [next(lbl for key, lbl, _ in METRICS if key == name) for name in shown],
        "rows": rows,
        "failed_runs": list(
            optimisation.backtests.filter(status=Backtest.Status.FAILED).values_list(
                "name", "message"
            )[:FAILED_RUNS_SHOWN]
        ),
    }
