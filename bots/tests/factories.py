from decimal import Decimal

import factory

from bots.models import Bot, default_strategy


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot

    name = factory.Sequence(lambda n: f"Bot {n}")
    symbol = "AAPL"
    capital = Decimal("1000.00")
    timeframe = Bot.Timeframe.MIN_5
    strategy = factory.LazyFunction(default_strategy)
