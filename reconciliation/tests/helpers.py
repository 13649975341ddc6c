"""Broker orders made by hand for the comparison's unit tests."""

import uuid
from datetime import datetime
from decimal import Decimal
from io import StringIO

from django.core.management import CommandError, call_command
from django.utils import timezone

from tradebots.broker import (
    BrokerPosition,
    BrokerUnavailable,
    Order,
    OrderQueryStatus,
    OrderSide,
    OrderType,
)


def make_order(
    client_order_id: str | None = None,
    *,
    submitted_at: datetime | None = None,
    status: str = "filled",
    qty: str = "10",
    filled_qty: str | None = None,
    price: str | None = "150.25",
    order_id: str | None = None,
    symbol: str = "AAPL",
    side: OrderSide = OrderSide.BUY,
) -> Order:
    if filled_qty is None:
        filled_qty = qty if status == "filled" else "0"
    return Order(
        id=order_id or str(uuid.uuid4()),
        client_order_id=client_order_id or str(uuid.uuid4()),
        symbol=symbol,
        side=side,
        type=OrderType.MARKET,
        qty=Decimal(qty),
        filled_qty=Decimal(filled_qty),
        filled_avg_price=Decimal(price) if price is not None and Decimal(filled_qty) else None,
        status=status,
        submitted_at=submitted_at or timezone.now(),
    )


def order_for(trade, **changes) -> Order:
    """The broker's order for ``trade``, agreeing with it unless ``changes`` say otherwise."""
    values = {
        "client_order_id": trade.client_order_id,
        "order_id": trade.order_id,
        "submitted_at": trade.submitted_at,
        "status": trade.status if trade.status != "pending" else "new",
        "qty": str(trade.qty),
        "filled_qty": str(trade.filled_qty),
        "price": str(trade.price) if trade.price is not None else None,
        "symbol": trade.symbol,
        "side": OrderSide(trade.side),
    }
    values.update(changes)
    return make_order(**values)


def held(symbol: str, qty: str, price: str = "150") -> BrokerPosition:
    """A position at the broker."""
    value = Decimal(qty) * Decimal(price)
    return BrokerPosition(
        symbol=symbol,
        qty=Decimal(qty),
        avg_entry_price=Decimal(price),
        current_price=Decimal(price),
        market_value=value,
        unrealized_pl=Decimal(0),
    )


class ListBroker:
    """A broker that has exactly these orders, answering iter_orders as the gateway does
    (newest first, ``after`` / ``until`` exclusive, by status), and these positions."""

    def __init__(
        self,
        orders=(),
        error: Exception | None = None,
        positions=(),
        positions_error: Exception | None = None,
    ):
        self.orders = list(orders)
        self.error = error
        self.positions = list(positions)
        self.positions_error = positions_error
        self.calls = 0
        self.position_calls = 0

    def list_positions(self) -> list[BrokerPosition]:
        self.position_calls += 1
        if self.positions_error:
            raise self.positions_error
        return list(self.positions)

    def iter_orders(self, status=OrderQueryStatus.ALL, after=None, until=None):
        self.calls += 1
        if self.error:
            raise self.error
        chosen = sorted(self.orders, key=lambda order: order.submitted_at, reverse=True)
        for order in chosen:
            if status == OrderQueryStatus.OPEN and order.is_final:
                continue
            if status == OrderQueryStatus.CLOSED and not order.is_final:
                continue
            if after is not None and order.submitted_at <= after:
                continue
            if until is not None and order.submitted_at >= until:
                continue
            yield order


def unreachable() -> ListBroker:
    return ListBroker(error=BrokerUnavailable("Alpaca unreachable: ConnectTimeout"))


def run_command(*args) -> tuple[str, int]:
    """``manage.py reconcile ARGS``: its output and exit code."""
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error.returncode
    except SystemExit as exit_:  # discrepancies: a report, exit code 1
        return out.getvalue(), exit_.code
    return out.getvalue(), 0
