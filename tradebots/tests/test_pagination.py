"""Keyset pagination: every row once, in a stable order, without OFFSET, whatever is written
between pages; forged or stale cursors are a 400, never a 500."""

import json
from base64 import urlsafe_b64encode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bots.tests.factories import BotFactory
from trading.models import Trade
from trading.tests.factories import TradeFactory

pytestmark = pytest.mark.django_db


def cursor_of(value) -> str:
    return urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def walk(client, path: str, limit: int, **filters) -> list[int]:
    seen, cursor = [], None
    while True:
        params = {"limit": str(limit), **filters, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params)
        assert response.status_code == 200, response.content
        page = response.json()
        assert len(page["results"]) <= limit
        seen += [row["id"] for row in page["results"]]
        cursor = page["next"]
        if cursor is None:
            return seen


@pytest.fixture
def trades():
    """120 trades, 40 of them written in the same microsecond (ties broken by id)."""
    bot = BotFactory()
    made = Trade.objects.bulk_create(
        TradeFactory.build(bot=bot, client_order_id=f"bot-{index:08x}-00000000")
        for index in range(120)
    )
    same_moment = timezone.now()
    Trade.objects.filter(pk__in=[trade.pk for trade in made[40:80]]).update(created_at=same_moment)
    return bot


def test_every_trade_once_newest_first(user_client, trades):
    expected = list(Trade.objects.order_by("-created_at", "-id").values_list("id", flat=True))

    assert walk(user_client, "/api/trades", limit=7) == expected
    assert walk(user_client, "/api/trades", limit=500) == expected


def test_deep_pages_never_offset(user_client, trades):
    first = user_client.get("/api/trades", {"limit": "100"}).json()

    with CaptureQueriesContext(connection) as queries:
        user_client.get("/api/trades", {"limit": "10", "cursor": first["next"]})

    (page_query,) = [q["sql"] for q in queries if 'FROM "trading_trade"' in q["sql"]]
    assert "OFFSET" not in page_query.upper()
    assert '"trading_trade"."created_at" <' in page_query


def test_rows_written_between_pages_neither_repeat_nor_hide_older_ones(user_client, trades):
    first = user_client.get("/api/trades", {"limit": "50"}).json()
    TradeFactory.create_batch(5, bot=trades)  # newer than every row listed so far

    rest = walk(user_client, "/api/trades", limit=50, cursor=first["next"])

    listed = [row["id"] for row in first["results"]] + rest
    assert len(listed) == len(set(listed)) == 120


def test_filters_and_cursor_together(user_client, trades):
    TradeFactory.create_batch(3, bot=trades, side="sell")

    sells = walk(user_client, "/api/trades", limit=2, side="sell")

    assert sells == list(
        Trade.objects.filter(side="sell")
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "%%%",
        cursor_of("just a string"),
        cursor_of([]),
        cursor_of(["2026-11-30T12:00:00+00:00"]),
        cursor_of(["2026-11-30T12:00:00+00:00", 1, 2]),
        cursor_of(["not a time", 1]),
        cursor_of(["0001-01-01T00:00:00+05:00", 1]),
        cursor_of(["9999-12-31T23:59:59-05:00", 1]),
        cursor_of(["2026-11-30T12:00:00+00:00", "one"]),
        cursor_of([True, 1]),
        cursor_of([None, 1]),
        cursor_of([{"a": 1}, 1]),
        urlsafe_b64encode(b"\xff\xfe").decode(),
        "A" * 501,
    ],
)
def test_a_forged_cursor_is_400(user_client, cursor):
    response = user_client.get("/api/trades", {"cursor": cursor})

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["cursor"]


def test_a_forged_cursor_for_a_uuid_key_is_400(user_client):
    BotFactory()

    response = user_client.get("/api/bots", {"cursor": cursor_of(["Bot", "not-a-uuid"])})

    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid cursor",
        "fields": {"cursor": ["Pass back the `next` value of the previous page unchanged."]},
    }


@pytest.mark.django_db(transaction=True)
def test_a_forged_cursor_for_a_list_from_the_broker_is_400(user_client):
    from decimal import Decimal

    from tradebots.broker import OrderSide, get_broker

    get_broker().submit_market_order("KO", Decimal("3"), OrderSide.BUY, "placed-by-hand")

    forged = user_client.get("/api/positions/unmanaged", {"cursor": cursor_of([5])})
    after_ko = user_client.get("/api/positions/unmanaged", {"cursor": cursor_of(["KO"])})

    assert forged.status_code == 400
    assert after_ko.json() == {"results": [], "next": None}


@pytest.mark.parametrize("limit", ["0", "-1", "501", "ten", "1.5", ""])
def test_the_limit_is_validated(user_client, limit):
    response = user_client.get("/api/trades", {"limit": limit})

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["limit"]


def test_a_page_defaults_to_50(user_client, trades):
    page = user_client.get("/api/trades").json()

    assert len(page["results"]) == 50 and page["next"]
