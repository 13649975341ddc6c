"""Trade and position changes pushed to every open trades / positions page.

The order path calls these after its transaction has committed, e.g.
``transaction.on_commit(lambda: live_updates.trade_changed(trade, created=True))``; they only
render and send (through ``tradebots.live.send_html``), never query for anything the caller did
not hand over except ``trade.bot`` / ``position.bot`` (select_related them to save the query).
A push that cannot be rendered or sent is logged, never raised into the order path: the books
are already saved and the next page load shows them. Inside ``live.coalesced()`` each trade and
position is pushed once, in its latest state (``live.push`` keys).

- ``trade_changed(trade, created)``: a new trade's row goes to the top of ``#trade-rows``
  (``hx-swap-oob="afterbegin:#trade-rows"``, the ``<tr>`` inside a ``<tbody>`` wrapper); a changed
  trade's row replaces ``#trade-<pk>`` (``hx-swap-oob="true"``). One message.
- ``position_changed(position)``: the server cannot know which rows each open page shows, so an
  open position is an upsert in two messages: replace ``#position-<pk>`` where it exists, then
  insert it at the top of ``#open-positions`` where it does not (a ``:not(:has(...))`` guard in
  the OOB selector). A closed position is one message: delete ``#position-<pk>`` and insert its
  closed row at the top of ``#closed-positions``. Pushed open rows carry no live price (that
  needs a broker call, which does not belong in the order path): their Price and Unrealized P&L
  cells show "—" until the page is reloaded.
"""

from django.template.loader import render_to_string

from tradebots import live

from .models import Position, Trade

TRADE_TEMPLATE = "trading/partials/trade_row_live.html"
POSITION_TEMPLATE = "trading/partials/position_live.html"


def render_trade_changed(trade: Trade, created: bool) -> str:
    return render_to_string(TRADE_TEMPLATE, {"trade": trade, "created": created})


def render_position_changed(position: Position) -> list[str]:
    """The messages for one position change, in the order they must be sent. A message holds
    either lone table rows or <tbody> wrappers: the HTML parser cannot mix the two."""
    parts = ("update", "insert") if position.is_open else ("close",)
    return [
        render_to_string(POSITION_TEMPLATE, {"position": position, "part": part}) for part in parts
    ]


def trade_changed(trade: Trade, created: bool) -> None:
    live.push_each("trades", trade.pk, render_trades, created=created)


def position_changed(position: Position) -> None:
    live.push_each("positions", position.pk, render_positions)


def render_trades(items: dict) -> list[str]:
    """Each trade as it is now, in push order (inserts land on top, newest last)."""
    trades = Trade.objects.select_related("bot").in_bulk(list(items))
    return [
        render_trade_changed(trades[pk], flags["created"])
        for pk, flags in items.items()
        if pk in trades
    ]


def render_positions(items: dict) -> list[str]:
    positions = Position.objects.select_related("bot").in_bulk(list(items))
    return [
        html for pk in items if pk in positions for html in render_position_changed(positions[pk])
    ]
