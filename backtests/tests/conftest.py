import pytest


@pytest.fixture
def market_data(db, settings):
    """The fake Alpaca server with get_broker() pointed at it. Its asset and bar endpoints are
    pure functions of the paper market (no database), so a plain ``db`` test will do."""
    from trading.tests.fake_alpaca import API_KEY, SECRET_KEY, FakeAlpaca

    with FakeAlpaca() as fake:
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = API_KEY, SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.url
        settings.ALPACA_READ_TIMEOUT_SECONDS = 2
        settings.ALPACA_RETRY_WAIT_SECONDS = 0
        yield fake
