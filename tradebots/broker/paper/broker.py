"""PaperBroker: the gateway interface over the built-in paper exchange."""

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from ..base import (
    PAPER_EXCHANGE_LABEL,
    Account,
    Asset,
    Bar,
    Broker,
    BrokerPosition,
    Clock,
    DuplicateClientOrderId,
    NotFound,
    Order,
    OrderQueryStatus,
    OrderSide,
    OrderType,
    TimeFrame,
)
from . import exchange, market
from .models import PaperOrder, PaperPosition


def order_from_paper(order: PaperOrder) -> Order:
    return Order(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=OrderSide(order.side),
        type=OrderType(order.type),
        qty=order.qty,
        filled_qty=order.filled_qty,
        filled_avg_price=order.filled_avg_price,
        status=order.status,
        submitted_at=order.submitted_at,
        filled_at=order.filled_at,
        canceled_at=order.canceled_at,
        limit_price=order.limit_price,
    )


def position_from_paper(position: PaperPosition, current_price: Decimal) -> BrokerPosition:
    market_value = position.qty * current_price
    return BrokerPosition(
        symbol=position.symbol,
        qty=position.qty,
        avg_entry_price=position.avg_entry_price,
        current_price=current_price,
        market_value=market_value,
        unrealized_pl=market_value - position.qty * position.avg_entry_price,
    )


class PaperBroker(Broker):
    label = PAPER_EXCHANGE_LABEL

    def get_account(self) -> Account:
        account = exchange.get_account()
        equity = exchange.equity(account)
        return Account(
            account_number=account.account_number,
            equity=equity,
            cash=account.cash,
            buying_power=exchange.buying_power(account),
            portfolio_value=equity,
            status="ACTIVE",
            trading_blocked=False,
        )

    def submit_market_order(self, symbol, qty, side, client_order_id) -> Order:
        return self._submit(symbol, qty, side, OrderType.MARKET, client_order_id)

    def submit_limit_order(self, symbol, qty, side, limit_price, client_order_id) -> Order:
        return self._submit(
            symbol, qty, side, OrderType.LIMIT, client_order_id, Decimal(limit_price)
        )

    def _submit(self, symbol, qty, side, order_type, client_order_id, limit_price=None) -> Order:
        try:
            order = exchange.submit_order(
                symbol=symbol,
                qty=Decimal(qty),
                side=OrderSide(side),
                order_type=order_type,
                limit_price=limit_price,
                client_order_id=client_order_id,
            )
        except DuplicateClientOrderId:
            # As with Alpaca: the intent was already placed; answer with that order.
            order = exchange.get_order_by_client_order_id(client_order_id)
        return order_from_paper(order)

    def get_order(self, order_id: str) -> Order:
        return order_from_paper(exchange.get_order(order_id))

    def get_order_by_client_order_id(self, client_order_id: str) -> Order:
        return order_from_paper(exchange.get_order_by_client_order_id(client_order_id))

    def cancel_order(self, order_id: str) -> None:
        exchange.cancel_order(order_id)

    def iter_orders(self, status=OrderQueryStatus.ALL, after=None, until=None):
        for order in exchange.list_orders(status=status, after=after, until=until).iterator():
            yield order_from_paper(order)

    def list_positions(self) -> list[BrokerPosition]:
        now = timezone.now()
        return [
            position_from_paper(position, market.latest_price(position.symbol, now))
            for position in exchange.list_positions()
        ]

    def close_position(self, symbol, client_order_id, qty=None) -> Order:
        position = exchange.get_position(symbol)
        return self._submit(
            symbol, qty or position.qty, OrderSide.SELL, OrderType.MARKET, client_order_id
        )

    def get_clock(self) -> Clock:
        return exchange.clock()

    def get_asset(self, symbol: str) -> Asset:
        asset = market.paper_asset(symbol)
        if asset is None:
            raise NotFound(f"asset not found for {symbol}")
        return asset

    def get_bars(self, symbols, timeframe, limit) -> dict[str, list[Bar]]:
        until = timezone.now()
        return {
            symbol: market.bars(symbol, TimeFrame(timeframe), limit, until)
            for symbol in symbols
            if market.paper_asset(symbol)
        }

    def get_bars_between(self, symbol, timeframe, start, end) -> list[Bar]:
        self.get_asset(symbol)
        # The synthetic path goes on forever; a market has no bars from the future.
        until = min(end, timezone.now())
        return market.bars_between(symbol, TimeFrame(timeframe), start, until)

    def get_latest_prices(self, symbols) -> dict[str, Decimal]:
        now: datetime = timezone.now()
        return {
            symbol: market.latest_price(symbol, now)
            for symbol in symbols
            if market.paper_asset(symbol)
        }
