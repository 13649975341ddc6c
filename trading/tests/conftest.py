import pytest

from tradebots.broker.paper.broker import PaperBroker
from trading.tests.fake_alpaca import FakeAlpaca


@pytest.fixture
def fake_alpaca(transactional_db):
    """The fake Alpaca server; its threads use the test database, hence transactional_db."""
    with FakeAlpaca() as fake:
        yield fake


@pytest.fixture(params=["paper", "alpaca"])
def broker(request, transactional_db):
    """Each contract test runs against PaperBroker and against AlpacaBroker + the fake server."""
    if request.param == "paper":
        yield PaperBroker()
    else:
        with FakeAlpaca() as fake:
            yield fake.broker()
