"""Synthetic market data for the paper exchange: a pure function of (symbol, timeframe, time).

Every process (daphne, each Celery worker) computes the same prices without sharing state. Each
symbol's log-price is a sum of waves from minutes to weeks long with symbol-specific periods and
phases, plus deterministic noise, so trends, reversals and overbought/oversold swings (RSI, MACD,
Bollinger, crossover signals) occur within an hour on minute bars and over weeks on daily bars.
"""

import functools
import hashlib
import math
from datetime import UTC, datetime
from decimal import Decimal

from tradebots.money import CENT

from ..base import Asset, Bar, TimeFrame

# The paper exchange's tradable universe: large US stocks and ETFs, all fractionable.
PAPER_SYMBOLS = {
    "AAPL": "Apple Inc.", "MSFT": "Microsoft Corporation", "GOOGL": "Alphabet Inc. Class A",
    "GOOG": "Alphabet Inc. Class C", "AMZN": "Amazon.com Inc.", "NVDA": "NVIDIA Corporation",
    "META": "Meta Platforms Inc.", "TSLA": "Tesla Inc.", "BRK.B": "Berkshire Hathaway Inc. B",
    "AVGO": "Broadcom Inc.", "JPM": "JPMorgan Chase & Co.", "LLY": "Eli Lilly and Company",
    "V": "Visa Inc.", "UNH": "UnitedHealth Group Inc.", "XOM": "Exxon Mobil Corporation",
    "MA": "Mastercard Inc.", "JNJ": "Johnson & Johnson", "PG": "Procter & Gamble Company",
    "HD": "Home Depot Inc.", "COST": "Costco Wholesale Corporation", "ABBV": "AbbVie Inc.",
    "MRK": "Merck & Co. Inc.", "CVX": "Chevron Corporation", "KO": "Coca-Cola Company",
    "PEP": "PepsiCo Inc.", "ADBE": "Adobe Inc.", "WMT": "Walmart Inc.", "BAC": "Bank of America",
    "CRM": "Salesforce Inc.", "NFLX": "Netflix Inc.", "AMD": "Advanced Micro Devices Inc.",
    "TMO": "Thermo Fisher Scientific", "MCD": "McDonald's Corporation", "CSCO": "Cisco Systems",
    "ACN": "Accenture plc", "ABT": "Abbott Laboratories", "LIN": "Linde plc",
    "ORCL": "Oracle Corporation", "DIS": "Walt Disney Company", "WFC": "Wells Fargo & Company",
    "INTC": "Intel Corporation", "DHR": "Danaher Corporation", "VZ": "Verizon Communications",
    "TXN": "Texas Instruments", "CMCSA": "Comcast Corporation", "PFE": "Pfizer Inc.",
    "NKE": "Nike Inc.", "QCOM": "Qualcomm Inc.", "PM": "Philip Morris International",
    "UPS": "United Parcel Service", "INTU": "Intuit Inc.", "IBM": "IBM", "AMGN": "Amgen Inc.",
    "HON": "Honeywell International", "CAT": "Caterpillar Inc.", "GE": "General Electric",
    "BA": "Boeing Company", "SBUX": "Starbucks Corporation", "GS": "Goldman Sachs Group",
    "MS": "Morgan Stanley", "BLK": "BlackRock Inc.", "AMAT": "Applied Materials",
    "ISRG": "Intuitive Surgical", "MDT": "Medtronic plc", "DE": "Deere & Company",
    "LMT": "Lockheed Martin", "RTX": "RTX Corporation", "NOW": "ServiceNow Inc.",
    "BKNG": "Booking Holdings", "GILD": "Gilead Sciences", "ADP": "Automatic Data Processing",
    "SYK": "Stryker Corporation", "MDLZ": "Mondelez International", "T": "AT&T Inc.",
    "CVS": "CVS Health", "C": "Citigroup Inc.", "SCHW": "Charles Schwab",
    "MMM": "3M Company", "MO": "Altria Group", "LRCX": "Lam Research", "PYPL": "PayPal Holdings",
    "UBER": "Uber Technologies", "ABNB": "Airbnb Inc.", "SHOP": "Shopify Inc.",
    "SNOW": "Snowflake Inc.", "PLTR": "Palantir Technologies", "F": "Ford Motor Company",
    "GM": "General Motors", "SPOT": "Spotify Technology", "COIN": "Coinbase Global",
    "MU": "Micron Technology", "PANW": "Palo Alto Networks", "CRWD": "CrowdStrike Holdings",
    "SPY": "SPDR S&P 500 ETF Trust", "QQQ": "Invesco QQQ Trust", "IWM": "iShares Russell 2000",
    "DIA": "SPDR Dow Jones Industrial Average ETF", "VTI": "Vanguard Total Stock Market ETF",
    "GLD": "SPDR Gold Shares", "TLT": "iShares 20+ Year Treasury Bond ETF",
}  # fmt: skip


