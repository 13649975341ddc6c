"""The paper exchange's matching core, shared by PaperBroker and the tests' fake Alpaca server.

Orders, fills, cash and positions live in the database; every change happens in one transaction
holding the account row's lock, so concurrent processes see one consistent exchange. Errors are
the gateway's own (base.py), raised with Alpaca's wording.
"""

import secrets
import uuid
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from tradebots.money import CENT, PRICE_PLACES

from ..base import (
    Clock,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    InsufficientQuantity,
    NotFound,
    OrderQueryStatus,
    OrderRejected,
    OrderSide,
    OrderType,
)
from .market import latest_price, paper_asset
from .models import PaperAccount, PaperOrder, PaperPosition

OPEN_STATUSES = ("new", "accepted", "partially_filled")
NEW_YORK = ZoneInfo("America/New_York")
MARKET_OPEN, MARKET_CLOSE = time(9, 30), time(16, 0)
BASIS_POINT = Decimal("0.0001")


def get_account() -> PaperAccount:
    account = PaperAccount.objects.first()
    if account is None:
        account, _ = PaperAccount.objects.get_or_create(
            pk=1,
            defaults={
                "account_number": f"PA{secrets.randbelow(10**8):08d}",
                "cash": settings.PAPER_STARTING_CASH,
            },
        )
    return account


def _locked_account() -> PaperAccount:
    locked = PaperAccount.objects.select_for_update().first()
    if locked is None:  # the very first order: open the account, then lock it
        locked = PaperAccount.objects.select_for_update().get(pk=get_account().pk)
    return locked


def reserved_for_open_buys() -> Decimal:
    """Cash promised to resting buy limit orders (their unfilled part at the limit price)."""
    total = PaperOrder.objects.filter(
        side=OrderSide.BUY, type=OrderType.LIMIT, status__in=OPEN_STATUSES
    ).aggregate(total=Sum((F("qty") - F("filled_qty")) * F("limit_price")))["total"]
    return total or Decimal(0)


def buying_power(account: PaperAccount) -> Decimal:
    return account.cash - reserved_for_open_buys()


def market_fill_price(symbol: str, side: OrderSide, now: datetime) -> Decimal:
    slip = settings.PAPER_SLIPPAGE_BPS * BASIS_POINT
    price = latest_price(symbol, now)
    factor = 1 + slip if side == OrderSide.BUY else 1 - slip
    return (price * factor).quantize(CENT)


def _validate(symbol, qty, side, order_type, limit_price, client_order_id):
    if not client_order_id or len(client_order_id) > 48:
        raise OrderRejected("client_order_id must be 1 to 48 characters")
    if qty is None or qty <= 0:
        raise OrderRejected("qty must be > 0")
    if side not in OrderSide.__members__.values():
        raise OrderRejected(f"invalid side {side!r}")
    if order_type == OrderType.LIMIT and (limit_price is None or limit_price <= 0):
        raise OrderRejected("limit_price must be > 0 for a limit order")
    asset = paper_asset(symbol)
    if asset is None:
        raise OrderRejected(f'asset "{symbol}" not found')
    if qty != qty.to_integral_value() and not asset.fractionable:
        raise OrderRejected(f"{symbol} is not fractionable")


def submit_order(
    *,
    symbol: str,
    qty: Decimal,
    side: OrderSide,
    order_type: OrderType,
    client_order_id: str,
    limit_price: Decimal | None = None,
    now: datetime | None = None,
    fill_qty: Decimal | None = None,
    fill_price: Decimal | None = None,
) -> PaperOrder:
    """Accept an order and fill what is marketable at once.

    ``fill_qty`` / ``fill_price`` let the tests simulate a partial fill (0: accepted, unfilled)
    or a fill at a price other than the quote.
    """
    now = now or timezone.now()
    _validate(symbol, qty, side, order_type, limit_price, client_order_id)
    with transaction.atomic():
        account = _locked_account()
        if PaperOrder.objects.filter(client_order_id=client_order_id).exists():
            raise DuplicateClientOrderId("client_order_id must be unique")
        market_price = market_fill_price(symbol, side, now)
        if order_type == OrderType.MARKET:
            price, marketable = market_price, True
        elif side == OrderSide.BUY:
            price, marketable = min(limit_price, market_price), market_price <= limit_price
        else:
            price, marketable = max(limit_price, market_price), market_price >= limit_price
        price = fill_price or price
        if side == OrderSide.BUY:
            cost = qty * (price if marketable else limit_price)
            available = buying_power(account)
            if cost > available:
                raise InsufficientBuyingPower("insufficient buying power")
        else:
            _check_quantity_available(symbol, qty)
        order = PaperOrder(
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=order_type,
            qty=qty,
            limit_price=limit_price,
            status="new",
            submitted_at=now,
        )
        if marketable and fill_qty != 0:
            # Filled before it is first written: one INSERT, not an INSERT and an UPDATE.
            _fill(order, account, min(qty if fill_qty is None else fill_qty, qty), price, now)
        else:
            order.save()
    return order


def _check_quantity_available(symbol: str, qty: Decimal) -> None:
    held = PaperPosition.objects.filter(symbol=symbol).values_list(
        "qty", flat=True
    ).first() or Decimal(0)
    promised = PaperOrder.objects.filter(
        symbol=symbol, side=OrderSide.SELL, status__in=OPEN_STATUSES
    ).aggregate(total=Sum(F("qty") - F("filled_qty")))["total"] or Decimal(0)
    available = held - promised
    if qty > available:
        raise InsufficientQuantity(
            f"insufficient qty available for order (requested: {qty.normalize()}, "
            f"available: {available.normalize()})"
        )


