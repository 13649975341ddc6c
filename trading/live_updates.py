"""Trade and position changes pushed to the pages that show them (see tradebots.live).

The order path calls these after its transaction has committed, e.g.
``transaction.on_commit(lambda: live_updates.trade_changed(trade, created=True))``. Inside
``live.coalesced()`` each trade and position is rendered once, as the database holds it when the
block ends, all of a kind in one query. A push that cannot be rendered or sent is logged, never
raised into the order path: the books are already saved and the next page load shows them.

- ``trade_changed(trade, created)``: the row of table ``trades`` (``trades.html#trade-row``);
  a new trade also goes to the top of a page showing the newest trades.
- ``position_changed(position)``: an open position ("closing…" while a sell of it is open) is
  a row of ``open-positions`` (every open position is on that table, so one the page lacks is
  inserted on top); a closed one is removed from it and becomes a row of ``closed-positions``.
  Pushed open rows carry no live price (that needs a broker call, which does not belong in the
  order path): their Price and Unrealized P&L cells show "—" until the page is reloaded.
"""

from django.template.loader import render_to_string

from tradebots import live

from .models import Position, Trade

TRADE_ROW = "trading/trades.html#trade-row"
POSITION_ROW = "trading/positions.html#position-row"
CLOSED_POSITION_ROW = "trading/positions.html#closed-position-row"


def trade_changed(trade: Trade, created: bool) -> None:
    live.push_each("trades", trade.pk, render_trades, created=created)


def position_changed(position: Position) -> None:
    live.push_each("positions", position.pk, render_positions)


def trade_row(trade: Trade, created: bool) -> live.Row:
    return live.table_row(
        "trades",
        trade.pk,
        lambda oob=False: render_to_string(TRADE_ROW, {"trade": trade, "oob": oob}),
        tbody="trade-rows",
        insert=created,
    )


def position_rows(position: Position, closing: bool = False) -> list[live.Row]:
    if position.is_open:
        return [
            live.table_row(
                "open-positions",
                position.pk,
                lambda oob=False: render_to_string(
                    POSITION_ROW,
                    {"position": position, "oob": oob, "pushed": True, "closing": closing},
                ),
                tbody="open-positions",
                insert=True,
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


def render_trades(items: dict) -> list[live.Row]:
    """Each trade as it is now, in push order (inserts land on top, newest last)."""
    trades = Trade.objects.select_related("bot").in_bulk(list(items))
    return [trade_row(trades[pk], flags["created"]) for pk, flags in items.items() if pk in trades]


def render_positions(items: dict) -> list[live.Row]:
    """Each position as it is now; an open one being sold says "closing…" (as the page does)."""
    positions = Position.objects.select_related("bot").in_bulk(list(items))
    closing = set(
        Trade.objects.filter(
            position__in=list(positions), side=Trade.Side.SELL, status__in=Trade.OPEN_STATUSES
        ).values_list("position_id", flat=True)
    )
    return [
        row
        for pk in items
        if pk in positions
        for row in position_rows(positions[pk], pk in closing)
    ]
