"""API keys Alpaca does not accept (HTTP 401, or 403 without an error code) are reported as
such wherever the broker's failure is shown, not as the broker being unreachable."""

from decimal import Decimal

import pytest
from django.urls import reverse

from reconciliation import services as reconciliation
from reconciliation.models import ReconciliationRun
from tradebots.broker.alpaca import AlpacaBroker
from tradebots.broker.base import (
    BrokerAuthRejected,
    InsufficientBuyingPower,
    OrderRejected,
    OrderSide,
)
from tradebots.broker.paper.models import PaperOrder
from trading.models import Trade
from trading.tests.factories import PositionFactory


@pytest.mark.parametrize("status", [401, 403])
def test_the_gateway_names_rejected_keys_and_does_not_retry(fake_alpaca, status):
    fake_alpaca.faults.reject_keys = status

    with pytest.raises(BrokerAuthRejected) as raised:
        fake_alpaca.broker().get_account()

    assert str(raised.value) == f"Alpaca rejected the API keys (HTTP {status})"
    assert len(fake_alpaca.requests_to("GET", "/v2/account")) == 1


def test_wrong_keys_are_a_401(fake_alpaca):
    broker = AlpacaBroker("PKWRONGKEY", "wrong", base_url=fake_alpaca.url, data_url=fake_alpaca.url)

    with pytest.raises(BrokerAuthRejected, match=r"rejected the API keys \(HTTP 401\)"):
        broker.get_latest_prices(["AAPL"])


def test_an_order_met_with_rejected_keys_was_not_placed(fake_alpaca):
    fake_alpaca.faults.reject_keys = 403

    with pytest.raises(OrderRejected, match=r"Alpaca rejected the API keys \(HTTP 403\)"):
        fake_alpaca.broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, "bot-1-2")

    assert len(fake_alpaca.requests_to("POST", "/v2/orders")) == 1  # no retry, no look-up
    assert not PaperOrder.objects.exists()


def test_a_refused_order_is_still_a_refused_order(fake_alpaca):
    fake_alpaca.faults.reject_orders = [(403, "insufficient buying power")]

    with pytest.raises(InsufficientBuyingPower):
        fake_alpaca.broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, "bot-1-3")


@pytest.mark.parametrize("status", [401, 403])
def test_the_dashboard_says_the_keys_were_rejected(alpaca_fake, user_client, status):
    alpaca_fake.faults.reject_keys = status

    html = user_client.get(reverse("dashboard")).content.decode()

    assert f"Alpaca rejected the API keys (HTTP {status})" in html
    assert "unreachable" not in html


def test_the_bot_form_says_the_keys_were_rejected(alpaca_fake, user_client):
    alpaca_fake.faults.reject_keys = 401

    html = user_client.get(reverse("bots:create")).content.decode()

    assert (
        "Cannot check capital: Alpaca rejected the API keys (HTTP 401). Nothing was changed."
        in html
    )


def test_selling_unmanaged_shares_says_the_keys_were_rejected(alpaca_fake, user_client):
    alpaca_fake.faults.reject_keys = 401

    response = user_client.post(
        reverse("trading:close-unmanaged", args=["AAPL"]), headers={"HX-Request": "true"}
    )

    assert "Alpaca rejected the API keys (HTTP 401)" in response.content.decode()
    assert "unreachable" not in response.content.decode()


def test_an_emergency_sell_says_the_keys_were_rejected(alpaca_fake, user_client):
    position = PositionFactory()
    alpaca_fake.faults.reject_keys = 401

    response = user_client.post(
        reverse("trading:close-position", args=[position.pk]), headers={"HX-Request": "true"}
    )

    assert (
        "The broker refused to sell AAPL: Alpaca rejected the API keys (HTTP 401). "
        "The position is still open." in response.content.decode()
    )
    position.refresh_from_db()
    assert position.is_open
    assert Trade.objects.get().status == Trade.Status.REJECTED


def test_a_reconciliation_run_says_the_keys_were_rejected(alpaca_fake):
    alpaca_fake.faults.reject_keys = 403

    run = reconciliation.reconcile(trigger=ReconciliationRun.Trigger.COMMAND)

    assert run.failed
    assert run.error == (
        "The broker refused to list its orders: Alpaca rejected the API keys (HTTP 403)"
    )
