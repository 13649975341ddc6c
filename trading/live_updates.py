"""Trade and position changes pushed to the pages that show them (see tradebots.live).

The order path calls these after its transaction has committed, e.g.
``transaction.on_commit(lambda: live_updates.trade_changed(trade, created=True))``. Inside
``live.coalesced()`` each trade and position is rendered once, as the database holds it when the
block ends, all of a kind in one query. A push that cannot be rendered or sent is logged, never
raised into the order path: the books are already saved and the next page load shows them.

- ``trade_changed(trade, created)``: the row of table ``trades`` (``trades.html#trade-row``);
  a new trade also goes to the top of a page showing the newest trades.
- ``position_changed(position)``: an open position ("closing…" while a sell of it is open) is
  a row of ``open-positions`` (one the first page lacks is inserted on top); a closed one is
  removed from it and becomes a row of ``closed-positions``. The totals bar comes along.
  Pushed open rows carry no live price (that needs a broker call, which does not belong in the
  order path): they show the last prices ``push_position_values`` read, and every
  POSITION_VALUES_SECONDS that task pushes fresh prices and the totals.
"""

import logging

from django.core.cache import cache
from django.template.loader import render_to_string

from tradebots import live
from tradebots.broker import BrokerError, get_broker

from .models import Position, Trade
from .positions import (
    OpenPositionRow,
    SymbolHoldings,
    realized_total,
    remember_prices,
    remembered_prices,
    unmanaged_row_id,
)

logger = logging.getLogger(__name__)

TRADE_ROW = "trading/trades.html#trade-row"
POSITION_ROW = "trading/positions.html#position-row"
POSITIONS_SUMMARY = "trading/positions.html#positions-summary"
PUSHED_PRICES_CACHE_KEY = "trading:pushed-prices"
CLOSED_POSITION_ROW = "trading/positions.html#closed-position-row"


def trade_changed(trade: Trade, created: bool) -> None:
    live.push_each("trades", trade.pk, render_trades, created=created)


def position_changed(position: Position, created: bool = False) -> None:
    live.push_each("positions", position.pk, render_positions, created=created)


def trade_row(trade: Trade, created: bool) -> live.Row:
    return live.table_row(
        "trades",
        trade.pk,
        lambda oob=False: render_to_string(TRADE_ROW, {"trade": trade, "oob": oob}),
        tbody="trade-rows",
        insert=created,
    )


def position_rows(row: OpenPositionRow, created: bool = False) -> list[live.Row]:
    """An open position as a row of ``open-positions`` (inserted on top of a first page only
    when just opened: an older one changing must not jump there); a closed one leaves it and
    becomes a row of ``closed-positions``."""
    position = row.position
    if position.is_open:
        context = {
            "position": position,
            "price": row.price,
            "pnl": row.unrealized_pnl,
            "pnl_pct": row.unrealized_pct,
            "closing": row.closing,
            "pushed": True,
        }
        return [
            live.table_row(
                "open-positions",
                position.pk,
                lambda oob=False: render_to_string(POSITION_ROW, {**context, "oob": oob}),
                tbody="open-positions",
                insert=created,
            )
        ]
    return [
        live.removed_row("open-positions", position.pk, f"position-{position.pk}"),
        live.table_row(
            "closed-positions",
            position.pk,
            lambda oob=False: render_to_string(
                CLOSED_POSITION_ROW, {"position": position, "oob": oob}
            ),
            tbody="closed-positions",
            insert=True,
        ),
    ]


def summary(prices: dict) -> live.Fragment:
    """The totals bar over every open position (two aggregate queries) at ``prices``."""
    context = {
        "totals": SymbolHoldings.read().totals(prices),
        "realized_pnl": realized_total(),
        "oob": True,
    }
    return live.Fragment("open-positions", render_to_string(POSITIONS_SUMMARY, context))


def _valued_rows(positions: list[Position], prices: dict) -> list[OpenPositionRow]:
    closing = set(
        Trade.objects.filter(
            position__in=positions, side=Trade.Side.SELL, status__in=Trade.OPEN_STATUSES
        ).values_list("position_id", flat=True)
    )
    return [
        OpenPositionRow(position, prices.get(position.symbol), position.pk in closing)
        for position in positions
    ]


def render_trades(items: dict) -> list[live.Row]:
    """Each trade as it is now, in push order (inserts land on top, newest last). A filled close
    of an unmanaged holding also takes that holding's row off the Positions pages."""
    trades = Trade.objects.select_related("bot").in_bulk(list(items))
    rows = []
    for pk, flags in items.items():
        if pk not in trades:
            continue
        trade = trades[pk]
        rows.append(trade_row(trade, flags["created"]))
        if is_unmanaged_close(trade) and trade.status == Trade.Status.FILLED:
            row_id = unmanaged_row_id(trade.symbol)
            rows.append(live.removed_row("open-positions", row_id, row_id))
    return rows


def is_unmanaged_close(trade: Trade) -> bool:
    """A sell (or, of a short, a buy back) of what no bot owns: no bot, no position of ours."""
    return trade.bot_id is None and trade.position_id is None


def render_positions(items: dict) -> list[live.Push]:
    """Each position as it is now, valued at the last prices read from the broker (the order
    path never calls it), and the totals over every open position."""
    prices = remembered_prices()
    positions = Position.objects.select_related("bot").in_bulk(list(items))
    rows = _valued_rows([positions[pk] for pk in items if pk in positions], prices)
    pushes = [
        row
        for valued in rows
        for row in position_rows(valued, items[valued.position.pk]["created"])
    ]
    return [*pushes, summary(prices)]


def push_position_values() -> int:
    """The open positions valued at the broker's latest prices (one call), pushed to the
    Positions pages with the totals (beat, every POSITION_VALUES_SECONDS): the rows of the
    symbols whose price moved since its last push, replaced where shown, never inserted (a new
    position arrives through the order path); nothing is rendered while no Positions page is
    open. Returns how many rows were pushed."""
    symbols = sorted(SymbolHoldings.read())
    if not symbols:
        return 0
    try:
        prices = get_broker().get_latest_prices(symbols)
    except BrokerError as error:
        logger.warning("Position values not pushed: prices unavailable (%s)", error)
        return 0
    remember_prices(prices)
    if "open-positions" not in live.watched_groups(["open-positions"]):
        return 0  # no Positions page open: the prices are kept for the next pushes, nothing more
    # Moved since this task last pushed (its own record: a page load also remembers prices, and
    # must not hide a move from the pages already open).
    before = cache.get(PUSHED_PRICES_CACHE_KEY) or {}
    moved = [symbol for symbol, price in prices.items() if before.get(symbol) != str(price)]
    cache.set(PUSHED_PRICES_CACHE_KEY, {symbol: str(p) for symbol, p in prices.items()}, None)
    positions = list(Position.objects.filter(is_open=True, symbol__in=moved).select_related("bot"))
    rows = _valued_rows(positions, prices)

    def pushes():
        replaced = [
            live.Row(row.table, row.pk, replace=row.replace)
            for valued in rows
            for row in position_rows(valued)
        ]
        return [*replaced, summary(prices)]

    with live.coalesced():
        live.push("position-values", pushes)
    return len(rows)
