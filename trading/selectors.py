"""Reads that join bots to their positions and trades. bots reads them through its books
registry (bots/books.py), filled with this module when the trading app is ready."""

from datetime import datetime
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDay

from bots.books import Fill
from tradebots.money import CENT

from .models import Position, Trade
from .positions import remembered_prices  # noqa: F401 - part of the books bots reads

ZERO = Decimal(0)
# Wide enough for qty (9 places) × price (4 places) without rounding away a cent.
_INVESTED = DecimalField(max_digits=32, decimal_places=8)
_GAINS = DecimalField(max_digits=20, decimal_places=4)


def with_invested(bots: QuerySet) -> QuerySet:
    """Annotate ``invested``: open position cost + unfilled open buy notional, in the one query."""
    # order_by() clears the models' default ordering, which would otherwise split the GROUP BY.
    position_cost = (
        Position.objects.filter(bot=OuterRef("pk"), is_open=True)
        .order_by()
        .values("bot")
        .annotate(total=Sum(F("qty") * F("avg_entry_price"), output_field=_INVESTED))
        .values("total")
    )
    open_buy_notional = (
        Trade.objects.filter(
            bot=OuterRef("pk"),
            side=Trade.Side.BUY,
            status__in=Trade.OPEN_STATUSES,
            expected_price__isnull=False,
        )
        .order_by()
        .values("bot")
        .annotate(
            total=Sum((F("qty") - F("filled_qty")) * F("expected_price"), output_field=_INVESTED)
        )
        .values("total")
    )
    zero = Value(ZERO, output_field=_INVESTED)
    return bots.annotate(
        invested=Coalesce(Subquery(position_cost, output_field=_INVESTED), zero)
        + Coalesce(Subquery(open_buy_notional, output_field=_INVESTED), zero)
    )


def _count(queryset: QuerySet) -> Coalesce:
    """A per-bot count as a subquery (joins would multiply the realized-gains sum)."""
    counted = queryset.filter(bot=OuterRef("pk")).order_by().values("bot")
    return Coalesce(Subquery(counted.annotate(n=Count("pk")).values("n")), Value(0))


def with_figures(bots: QuerySet) -> QuerySet:
    """Bots with their realized gains, trade and win counts and open position loaded in
    constant queries."""
    closed = Position.objects.filter(is_open=False)
    return bots.annotate(
        realized_gains_total=Coalesce(
            Sum("positions__realized_pnl", filter=Q(positions__is_open=False)),
            Value(ZERO),
            output_field=_GAINS,
        ),
        filled_trades=_count(Trade.objects.filter(filled_qty__gt=0)),
        closed_positions=_count(closed),
        winning_positions=_count(closed.filter(realized_pnl__gt=0)),
    ).prefetch_related(
        Prefetch(
            "positions",
            queryset=Position.objects.filter(is_open=True),
            to_attr="open_positions",
        )
    )


def open_holdings(bot_ids: list) -> tuple[dict, dict]:
    """({bot id: open position}, {bot id: [open trades, oldest first]}), in two queries."""
    positions = {
        position.bot_id: position
        for position in Position.objects.filter(bot__in=bot_ids, is_open=True)
    }
    trades: dict = {}
    open_trades = Trade.objects.filter(bot__in=bot_ids, status__in=Trade.OPEN_STATUSES)
    for trade in open_trades.order_by("created_at", "id"):
        trades.setdefault(trade.bot_id, []).append(trade)
    return positions, trades


# Far more than a chart's window of bars can show; bounds the read for a bot gone haywire.
MAX_FILLS = 1000


def fills(bot_ids: list, since: datetime) -> dict:
    """{bot id: [Fill, oldest first]}: the trades of these bots that filled, wholly or in part,
    at or after ``since``, in one query (the newest MAX_FILLS of them). A partial fill has no
    ``filled_at`` (the broker sets it when the order is complete), so its last update stands in
    for it."""
    filled_at = Coalesce("filled_at", "updated_at")
    found: dict = {}
    trades = (
        Trade.objects.filter(bot__in=bot_ids, filled_qty__gt=0, price__isnull=False)
        .annotate(fill_time=filled_at)
        .filter(fill_time__gte=since)
        .order_by("-fill_time", "-id")
        .values_list("bot_id", "side", "filled_qty", "price", "fill_time")[:MAX_FILLS]
    )
    for bot_id, side, qty, price, fill_time in list(trades)[::-1]:
        found.setdefault(bot_id, []).append(Fill(side, qty, price, fill_time))
    return found


MAX_PNL_POINTS = 2000


def realized_pnl_series(bot_id=None) -> list[dict]:
    """Cumulative realized P&L after each closed position (one bot's, or all), oldest first,
    for a line chart: [{"time": unix seconds, "value": "12.50"}]. Positions closed in the same
    second are one point; beyond MAX_PNL_POINTS, one point per day, summed by the database
    (the dashboard must not read every closed position on each load; the sums stay exact)."""
    closed = Position.objects.filter(is_open=False, closed_at__isnull=False).order_by()
    if bot_id is not None:
        closed = closed.filter(bot_id=bot_id)
    if closed.count() <= MAX_PNL_POINTS:
        rows = closed.order_by("closed_at", "id").values_list("closed_at", "realized_pnl")
    else:
        rows = (
            closed.annotate(day=TruncDay("closed_at"))
            .values("day")
            .annotate(pnl=Sum("realized_pnl"))
            .order_by("day")
            .values_list("day", "pnl")
        )
    by_instant: dict[int, Decimal] = {}
    for closed_at, pnl in rows:
        second = int(closed_at.timestamp())
        by_instant[second] = by_instant.get(second, ZERO) + Decimal(pnl or ZERO)
    points, total = [], ZERO
    for second in sorted(by_instant):
        total += by_instant[second]
        points.append({"time": second, "value": str(total.quantize(CENT))})
    return points
