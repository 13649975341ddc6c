"""The bot detail page's chart: recent bars with the price-scale indicators over them, a pane for
each enabled oscillator (RSI, MACD, Stochastic), where the strategy's rules began to fire, and
the bot's own fills.

One dict serves the page (``json_script`` into ``#bot-chart-data``, drawn by
static/js/bot_chart.js), its live refresh and the API (``ChartOut`` in bots/api.py): times are
UNIX seconds, prices and quantities decimal strings.

Live: after the engine evaluates a batch it hands its bars to ``push_charts``; each watched bot's
page gets its chart data again, built from those bars (no broker call of its own) and its fills
(one query for the batch), as an out-of-band swap of ``#bot-chart-source``.
"""

from bisect import bisect_right
from collections.abc import Iterable, Sequence

from django.template.loader import render_to_string

from tradebots import live
from tradebots.broker import BrokerError, get_broker
from tradebots.money import plain_decimal

from .books import Fill, books
from .models import Bot
from .schema import StrategyConfig
from .strategy import Action, BarLike, indicator_series, warmup_bars

CHART_BARS = 150
CHART_DATA = "bots/detail.html#chart-data"
OVERLAY_COLOURS = {
    ("sma_cross", "fast"): "#2457d6",
    ("sma_cross", "slow"): "#9333ea",
    ("ema_cross", "fast"): "#0891b2",
    ("ema_cross", "slow"): "#c2410c",
    ("bollinger", "upper"): "#64748b",
    ("bollinger", "middle"): "#94a3b8",
    ("bollinger", "lower"): "#64748b",
}
OVERLAY_NAMES = {"sma_cross": "SMA", "ema_cross": "EMA", "bollinger": "Bollinger"}
# Each oscillator line: its name on the chart, how it is drawn, its colour.
PANE_LINES = {
    ("rsi", "rsi"): ("RSI", "line", "#7c3aed"),
    ("macd", "macd"): ("MACD", "line", "#2457d6"),
    ("macd", "signal"): ("Signal", "line", "#c2410c"),
    ("macd", "diff"): ("Histogram", "histogram", "#94a3b8"),
    ("stochastic", "k"): ("%K", "line", "#0891b2"),
    ("stochastic", "d"): ("%D", "line", "#c2410c"),
}


def bars_needed(strategy: StrategyConfig) -> int:
    """Bars to fetch so the indicators have values across the whole visible window."""
    return CHART_BARS + warmup_bars(strategy)


def price_chart(bot: Bot, strategy: StrategyConfig) -> dict:
    """``{"chart": the chart data}``, or ``{"chart": None, "chart_error": why}`` when the
    broker has no bars for us."""
    try:
        bars = get_broker().get_bars([bot.symbol], bot.timeframe, bars_needed(strategy))
    except BrokerError as error:
        return {"chart": None, "chart_error": f"Price data unavailable: {error}"}
    bars = bars.get(bot.symbol, [])
    since = _first_visible(bars)
    fills = books().fills([bot.pk], since).get(bot.pk, []) if since else []
    return {"chart": build_chart(strategy, bars, fills)}


def _seconds(timestamp) -> int:
    return int(timestamp.timestamp())


def _first_visible(bars: Sequence[BarLike]):
    visible = bars[-CHART_BARS:]
    return visible[0].timestamp if visible else None


def _points(points, first_visible) -> list[dict]:
    return [{"time": _seconds(t), "value": str(v)} for t, v in points if t >= first_visible]


def _levels(strategy: StrategyConfig, key: str) -> list[dict]:
    """The horizontal lines an oscillator's rule compares with: the strategy's own levels."""
    if key == "macd":
        return [{"name": "Zero", "value": "0"}]
    config = strategy.config(key)
    return [
        {"name": "Oversold", "value": str(config.oversold)},
        {"name": "Overbought", "value": str(config.overbought)},
    ]


def _pane_name(strategy: StrategyConfig, key: str) -> str:
    config = strategy.config(key)
    match key:
        case "rsi":
            return f"RSI {config.period}"
        case "macd":
            return f"MACD {config.fast} {config.slow} {config.signal}"
    return f"Stochastic {config.k} {config.d}"