def paper_asset(symbol: str) -> Asset | None:
    name = PAPER_SYMBOLS.get(symbol)
    if name is None:
        return None
    return Asset(symbol=symbol, name=name, tradable=True, fractionable=True)


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (stable across processes, unlike hash())."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# One continuous price path per symbol; every timeframe samples it, so a 1-minute chart, a daily
# chart and the latest price agree. Waves at several scales give each timeframe its own trends.
WAVES = (  # (period in seconds, amplitude of log-price)
    (20 * 60, 0.008),
    (2 * 3600, 0.02),
    (3 * 86400, 0.05),
    (12 * 86400, 0.07),
    (40 * 86400, 0.12),
)
NOISE_STEP_SECONDS = 60
NOISE_AMPLITUDE = 0.003


@functools.cache
def _symbol_shape(symbol: str) -> tuple[float, tuple[tuple[float, float, float], ...]]:
    """The symbol's base log-price and its waves as (angular frequency, phase, amplitude)."""
    waves = []
    for number, (period, amplitude) in enumerate(WAVES):
        # Periods vary by ±30% per symbol so that symbols do not move in lockstep.
        symbol_period = period * (0.7 + 0.6 * _unit(symbol, "period", number))
        phase = 2 * math.pi * _unit(symbol, "phase", number)
        waves.append((2 * math.pi / symbol_period, phase, amplitude))
    return math.log(20 + 480 * _unit(symbol, "base")), tuple(waves)


def _log_price(symbol: str, seconds: float) -> float:
    value, waves = _symbol_shape(symbol)
    for frequency, phase, amplitude in waves:
        value += amplitude * math.sin(frequency * seconds + phase)
    # Noise is fixed per minute and interpolated between minutes, so the price moves smoothly.
    step = seconds / NOISE_STEP_SECONDS
    whole = math.floor(step)
    frac = step - whole
    noise = (1 - frac) * _unit(symbol, whole) + frac * _unit(symbol, whole + 1)
    return value + NOISE_AMPLITUDE * (noise - 0.5)


def _price(symbol: str, seconds: float) -> Decimal:
    return Decimal(repr(math.exp(_log_price(symbol, seconds)))).quantize(CENT)


def latest_price(symbol: str, at: datetime) -> Decimal:
    return _price(symbol, at.timestamp())


def bars(symbol: str, timeframe: TimeFrame, limit: int, until: datetime) -> list[Bar]:
    """The last ``limit`` completed bars before ``until``, oldest first."""
    last_index = math.floor(until.timestamp() / timeframe.seconds) - 1
    return _bars(symbol, timeframe, last_index - limit + 1, last_index)


def bars_between(symbol: str, timeframe: TimeFrame, start: datetime, end: datetime) -> list[Bar]:
    """The bars that open at or after ``start`` and before ``end``, oldest first (complete or
    not: the caller decides how close to now it asks)."""
    step = timeframe.seconds
    first_index = math.ceil(start.timestamp() / step)
    last_index = math.ceil(end.timestamp() / step) - 1
    return _bars(symbol, timeframe, first_index, last_index)


def _bars(symbol: str, timeframe: TimeFrame, first_index: int, last_index: int) -> list[Bar]:
    """Bars number ``first_index`` to ``last_index`` (inclusive) of the timeframe since the
    epoch."""
    if last_index < first_index:
        return []
    step = timeframe.seconds
    # A bar opens at the price of its start instant and closes at that of its end.
    edges = [_price(symbol, index * step) for index in range(first_index, last_index + 2)]
    result = []
    for offset, index in enumerate(range(first_index, last_index + 1)):
        open_, close = edges[offset], edges[offset + 1]
        wick = Decimal(repr(1 + 0.002 * _unit(symbol, timeframe, index, "wick")))
        result.append(
            Bar(
                timestamp=datetime.fromtimestamp(index * step, tz=UTC),
                open=open_,
                high=(max(open_, close) * wick).quantize(CENT),
                low=(min(open_, close) / wick).quantize(CENT),
                close=close,
                volume=Decimal(int(1_000 + 99_000 * _unit(symbol, timeframe, index, "volume"))),
            )
        )
    return result
