"""Inside tradebots.broker.interactive(), a hung broker costs a page or API call seconds."""

import time
from decimal import Decimal

import pytest

from tradebots.broker import BrokerUnavailable, OrderSide, get_broker, interactive

# A correctness bound, not a benchmark: the "no page waits more than ~10 s".
INTERACTIVE_BOUND_SECONDS = 10


@pytest.fixture
def hung_alpaca(alpaca_fake, settings):
    """Alpaca accepts connections but answers nothing for 30 s; the normal read timeout is long,
    so only the interactive set-up can make calls fail fast."""
    settings.ALPACA_READ_TIMEOUT_SECONDS = 15
    settings.ALPACA_INTERACTIVE_TIMEOUT_SECONDS = 1
    alpaca_fake.faults.latency = 30
    return alpaca_fake


def test_get_account_fails_fast_on_a_hung_broker(hung_alpaca):
    started = time.monotonic()
    with interactive(), pytest.raises(BrokerUnavailable):
        get_broker().get_account()
    assert time.monotonic() - started < INTERACTIVE_BOUND_SECONDS
    assert len(hung_alpaca.requests_to("GET", "/v2/account")) == 1  # no retry


def test_submit_fails_fast_after_one_post_and_one_look_up(hung_alpaca):
    started = time.monotonic()
    with interactive(), pytest.raises(BrokerUnavailable) as raised:
        get_broker().submit_market_order("AAPL", Decimal(1), OrderSide.BUY, "bot-abcdef01-12345678")
    assert time.monotonic() - started < INTERACTIVE_BOUND_SECONDS
    assert "Alpaca unreachable" in str(raised.value)  # the POST's unknown outcome
    assert len(hung_alpaca.requests_to("POST", "/v2/orders")) == 1
    assert len(hung_alpaca.requests_to("GET", "/v2/orders:by_client_order_id")) == 1


def test_only_calls_inside_the_block_get_the_interactive_set_up(alpaca_fake, settings):
    settings.ALPACA_READ_TIMEOUT_SECONDS = 15
    settings.ALPACA_INTERACTIVE_TIMEOUT_SECONDS = 2
    settings.BROKER_BUDGET_MAX_WAIT_SECONDS = 30
    with interactive():
        quick = get_broker()
        assert get_broker() is quick  # cached like the normal one
    normal = get_broker()

    assert normal is not quick
    assert quick.trading._session.default_timeout == (2, 2)  # connect (5 s) capped too
    assert quick.trading._retry == quick.data._retry == 0
    assert (quick.read_attempts, quick.submit_attempts) == (1, 1)
    assert quick.trading._session.budget_max_wait == 2

    assert normal.trading._session.default_timeout[1] == 15
    assert normal.trading._retry > 0
    assert (normal.read_attempts, normal.submit_attempts) == (3, 3)
    assert normal.trading._session.budget_max_wait is None  # the budget's own 30 s
    assert normal.budget.max_wait == 30
