"""The trading JSON API: trades with their fills, open / closed / unmanaged positions, and
getting out (one position, unmanaged shares, everything)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bots.models import Bot
from bots.tests.factories import BotFactory
from tradebots.broker import OrderSide, get_broker
from tradebots.broker.base import BrokerUnavailable
from tradebots.broker.paper.broker import PaperBroker
from trading.models import Position, Trade
from trading.orders import place_order
from trading.tests.factories import PositionFactory, TradeFactory


@pytest.fixture(autouse=True)
def _fast_verification(settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0


def ids(page: dict) -> list:
    return [row["id"] for row in page["results"]]


# --- trades ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_trade_with_everything_it_carries(user_client):
    bot = BotFactory(name="Apple RSI")
    trade = TradeFactory(
        bot=bot, qty=Decimal("4"), status=Trade.Status.PARTIALLY_FILLED,
        filled_qty=Decimal("2.5"), price=Decimal("150.2500"), reason="RSI buy signal",
        error_message="",
    )  # fmt: skip

    body = user_client.get(f"/api/trades/{trade.pk}").json()

    assert body == {
        "id": trade.pk,
        "bot_id": str(bot.pk),
        "bot_name": "Apple RSI",
        "position_id": None,
        "symbol": "AAPL",
        "side": "buy",
        "qty": "4",
        "filled_qty": "2.5",
        "price": "150.25",
        "status": "partially_filled",
        "client_order_id": trade.client_order_id,
        "order_id": trade.order_id,
        "reason": "RSI buy signal",
        "origin": "engine",
        "error_message": "",
        "created_at": body["created_at"],
        "submitted_at": body["submitted_at"],
        "filled_at": None,
        "updated_at": body["updated_at"],
        "fills": {"filled_qty": "2.5", "average_price": "150.25"},
    }
    assert body["created_at"].endswith("Z") and body["submitted_at"]


@pytest.mark.django_db
def test_trades_newest_first_and_filtered(user_client):
    apple, microsoft = BotFactory(), BotFactory(symbol="MSFT")
    old = TradeFactory(bot=apple, side="sell")
    Trade.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    bought = TradeFactory(bot=apple)
    rejected = TradeFactory(bot=microsoft, status=Trade.Status.REJECTED)
    unmanaged = TradeFactory(bot=None, symbol="KO", side="sell")

    def listed(**filters):
        response = user_client.get("/api/trades", filters)
        assert response.status_code == 200, response.content
        return ids(response.json())

    assert listed() == [unmanaged.pk, rejected.pk, bought.pk, old.pk]
    assert listed(bot=str(apple.pk)) == [bought.pk, old.pk]
    assert listed(symbol="msft") == [rejected.pk]
    assert listed(side="sell") == [unmanaged.pk, old.pk]
    assert listed(status="rejected") == [rejected.pk]
    assert listed(since=(timezone.now() - timedelta(days=1)).isoformat()) == [
        unmanaged.pk, rejected.pk, bought.pk,
    ]  # fmt: skip
    assert listed(bot=str(apple.pk), side="buy", status="filled") == [bought.pk]
    assert user_client.get("/api/trades", {"limit": "1"}).json()["next"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filters", "field"),
    [({"bot": "42"}, "bot"), ({"symbol": "AA PL"}, "symbol"), ({"symbol": "x" * 13}, "symbol"),
     ({"side": "short"}, "side"), ({"status": "done"}, "status"),
     ({"since": "yesterday"}, "since"), ({"limit": "0"}, "limit"), ({"limit": "lots"}, "limit")],
)  # fmt: skip
def test_bad_trade_filters_are_400(user_client, filters, field):
    response = user_client.get("/api/trades", filters)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid parameters" and list(body["fields"]) == [field]


# --- positions ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_open_positions_valued_at_the_brokers_prices(user_client):
    bot = BotFactory(name="Holder", symbol="AAPL", status=Bot.Status.RUNNING)
    place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    position = Position.objects.get(bot=bot)
    price = get_broker().get_latest_prices(["AAPL"])["AAPL"]

    (row,) = user_client.get("/api/positions").json()["results"]

    assert (row["id"], row["bot_name"], row["symbol"], row["qty"]) == (
        position.pk,
        "Holder",
        "AAPL",
        "4",
    )
    assert Decimal(row["current_price"]) == price
    assert Decimal(row["market_value"]) == price * 4
    assert Decimal(row["unrealized_pl"]) == (price - position.avg_entry_price) * 4
    assert row["closing"] is False and row["is_open"] is True


@pytest.mark.django_db
def test_open_positions_without_prices_when_the_broker_is_down(user_client, monkeypatch):
    PositionFactory()

    def down(self, symbols):
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "get_latest_prices", down)

    (row,) = user_client.get("/api/positions").json()["results"]

    assert row["current_price"] is None and row["unrealized_pl"] is None


@pytest.mark.django_db
def test_open_positions_in_pages_newest_first(user_client, django_assert_max_num_queries):
    positions = [PositionFactory(bot=BotFactory()) for _ in range(5)]
    first = user_client.get("/api/positions", {"limit": "3"}).json()

    # session, user, the page, the sells in flight (and one broker call for the prices)
    with django_assert_max_num_queries(4):
        second = user_client.get("/api/positions", {"limit": "3", "cursor": first["next"]}).json()

    assert ids(first) + ids(second) == [position.pk for position in reversed(positions)]
    assert second["next"] is None


@pytest.mark.django_db
def test_closed_positions_with_their_realized_pnl(user_client):
    PositionFactory()
    closed = PositionFactory(closed=True, realized_pnl=Decimal("-12.5000"))

    (row,) = user_client.get("/api/positions/closed").json()["results"]

    assert row["id"] == closed.pk
    assert (row["is_open"], row["realized_pnl"], row["exit_price"]) == (False, "-12.5", "160")
    assert row["closed_at"]


@pytest.mark.django_db(transaction=True)
def test_unmanaged_positions(user_client):
    bot = BotFactory(symbol="AAPL")
    place_order(bot, "buy", Decimal("4"), "RSI buy signal")
    get_broker().submit_market_order("AAPL", Decimal("2"), OrderSide.BUY, "placed-by-hand-1")
    get_broker().submit_market_order("KO", Decimal("3"), OrderSide.BUY, "placed-by-hand-2")

    page = user_client.get("/api/positions/unmanaged", {"limit": "1"}).json()
    rest = user_client.get("/api/positions/unmanaged", {"cursor": page["next"]}).json()

    (aapl,), (ko,) = page["results"], rest["results"]
    assert (aapl["symbol"], aapl["qty"], aapl["broker_qty"]) == ("AAPL", "2", "6")
    assert (ko["symbol"], ko["qty"]) == ("KO", "3")
    assert Decimal(ko["current_price"]) > 0 and rest["next"] is None


@pytest.mark.django_db
def test_unmanaged_positions_need_the_broker(user_client, monkeypatch):
    def down(self):
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "list_positions", down)

    response = user_client.get("/api/positions/unmanaged")

    assert response.status_code == 503
    assert response.json()["error"] == "Broker unreachable: Alpaca unreachable: ConnectTimeout"


# --- getting out -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_close_the_unmanaged_shares(user_client):
    get_broker().submit_market_order("KO", Decimal("3"), OrderSide.BUY, "placed-by-hand")

    response = user_client.post("/api/positions/unmanaged/ko/close")
    again = user_client.post("/api/positions/unmanaged/KO/close")

    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Sold 3 unmanaged KO shares."
    assert (body["trade"]["side"], body["trade"]["bot_id"]) == ("sell", None)
    assert body["trade"]["client_order_id"].startswith("manual-")
    assert again.status_code == 404
    assert again.json()["error"] == "There is no unmanaged KO position."


@pytest.mark.django_db
def test_an_unmanaged_symbol_must_look_like_one(user_client):
    response = user_client.post("/api/positions/unmanaged/K%20O/close")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["symbol"]


@pytest.mark.django_db(transaction=True)
def test_emergency_stop_sells_all_and_pauses_all(user_client):
    holder = BotFactory(name="Holder", status=Bot.Status.RUNNING)
    place_order(holder, "buy", Decimal("5"), "RSI buy signal")
    idle = BotFactory(name="Idle", symbol="MSFT", status=Bot.Status.RUNNING)

    response = user_client.post("/api/emergency-stop")

    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Sold 1 position(s), paused 2 bot(s)."
    assert {bot["name"] for bot in body["paused"]} == {"Holder", "Idle"}
    (closed,) = body["closed"]
    assert (closed["trade"]["reason"], closed["confirmed"]) == ("Manual close", True)
    assert body["failed"] == []
    assert not Position.objects.filter(is_open=True).exists()
    idle.refresh_from_db()
    assert idle.status == Bot.Status.PAUSED
