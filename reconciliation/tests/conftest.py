import functools
from dataclasses import dataclass
from decimal import Decimal

import pytest

from tradebots.broker.paper import exchange
from trading.tests.fake_alpaca import API_KEY, SECRET_KEY, FakeAlpaca


@pytest.fixture(autouse=True)
def _fast_verification(settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0


def point_at_fake(settings, fake: FakeAlpaca) -> None:
    """get_broker() (so the order path and the reconciliation alike) talks to the fake."""
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = API_KEY, SECRET_KEY
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.url
    settings.ALPACA_READ_TIMEOUT_SECONDS = 0.5
    settings.ALPACA_RETRY_WAIT_SECONDS = 0


@dataclass
class BrokerSide:
    """What happens at the broker, made to happen on purpose: through the fake Alpaca server's
    fault switches, or inside the paper exchange."""

    mode: str
    fake: FakeAlpaca | None
    monkeypatch: pytest.MonkeyPatch

    def fill_partially(self, ratio: Decimal) -> None:
        """Market orders fill only this share of their quantity (the rest stays open)."""
        if self.fake:
            self.fake.faults.partial_fill_ratio = ratio
        else:
            self._wrap_submit(lambda qty: {"fill_qty": int(qty * ratio)})

    def fill_at(self, price: Decimal) -> None:
        """Market orders fill at this price, whatever the quote."""
        if self.fake:
            self.fake.faults.fill_price = price
        else:
            self._wrap_submit(lambda qty: {"fill_price": price})

    def _wrap_submit(self, extra) -> None:
        real = exchange.submit_order

        @functools.wraps(real)
        def submit(**kwargs):
            return real(**kwargs, **extra(kwargs["qty"]))

        self.monkeypatch.setattr(exchange, "submit_order", submit)


@pytest.fixture(params=["paper", "alpaca"])
def broker_side(request, transactional_db, settings, monkeypatch):
    """Each scenario runs on the paper exchange and on AlpacaBroker + the fake Alpaca server."""
    if request.param == "paper":
        yield BrokerSide("paper", None, monkeypatch)
        return
    with FakeAlpaca() as fake:
        point_at_fake(settings, fake)
        yield BrokerSide("alpaca", fake, monkeypatch)


@pytest.fixture
def fake(transactional_db, settings):
    with FakeAlpaca() as fake:
        point_at_fake(settings, fake)
        yield fake