def _fill_markers(fills: Iterable[Fill], bar_times: list) -> list[dict]:
    """Each fill on the bar it happened in (the last bar that began at or before it); fills
    before the first bar are not on the chart."""
    markers = []
    for fill in fills:
        index = bisect_right(bar_times, fill.filled_at) - 1
        if index < 0:
            continue
        markers.append(
            {
                "time": _seconds(bar_times[index]),
                "side": fill.side,
                "qty": plain_decimal(fill.qty),
                "price": plain_decimal(fill.price),
            }
        )
    return markers


def build_chart(
    strategy: StrategyConfig,
    bars: Sequence[BarLike],
    fills: Iterable[Fill],
    shown: int = CHART_BARS,
) -> dict:
    """The chart of the last ``shown`` of ``bars`` (oldest first; the earlier ones warm the
    indicators up) with ``fills`` marked on their bars."""
    series = indicator_series(strategy, bars)
    visible = list(bars[-shown:])
    if not visible:
        return {"bars": [], "overlays": [], "panes": [], "markers": [], "fills": []}
    first_visible = visible[0].timestamp
    overlays = [
        {
            "name": f"{OVERLAY_NAMES[key]} {line}",
            "color": OVERLAY_COLOURS[(key, line)],
            "points": _points(points, first_visible),
        }
        for key, lines in series["overlays"].items()
        for line, points in lines.items()
    ]
    panes = [
        {
            "key": key,
            "name": _pane_name(strategy, key),
            "series": [
                {
                    "name": PANE_LINES[(key, line)][0],
                    "kind": PANE_LINES[(key, line)][1],
                    "color": PANE_LINES[(key, line)][2],
                    "points": _points(points, first_visible),
                }
                for line, points in lines.items()
            ],
            "levels": _levels(strategy, key),
        }
        for key, lines in series["panes"].items()
    ]
    markers = [
        {"time": _seconds(t), "side": "buy" if action == Action.BUY else "sell", "text": reason}
        for t, action, reason in series["markers"]
        if t >= first_visible
    ]
    return {
        "bars": [
            {
                "time": _seconds(bar.timestamp),
                "open": str(bar.open),
                "high": str(bar.high),
                "low": str(bar.low),
                "close": str(bar.close),
            }
            for bar in visible
        ],
        "overlays": overlays,
        "panes": panes,
        "markers": markers,
        "fills": _fill_markers(fills, [bar.timestamp for bar in visible]),
    }


def push_charts(evaluated: Iterable[tuple[Bot, StrategyConfig]], bars: dict) -> None:
    """Send fresh chart data to the open pages of these bots, built from ``bars`` (symbol ->
    bars, oldest first: what the engine fetched for its batch). Inside ``live.coalesced()`` the
    batch is rendered once, when the block ends, and only for the bots a page is showing."""
    charts = {bot.pk: (bot, strategy) for bot, strategy in evaluated}
    if charts:
        live.push(("bot-charts", *sorted(charts)), lambda: render_charts(charts, bars))


def render_charts(charts: dict, bars: dict) -> list[live.Fragment]:
    """``charts``: {bot id: (bot, strategy)}. Building a chart costs a few milliseconds of
    indicator maths, so bots no page shows are skipped (one Redis round trip to find them)."""
    watched = live.watched_groups(live.bot_group(pk) for pk in charts)
    shown = {pk: entry for pk, entry in charts.items() if live.bot_group(pk) in watched}
    if not shown:
        return []
    windows = {
        pk: bars.get(bot.symbol, [])[-bars_needed(strategy) :]
        for pk, (bot, strategy) in shown.items()
    }
    starts = [since for window in windows.values() if (since := _first_visible(window))]
    fills = books().fills(list(shown), min(starts)) if starts else {}
    return [
        live.Fragment(
            live.bot_group(pk),
            render_to_string(
                CHART_DATA,
                {"chart": build_chart(strategy, windows[pk], fills.get(pk, [])), "oob": True},
            ),
        )
        for pk, (bot, strategy) in shown.items()
    ]
