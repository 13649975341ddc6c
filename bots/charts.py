"""The bot detail page's price chart: recent bars, the enabled indicators over them, and where
the strategy's buy and sell rules fired."""

from tradebots.broker import BrokerError, get_broker

from .models import Bot
from .schema import StrategyConfig
from .strategy import Action, indicator_series, warmup_bars

CHART_BARS = 150
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


def _seconds(timestamp) -> int:
    return int(timestamp.timestamp())


def price_chart(bot: Bot, strategy: StrategyConfig) -> dict:
    # Fetch enough history that the indicators have values across the whole visible window.
    fetch = CHART_BARS + warmup_bars(strategy)
    try:
        bars = get_broker().get_bars([bot.symbol], bot.timeframe, fetch).get(bot.symbol, [])
    except BrokerError as error:
        return {"chart": None, "chart_error": f"Price data unavailable: {error}"}
    series = indicator_series(strategy, bars)
    visible = bars[-CHART_BARS:]
    first_visible = visible[0].timestamp if visible else None
    overlays = [
        {
            "name": f"{OVERLAY_NAMES[key]} {line}",
            "color": OVERLAY_COLOURS[(key, line)],
            "points": [
                {"time": _seconds(t), "value": str(v)} for t, v in points if t >= first_visible
            ],
        }
        for key, lines in series["overlays"].items()
        for line, points in lines.items()
    ]
    markers = [
        {"time": _seconds(t), "side": "buy" if action == Action.BUY else "sell", "text": reason}
        for t, action, reason in series["markers"]
        if t >= first_visible
    ]
    return {
        "chart": {
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
            "markers": markers,
        }
    }
