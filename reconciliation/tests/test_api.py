"""GET /api/account/reconcile: the report as JSON, read-only, errors as 4xx/5xx JSON."""

from decimal import Decimal

import pytest

from accounts.tokens import create_api_token
from bots.tests.factories import BotFactory
from reconciliation.models import ReconciliationRun
from tradebots.broker import OrderSide, get_broker
from trading import orders
from trading.models import Trade

URL = "/api/account/reconcile"


@pytest.fixture
def books(transactional_db):
    bot = BotFactory()
    trade = orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal")
    missing = orders.generate_client_order_id(bot)
    get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, missing)
    get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, "placed-by-hand")
    return trade, missing


def test_the_report(user_client, user, books):
    trade, missing = books
    before = list(Trade.objects.values())

    response = user_client.get(URL, {"limit": "100"})

    assert response.status_code == 200
    body = response.json()
    assert body["synced_count"] == 1
    assert body["discrepancy_count"] == 1
    (discrepancy,) = body["discrepancies"]
    assert (discrepancy["kind"], discrepancy["client_order_id"]) == ("missing_in_db", missing)
    assert discrepancy["bot"]["id"] == str(trade.bot_id)
    assert [o["client_order_id"] for o in body["external_orders"]] == ["placed-by-hand"]
    assert body["window"]["limit"] == 100 and body["last_checked"]
    assert list(Trade.objects.values()) == before  # read-only: the books are untouched
    run = ReconciliationRun.objects.get()
    assert (run.trigger, run.started_by, run.pk) == ("api", user.username, body["id"])


def test_limit_and_since(user_client, books):
    assert user_client.get(URL, {"limit": "1"}).json()["orders_checked"] == 1
    body = user_client.get(URL, {"since": "2001-01-01T00:00:00Z"}).json()
    assert body["window"]["since"] == "2001-01-01T00:00:00Z"
    assert body["window"]["limit"] == 10000 and body["orders_checked"] == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "lots"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"since": "not-a-date"}, "since"),
        ({"since": "2999-01-01T00:00:00Z"}, "since"),
    ],
)
def test_bad_parameters_are_400_json(user_client, query, field):
    response = user_client.get(URL, query)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid parameters"
    assert list(body["fields"]) == [field]
    assert not ReconciliationRun.objects.exists()


@pytest.mark.django_db
def test_only_get(user_client):
    response = user_client.post(URL)

    assert response.status_code == 405
    assert response.json() == {"error": "Method POST not allowed; use GET", "fields": {}}


@pytest.mark.django_db
def test_login_or_token_required(client, user):
    assert client.get(URL).status_code == 401
    token = create_api_token(user.username)
    response = client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["outcome"] == "in_sync"


def test_an_unreachable_broker_is_503_json(user_client, fake):
    fake.fail(500, times=10, method="GET", path="/v2/orders")

    response = user_client.get(URL)

    assert response.status_code == 503
    assert response.json()["error"].startswith("The broker could not be reached")


def test_the_runs_newest_first_and_one_run_in_full(user_client, books):
    trade, missing = books
    first = user_client.get(URL).json()
    second = user_client.get(URL, {"limit": "1"}).json()

    page = user_client.get("/api/reconciliation/runs", {"limit": "1"}).json()
    rest = user_client.get("/api/reconciliation/runs", {"cursor": page["next"]}).json()
    run = user_client.get(f"/api/reconciliation/runs/{first['id']}").json()

    assert [r["id"] for r in page["results"] + rest["results"]] == [second["id"], first["id"]]
    assert rest["next"] is None
    summary = rest["results"][0]
    assert "discrepancies" not in summary and summary["discrepancy_count"] == 1
    assert summary["summary"] == "1 order synced, 1 discrepancy found"
    assert run == first
    (discrepancy,) = run["discrepancies"]
    assert (discrepancy["kind"], discrepancy["client_order_id"]) == ("missing_in_db", missing)
    assert discrepancy["bot"]["id"] == str(trade.bot_id)
    assert run["unmanaged_holdings"] == [
        {"symbol": "AAPL", "qty": "2", "broker_qty": "4", "ours": "2",
         "market_value": run["unmanaged_holdings"][0]["market_value"]},
    ]  # fmt: skip


def test_runs_are_paginated_by_keyset(user_client, django_assert_max_num_queries):
    from django.utils import timezone

    now = timezone.now()
    ReconciliationRun.objects.bulk_create(
        ReconciliationRun(started_at=now, finished_at=now, trigger="schedule", outcome="in_sync")
        for _ in range(5)
    )  # the same start time: the id breaks the tie
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        with django_assert_max_num_queries(3):  # session, user, the page
            page = user_client.get("/api/reconciliation/runs", params).json()
        seen += [run["id"] for run in page["results"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(ReconciliationRun.objects.values_list("id", flat=True), reverse=True)


@pytest.mark.django_db
def test_reconciling_needs_the_trade_permission(viewer_client):
    response = viewer_client.get(URL)

    assert response.status_code == 403
    assert not ReconciliationRun.objects.exists()
