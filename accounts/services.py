"""The brokerage account as the operator sees it: the broker's figures next to our books."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.core.cache import cache
from django.db.models import Avg, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from bots.services import CapitalSummary, capital_figures
from tradebots import live
from tradebots.broker import (
    BrokerError,
    alpaca_configured,
    broker_label,
    describe_failure,
    get_broker,
)
from tradebots.money import CENT
from trading.models import Position

from .models import EquitySnapshot

logger = logging.getLogger(__name__)

# Below this share of buying power, available capital is shown as running low.
LOW_AVAILABLE_SHARE = Decimal("0.10")


@dataclass(frozen=True)
class AccountSummary:
    broker: str  # paper_exchange, alpaca_paper or alpaca_live
    broker_label: str
    allocated_capital: Decimal  # Σ capital of all bots: the specification's figure
    reserved_capital: Decimal  # Σ what each bot may still spend (bots.services docstring)
    deployed_capital: Decimal  # Σ open position cost + unfilled open buy notional
    total_realized_gains: Decimal
    account_number: str | None = None
    equity: Decimal | None = None
    cash: Decimal | None = None
    buying_power: Decimal | None = None
    portfolio_value: Decimal | None = None
    error: str | None = None

    @property
    def available_capital(self) -> Decimal | None:
        """Buying power − reserved: invested money already left the buying power, so it is not
        subtracted a second time."""
        if self.buying_power is None:
            return None
        return self.buying_power - self.reserved_capital

    @property
    def available_level(self) -> str | None:
        """healthy, low (under 10% of buying power) or over (reserved beyond buying power)."""
        available = self.available_capital
        if available is None:
            return None
        if available < 0:
            return "over"
        if available < self.buying_power * LOW_AVAILABLE_SHARE:
            return "low"
        return "healthy"

    @property
    def reserved_share(self) -> Decimal | None:
        """Reserved capital as a percentage of buying power, capped at 100, for the bar."""
        if not self.buying_power or self.buying_power <= 0:
            return None
        return min(self.reserved_capital / self.buying_power * 100, Decimal(100))


def broker_kind() -> str:
    if not alpaca_configured():
        return "paper_exchange"
    return "alpaca_paper" if settings.ALPACA_PAPER else "alpaca_live"


def total_realized_gains() -> Decimal:
    closed = Position.objects.filter(is_open=False)
    return closed.aggregate(total=Sum("realized_pnl"))["total"] or Decimal(0)


BROKER_ACCOUNT_CACHE_KEY = "tradebots:broker-account"


def _broker_account(fresh: bool):
    """The broker's account figures for display. Readings within ACCOUNT_REFRESH_SECONDS of
    the last one share it, so open dashboards and API clients cost the broker one call per
    window however many there are (Alpaca's request budget); the refresh after a change asks
    afresh. The capital checks never come here: they read buying power at that moment."""
    window = settings.ACCOUNT_REFRESH_SECONDS
    if not fresh and window > 0:
        try:
            cached = cache.get(BROKER_ACCOUNT_CACHE_KEY)
        except redis.RedisError:  # no shared reading: ask the broker
            cached = None
        if cached is not None:
            return cached
    account = get_broker().get_account()
    if window > 0:
        try:
            cache.set(BROKER_ACCOUNT_CACHE_KEY, account, timeout=window)
        except redis.RedisError:
            logger.warning("Could not share the account reading", exc_info=True)
    return account


def account_summary(*, fresh: bool = False) -> AccountSummary:
    capital = capital_figures()
    books = {
        "broker": broker_kind(),
        "broker_label": broker_label(),
        "allocated_capital": capital.allocated,
        "reserved_capital": capital.reserved,
        "deployed_capital": capital.deployed,
        "total_realized_gains": total_realized_gains(),
    }
    try:
        account = _broker_account(fresh)
    except BrokerError as error:
        logger.warning("Account figures unavailable: %s", error)
        return AccountSummary(**books, error=describe_failure(error))
    return AccountSummary(
        **books,
        account_number=account.account_number,
        equity=account.equity,
        cash=account.cash,
        buying_power=account.buying_power,
        portfolio_value=account.portfolio_value,
    )


# --- live refresh ------------------------------------------------------------------------------


MAX_EQUITY_POINTS = 2000


def record_equity(summary: AccountSummary) -> EquitySnapshot | None:
    """Keep the account's value as the broker just gave it (nothing when it could not be read),
    and drop snapshots older than EQUITY_KEEP_DAYS."""
    if summary.equity is None:
        return None
    now = timezone.now()
    snapshot = EquitySnapshot.objects.create(
        taken_at=now, equity=summary.equity, cash=summary.cash or 0
    )
    keep = timedelta(days=settings.EQUITY_KEEP_DAYS)
    EquitySnapshot.objects.filter(taken_at__lt=now - keep).delete()
    return snapshot


def snapshot_equity() -> EquitySnapshot | None:
    """The scheduled reading (beat, every EQUITY_SNAPSHOT_MINUTES): one broker account call."""
    return record_equity(account_summary(fresh=True))


def equity_series() -> list[dict]:
    """The account's value over time, oldest first, for a line chart: [{"time": unix seconds,
    "value": "100000.00"}]. Up to MAX_EQUITY_POINTS snapshots as taken; beyond, the average of
    each hour, then of each day, computed by the database (a year of five-minute snapshots is
    105,000 rows: never read into Python)."""
    snapshots = EquitySnapshot.objects.order_by()
    if snapshots.count() <= MAX_EQUITY_POINTS:
        rows = snapshots.order_by("taken_at").values_list("taken_at", "equity")
    else:
        for truncate in (TruncHour, TruncDay):
            rows = (
                snapshots.annotate(bucket=truncate("taken_at"))
                .values("bucket")
                .annotate(value=Avg("equity"))
                .order_by("bucket")
                .values_list("bucket", "value")
            )
            if rows.count() <= MAX_EQUITY_POINTS:
                break
    points: dict[int, Decimal] = {}
    for taken_at, equity in rows:
        points[int(taken_at.timestamp())] = Decimal(equity).quantize(CENT)
    return [{"time": second, "value": str(value)} for second, value in points.items()]


def push_account_summary() -> None:
    """Every open dashboard's account summary, read afresh (tradebots.account_refresh); the
    reading is kept as an equity snapshot too."""
    summary = account_summary(fresh=True)
    record_equity(summary)
    live.broadcast(
        live.DASHBOARD_GROUP, "accounts/dashboard.html#account-summary", {"account": summary}
    )
    # The Bots page's capital bar from the same reading, so the two pages agree.
    capital = None
    if summary.buying_power is not None:
        capital = CapitalSummary(
            summary.buying_power,
            summary.allocated_capital,
            summary.reserved_capital,
            summary.deployed_capital,
        )
    live.broadcast(
        "bots",
        "bots/partials/capital_summary.html",
        {"capital": capital, "capital_error": summary.error, "oob": True},
    )