def _fill(order: PaperOrder, account: PaperAccount, qty: Decimal, price: Decimal, now) -> None:
    filled_before = order.filled_qty
    order.filled_qty = filled_before + qty
    order.filled_avg_price = (
        (filled_before * (order.filled_avg_price or 0) + qty * price) / order.filled_qty
    ).quantize(PRICE_PLACES)
    if order.filled_qty == order.qty:
        order.status, order.filled_at = "filled", now
    else:
        order.status = "partially_filled"
    order.save()

    notional = qty * price
    position = PaperPosition.objects.select_for_update().filter(symbol=order.symbol).first()
    if order.side == OrderSide.BUY:
        account.cash -= notional
        if position is None:
            PaperPosition.objects.create(symbol=order.symbol, qty=qty, avg_entry_price=price)
        else:
            new_qty = position.qty + qty
            position.avg_entry_price = (
                (position.qty * position.avg_entry_price + notional) / new_qty
            ).quantize(PRICE_PLACES)
            position.qty = new_qty
            position.save()
    else:
        account.cash += notional
        position.qty -= qty
        if position.qty == 0:
            position.delete()
        else:
            position.save()
    account.save(update_fields=["cash"])


def fill_remaining(order: PaperOrder, price: Decimal | None = None, now=None) -> PaperOrder:
    """Fill the rest of an open order (a partial fill completing, a resting limit executing)."""
    now = now or timezone.now()
    with transaction.atomic():
        account = _locked_account()
        order = PaperOrder.objects.select_for_update().get(pk=order.pk)
        if order.status in OPEN_STATUSES:
            price = price or order.limit_price or market_fill_price(order.symbol, order.side, now)
            _fill(order, account, order.qty - order.filled_qty, price, now)
    return order


def cancel_order(order_id: str, now=None) -> PaperOrder:
    """Cancel what is unfilled of an open order; what filled stays filled (as at Alpaca)."""
    now = now or timezone.now()
    with transaction.atomic():
        _locked_account()
        order = PaperOrder.objects.select_for_update().filter(pk=_order_pk(order_id)).first()
        if order is None:
            raise NotFound("order not found")
        if order.status not in OPEN_STATUSES:
            raise OrderRejected(f'order is already in "{order.status}" state')
        order.status, order.canceled_at = "canceled", now
        order.save()
    return order


def _order_pk(order_id: str):
    try:
        return uuid.UUID(str(order_id))
    except ValueError:
        return None


def match_resting_limit_orders(now: datetime | None = None) -> None:
    """Execute resting limit orders whose price the market has reached."""
    now = now or timezone.now()
    resting = PaperOrder.objects.filter(type=OrderType.LIMIT, status__in=OPEN_STATUSES)
    for order in resting:
        market = market_fill_price(order.symbol, order.side, now)
        reached = (
            market <= order.limit_price
            if order.side == OrderSide.BUY
            else (market >= order.limit_price)
        )
        if reached:
            fill_remaining(order, price=order.limit_price, now=now)


def get_order(order_id: str) -> PaperOrder:
    match_resting_limit_orders()
    try:
        return PaperOrder.objects.get(pk=uuid.UUID(str(order_id)))
    except (PaperOrder.DoesNotExist, ValueError):
        # A malformed id is "not found" too.
        raise NotFound("order not found") from None


def get_order_by_client_order_id(client_order_id: str) -> PaperOrder:
    match_resting_limit_orders()
    order = PaperOrder.objects.filter(client_order_id=client_order_id).first()
    if order is None:
        raise NotFound("order not found")
    return order


def list_orders(
    status: OrderQueryStatus = OrderQueryStatus.OPEN,
    after: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    ascending: bool = False,
):
    """Orders submitted strictly between ``after`` and ``until``, as Alpaca's GET /v2/orders."""
    match_resting_limit_orders()
    orders = PaperOrder.objects.all()
    if status == OrderQueryStatus.OPEN:
        orders = orders.filter(status__in=OPEN_STATUSES)
    elif status == OrderQueryStatus.CLOSED:
        orders = orders.exclude(status__in=OPEN_STATUSES)
    if after is not None:
        orders = orders.filter(submitted_at__gt=after)
    if until is not None:
        orders = orders.filter(submitted_at__lt=until)
    orders = orders.order_by(*(("submitted_at", "id") if ascending else ("-submitted_at", "-id")))
    return orders[:limit] if limit else orders


def list_positions() -> list[PaperPosition]:
    match_resting_limit_orders()
    return list(PaperPosition.objects.all())


def get_position(symbol: str) -> PaperPosition:
    position = PaperPosition.objects.filter(symbol=symbol).first()
    if position is None:
        raise NotFound("position does not exist")
    return position


def equity(account: PaperAccount, now: datetime | None = None) -> Decimal:
    now = now or timezone.now()
    holdings = sum(
        (position.qty * latest_price(position.symbol, now) for position in list_positions()),
        Decimal(0),
    )
    return account.cash + holdings


def clock(now: datetime | None = None) -> Clock:
    now = now or timezone.now()
    if settings.PAPER_MARKET_ALWAYS_OPEN:
        return Clock(timestamp=now, is_open=True, next_open=now, next_close=now + timedelta(days=1))
    local = now.astimezone(NEW_YORK)
    is_open = local.weekday() < 5 and MARKET_OPEN <= local.time() < MARKET_CLOSE
    return Clock(
        timestamp=now,
        is_open=is_open,
        next_open=_next_session_edge(local, MARKET_OPEN),
        next_close=_next_session_edge(local, MARKET_CLOSE),
    )


def _next_session_edge(local: datetime, edge: time) -> datetime:
    day = local.date()
    while True:
        candidate = datetime.combine(day, edge, tzinfo=NEW_YORK)
        if candidate > local and candidate.weekday() < 5:
            return candidate
        day += timedelta(days=1)
