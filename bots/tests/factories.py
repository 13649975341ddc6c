from decimal import Decimal

import factory

from bots.models import Bot
from bots.strategy import Strategy


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot

    name = factory.Sequence(lambda n: f"Bot {n}")
    symbol = "AAPL"
    capital = Decimal("1000.00")
    timeframe = Bot.Timeframe.MIN_5
    strategy = factory.LazyFunction(lambda: Strategy.default().to_dict())
