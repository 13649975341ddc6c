"""What bots read of the books (positions and trades), which belong to the trading app.

bots never imports trading (DESIGN.md, "Layers"), yet its pages, API and capital rules need a
bot's open position, realized gains, invested amount and open orders. trading fills this
registry with its selectors when its app is ready (trading/apps.py); bots asks ``books()``.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet


@dataclass(frozen=True)
class Fill:
    """What a bot bought or sold in one order: the quantity filled so far at its average price."""

    side: str  # "buy" or "sell"
    qty: Decimal
    price: Decimal
    filled_at: datetime


class Books(Protocol):
    def with_invested(self, bots: QuerySet) -> QuerySet:
        """``bots`` annotated with ``invested``: open position cost + unfilled open buy
        notional (see bots/services.py)."""

    def with_figures(self, bots: QuerySet) -> QuerySet:
        """``bots`` annotated with ``realized_gains_total`` and with ``open_positions``
        prefetched, in constant queries."""

    def open_holdings(self, bot_ids: list) -> tuple[dict, dict]:
        """({bot id: open position}, {bot id: [open trades, oldest first]}) of these bots."""

    def remembered_prices(self) -> dict:
        """{symbol: Decimal}: the latest prices the Positions valuation read from the broker
        (no broker call; empty when none is known yet)."""

    def realized_pnl_series(self, bot_id=None) -> list[dict]:
        """Cumulative realized P&L over time (a bot's, or the account's), oldest first:
        [{"time": unix seconds, "value": decimal string}]."""

    def fills(self, bot_ids: list, since: datetime) -> dict[object, list[Fill]]:
        """{bot id: [its fills at or after ``since``, oldest first]} of these bots (the bot
        page's chart marks them), in one query."""


_books: Books | None = None


def register(books: Books) -> None:
    global _books
    _books = books


def books() -> Books:
    if _books is None:
        raise ImproperlyConfigured("No app registered the books: is 'trading' installed?")
    return _books
