import uuid
from decimal import Decimal

import factory
from django.utils import timezone

from bots.tests.factories import BotFactory
from trading.models import Position, Trade


def _client_order_id(trade) -> str | None:
    if trade.bot is None:
        return None
    return f"bot-{trade.bot.pk.hex[:8]}-{uuid.uuid4().hex[:8]}"


class TradeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Trade

    bot = factory.SubFactory(BotFactory)
    symbol = factory.LazyAttribute(lambda trade: trade.bot.symbol if trade.bot else "AAPL")
    side = Trade.Side.BUY
    qty = Decimal("10")
    filled_qty = factory.LazyAttribute(
        lambda trade: trade.qty if trade.status == Trade.Status.FILLED else Decimal("0")
    )
    price = factory.LazyAttribute(
        lambda trade: Decimal("150.25") if trade.status == Trade.Status.FILLED else None
    )
    status = Trade.Status.FILLED
    order_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    client_order_id = factory.LazyAttribute(_client_order_id)
    reason = "RSI buy signal"
    submitted_at = factory.LazyFunction(timezone.now)
    filled_at = factory.LazyAttribute(
        lambda trade: trade.submitted_at if trade.status == Trade.Status.FILLED else None
    )


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Position

    bot = factory.SubFactory(BotFactory)
    symbol = factory.LazyAttribute(lambda position: position.bot.symbol if position.bot else "AAPL")
    qty = Decimal("10")
    avg_entry_price = Decimal("150.00")
    entry_reason = "RSI buy signal"
    stop_loss_price = Decimal("142.50")
    take_profit_price = Decimal("165.00")
    is_open = True
    opened_at = factory.LazyFunction(timezone.now)

    class Params:
        closed = factory.Trait(
            is_open=False,
            exit_price=Decimal("160.00"),
            realized_pnl=Decimal("100.00"),
            closed_at=factory.LazyFunction(timezone.now),
        )
