"""Positions as the broker sees them versus our books: what no bot owns is "unmanaged".

For each symbol, unmanaged = the broker's quantity − what we track, when that difference lies in
the direction of the broker's position (the broker holds more, long or short, than we track).
We track our open positions plus what our bots' open buys may still add (their unbooked
remainder): a fill the broker made that the order sync has not booked yet is a bot's, and must
not be offered for sale as nobody's. A symbol we track not at all is wholly unmanaged; a short
the broker holds shows as a negative quantity. When we track MORE than the broker holds, nothing
is unmanaged: that is a discrepancy for reconciliation, not a position to close.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.utils.text import slugify

from tradebots.broker import BrokerPosition, get_broker
from tradebots.money import to_cents

from .models import Position, Trade


@dataclass
class OpenPositionRow:
    """One of our open positions valued at a price from the broker (None: not known)."""

    position: Position
    price: Decimal | None = None
    closing: bool = False  # a sell for it is in flight

    @property
    def market_value(self) -> Decimal | None:
        return None if self.price is None else self.price * self.position.qty

    @property
    def unrealized_pnl(self) -> Decimal | None:
        if self.price is None:
            return None
        return (self.price - self.position.avg_entry_price) * self.position.qty

    @property
    def unrealized_pct(self) -> Decimal | None:
        if self.price is None or not self.position.avg_entry_price:
            return None
        return (self.price / self.position.avg_entry_price - 1) * 100


LATEST_PRICES_CACHE_KEY = "trading:latest-prices"


def remember_prices(prices: dict[str, Decimal]) -> None:
    """The latest prices read from the broker, for pushes that must not call it (the order
    path): a pushed row shows the last known price instead of none."""
    keep = max(3 * settings.POSITION_VALUES_SECONDS, 60)
    cache.set(LATEST_PRICES_CACHE_KEY, {symbol: str(p) for symbol, p in prices.items()}, keep)


def remembered_prices() -> dict[str, Decimal]:
    stored = cache.get(LATEST_PRICES_CACHE_KEY) or {}
    return {symbol: Decimal(price) for symbol, price in stored.items()}


def unmanaged_row_id(symbol: str) -> str:
    """The Positions table's row (and live-update key) of what no bot owns of ``symbol``."""
    return f"unmanaged-{slugify(symbol)}"


@dataclass(frozen=True)
class OpenTotals:
    """What ALL our open positions add up to at the broker's latest prices (None: no price for
    any), however few of them the page lists."""

    count: int
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    unpriced_count: int  # positions whose symbol the broker had no price for


class SymbolHoldings(dict):
    """Our open positions summed per symbol: {symbol: (count, qty, cost)}, in one query."""

    @classmethod
    def read(cls) -> "SymbolHoldings":
        cost = ExpressionWrapper(
            F("qty") * F("avg_entry_price"),
            output_field=DecimalField(max_digits=30, decimal_places=8),
        )
        rows = (
            Position.objects.filter(is_open=True)
            .values("symbol")
            .annotate(held_count=Count("id"), held_qty=Sum("qty"), held_cost=Sum(cost))
            .order_by()
        )
        return cls(
            (row["symbol"], (row["held_count"], row["held_qty"], row["held_cost"])) for row in rows
        )

    def totals(self, prices: dict[str, Decimal]) -> OpenTotals:
        priced = [(prices[symbol], held) for symbol, held in self.items() if symbol in prices]
        count = sum(held[0] for held in self.values())
        if not priced:
            return OpenTotals(count, None, None, count)
        market_value = sum((price * qty for price, (_, qty, _) in priced), Decimal(0))
        cost = sum((cost for _, (_, _, cost) in priced), Decimal(0))
        unpriced = count - sum(held[0] for _, held in priced)
        return OpenTotals(count, market_value, to_cents(market_value - cost), unpriced)


def realized_total() -> Decimal | None:
    """Realized P&L over all closed positions (None: none closed yet)."""
    return Position.objects.filter(is_open=False).aggregate(total=Sum("realized_pnl"))["total"]


@dataclass(frozen=True)
class UnmanagedPosition:
    symbol: str
    qty: Decimal
    broker_qty: Decimal
    avg_entry_price: Decimal
    current_price: Decimal | None
    market_value: Decimal | None
    unrealized_pl: Decimal | None

    @property
    def pk(self) -> str:
        return unmanaged_row_id(self.symbol)


def tracked_quantities() -> dict[str, Decimal]:
    tracked: dict[str, Decimal] = {}
    held = Position.objects.filter(is_open=True).values("symbol").annotate(total=Sum("qty"))
    coming = (
        Trade.objects.filter(status__in=Trade.OPEN_STATUSES, side=Trade.Side.BUY, bot__isnull=False)
        .values("symbol")
        .annotate(total=Sum(F("qty") - F("filled_qty")))
    )
    for row in [*held, *coming]:
        tracked[row["symbol"]] = tracked.get(row["symbol"], Decimal(0)) + row["total"]
    return tracked


def find_unmanaged(
    broker_positions: list[BrokerPosition], tracked: dict[str, Decimal]
) -> list[UnmanagedPosition]:
    unmanaged = []
    for held in broker_positions:
        excess = held.qty - tracked.get(held.symbol, Decimal(0))
        if excess == 0 or (excess > 0) != (held.qty > 0):
            continue
        share = excess / held.qty  # the unmanaged part's share of the broker's figures
        unmanaged.append(
            UnmanagedPosition(
                symbol=held.symbol,
                qty=excess,
                broker_qty=held.qty,
                avg_entry_price=held.avg_entry_price,
                current_price=held.current_price,
                market_value=_share(held.market_value, share),
                unrealized_pl=_share(held.unrealized_pl, share),
            )
        )
    return sorted(unmanaged, key=lambda position: position.symbol)


def _share(value: Decimal | None, share: Decimal) -> Decimal | None:
    return None if value is None else to_cents(value * share)


def unmanaged_positions() -> list[UnmanagedPosition]:
    """Raises the gateway's BrokerError when the broker cannot be asked."""
    return find_unmanaged(get_broker().list_positions(), tracked_quantities())
