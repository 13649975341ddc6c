"""The bots JSON API: same services as the pages, errors as 4xx JSON."""

import json
from decimal import Decimal

import pytest

from bots.models import Bot, default_strategy
from bots.schema import StrategyConfig
from bots.tests.factories import BotFactory
from tradebots.broker.base import BrokerUnavailable
from tradebots.broker.paper.broker import PaperBroker
from trading.models import Trade
from trading.tests.factories import PositionFactory, TradeFactory

pytestmark = pytest.mark.django_db

NEW_BOT = {
    "name": "MSFT crossover",
    "symbol": "msft",
    "capital": "2500.00",
    "timeframe": "15Min",
    "stop_loss_pct": "5",
    "take_profit_pct": "10",
    "strategy": {
        "indicators": {"sma_cross": {"enabled": True, "fast": 10, "slow": 30}},
        "buy_rule": "sma_cross",
        "sell_rule": "sma_cross",
    },
}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def put(client, url, body):
    return client.put(url, json.dumps(body), content_type="application/json")


def test_create_and_read_a_bot(user_client, buying_power):
    buying_power("10000")

    created = post(user_client, "/api/bots", NEW_BOT)

    assert created.status_code == 201
    body = created.json()
    assert body["symbol"] == "MSFT"
    assert body["capital"] == "2500"
    assert body["status"] == "stopped"
    assert body["stop_loss_pct"] == "5"
    assert body["strategy"]["indicators"]["sma_cross"] == {"enabled": True, "fast": 10, "slow": 30}
    assert body["strategy"]["indicators"]["rsi"]["enabled"] is False
    assert body["open_position"] is None and body["realized_gains"] == "0"
    assert body["client_order_id_prefix"] == f"bot-{body['id'].replace('-', '')[:8]}-"
    assert user_client.get(f"/api/bots/{body['id']}").json() == body
    assert user_client.get("/api/bots").json() == {"results": [body], "next": None}


def test_validation_errors_name_the_fields(user_client, buying_power):
    buying_power("10000")
    bad = {
        **NEW_BOT,
        "capital": "-1",
        "symbol": "",
        "strategy": {"indicators": {"sma_cross": {"enabled": True, "fast": 30, "slow": 10}},
                     "buy_rule": "sma_cross", "sell_rule": "sma_cross"},
    }  # fmt: skip

    response = post(user_client, "/api/bots", bad)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid bot"
    assert body["fields"] == {
        "capital": ["Capital must be greater than 0."],
        "symbol": ["Symbol is required."],
        "strategy.indicators.sma_cross.slow": [
            "SMA crossover slow period must be longer than the fast period (fast 30, slow 10)."
        ],
    }
    assert not Bot.objects.exists()


def with_strategy(**changes) -> dict:
    return {**NEW_BOT, "strategy": {**NEW_BOT["strategy"], **changes}}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (with_strategy(indicators="x"),
         {"strategy.indicators": "Indicators must be an object."}),
        ({**NEW_BOT, "strategy": "x"}, {"strategy": "Strategy must be an object."}),
        ({**NEW_BOT, "capital": 10**40}, {"capital": "Capital must have at most 14 digits."}),
        (with_strategy(indicators={"sma_cross": {"enabled": True, "fast": 10**40}}),
         {"strategy.indicators.sma_cross.fast": "SMA crossover fast period must be at most 500."}),
        ({**NEW_BOT, "capital": [1]}, {"capital": "Capital must be a number."}),
        ({**NEW_BOT, "allow_fractional": {}},
         {"allow_fractional": "Allow fractional shares must be true or false."}),
        (with_strategy(indicators={"sma_cross": {"enabled": True}, "vwap": {"enabled": True}}),
         {"strategy.indicators.vwap": "Unknown indicator 'vwap'; use one of rsi, macd, "
                                      "bollinger, sma_cross, ema_cross, stochastic."}),
        ({**NEW_BOT, "status": "running"},
         {"status": "Unknown field 'status' in Bot; use one of name, symbol, capital, "
                    "timeframe, strategy, stop_loss_pct, take_profit_pct, allow_fractional."}),
        (with_strategy(indicators={"sma_cross": {"enabled": True, "fast": 0}}),
         {"strategy.indicators.sma_cross.fast": "SMA crossover fast period must be at least 2."}),
        (with_strategy(indicators={"sma_cross": {"enabled": True, "fast": "0"}}),
         {"strategy.indicators.sma_cross.fast": "SMA crossover fast period must be at least 2."}),
        ({**NEW_BOT, "stop_loss_pct": 0}, {"stop_loss_pct": "Stop-loss must be greater than 0."}),
        ({**NEW_BOT, "stop_loss_pct": "0"},
         {"stop_loss_pct": "Stop-loss must be greater than 0."}),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field_never_a_500(user_client, buying_power, body, fields):
    buying_power("10000")

    response = user_client.post("/api/bots", json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    expected = {path: [message] for path, message in fields.items()}
    assert response.json() == {"error": "Invalid bot", "fields": expected}
    assert not Bot.objects.exists()


@pytest.mark.parametrize(
    ("body", "error", "fields"),
    [
        ({**NEW_BOT, "name": "\ud800"}, "Invalid request body",
         {"name": ["Text must be valid Unicode; a lone surrogate escape such as \\ud800 is "
                   "not."]}),
        ({**NEW_BOT, "capital": 10**400},
         "Numbers in the request body are limited to 100 digits.", {}),
    ],
)  # fmt: skip
def test_what_no_field_can_hold_is_refused_before_the_schema(user_client, body, error, fields):
    response = user_client.post("/api/bots", json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": error, "fields": fields}
    assert not Bot.objects.exists()


def test_null_or_omitted_means_none_or_the_default(user_client, buying_power):
    buying_power("10000")
    body = {key: value for key, value in NEW_BOT.items() if key not in ("strategy", "timeframe")}

    created = post(user_client, "/api/bots", {**body, "take_profit_pct": None})

    assert created.status_code == 201
    bot = Bot.objects.get()
    assert (bot.timeframe, bot.take_profit_pct) == ("5Min", None)
    assert bot.strategy == default_strategy()


def test_an_update_merges_into_the_strategy_and_null_clears_a_stop_loss(user_client, buying_power):
    buying_power("10000")
    bot = BotFactory(stop_loss_pct=Decimal("5"))
    macd = {"indicators": {"macd": {"enabled": True, "fast": 5}}, "buy_rule": "macd"}

    response = put(user_client, f"/api/bots/{bot.pk}", {"strategy": macd, "stop_loss_pct": None})

    assert response.status_code == 200
    bot.refresh_from_db()
    assert bot.stop_loss_pct is None
    expected = default_strategy()
    expected["indicators"]["macd"].update(enabled=True, fast=5)
    expected["buy_rule"] = "macd"
    assert bot.strategy == StrategyConfig.model_validate(expected).model_dump(mode="json")
    assert response.json()["strategy"] == bot.strategy


def test_capital_errors_name_the_numbers(user_client, buying_power):
    buying_power("2000")

    response = post(user_client, "/api/bots", NEW_BOT)

    assert response.status_code == 400
    assert response.json()["fields"]["capital"] == [
        "Capital $2,500.00 exceeds the available $2,000.00 "
        "(buying power $2,000.00 − reserved $0.00)."
    ]


@pytest.mark.parametrize(
    ("body", "error", "fields"),
    [
        ("not json", "The request body is not valid JSON: Expecting value: line 1 column 1 "
         "(char 0).", {}),
        ("[1, 2]", "Invalid request body: The request body must be a JSON object.", {}),
        ('{"strategy": 5}', "Invalid bot", {
            "name": ["Name is required."], "symbol": ["Symbol is required."],
            "capital": ["Capital is required."], "strategy": ["Strategy must be an object."]}),
        ('{"colour": "red"}', "Invalid bot", {
            "name": ["Name is required."], "symbol": ["Symbol is required."],
            "capital": ["Capital is required."],
            "colour": ["Unknown field 'colour' in Bot; use one of name, symbol, capital, "
                       "timeframe, strategy, stop_loss_pct, take_profit_pct, allow_fractional."]}),
    ],
)  # fmt: skip
def test_malformed_bodies_are_400_json(user_client, body, error, fields):
    response = user_client.post("/api/bots", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": error, "fields": fields}
    assert not Bot.objects.exists()


def test_update_changes_only_what_is_sent(user_client, buying_power):
    buying_power("10000")
    bot = BotFactory(name="Before", capital=Decimal("1000"))

    response = put(user_client, f"/api/bots/{bot.pk}", {"name": "After", "capital": "3000"})

    assert response.status_code == 200
    assert response.json()["name"] == "After"
    bot.refresh_from_db()
    assert (bot.name, bot.capital, bot.symbol) == ("After", Decimal("3000"), "AAPL")
    assert bot.strategy["indicators"]["rsi"]["enabled"] is True


def test_a_strategy_change_merges_into_the_current_one(user_client):
    bot = BotFactory()
    change = {"strategy": {"indicators": {"macd": {"enabled": True}}, "buy_rule": "majority"}}

    response = put(user_client, f"/api/bots/{bot.pk}", change)

    assert response.status_code == 200
    indicators = response.json()["strategy"]["indicators"]
    assert indicators["rsi"] == {"enabled": True, "period": 14, "oversold": 30, "overbought": 70}
    assert indicators["macd"]["enabled"] is True
    bot.refresh_from_db()
    assert (bot.strategy["buy_rule"], bot.strategy["sell_rule"]) == ("majority", "rsi")


def test_an_invalid_update_changes_nothing(user_client):
    bot = BotFactory(name="Kept")

    response = put(user_client, f"/api/bots/{bot.pk}", {"name": "", "stop_loss_pct": "100"})

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "name": ["Name is required."],
        "stop_loss_pct": ["Stop-loss must be less than 100."],
    }
    bot.refresh_from_db()
    assert bot.name == "Kept" and bot.stop_loss_pct is None


def test_lifecycle_endpoints(user_client, buying_power):
    buying_power("10000")
    bot = BotFactory()

    started = user_client.post(f"/api/bots/{bot.pk}/start")
    paused = user_client.post(f"/api/bots/{bot.pk}/pause")
    again = user_client.post(f"/api/bots/{bot.pk}/pause")
    stopped = user_client.post(f"/api/bots/{bot.pk}/stop")

    assert (started.status_code, started.json()["status"]) == (200, "running")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert again.status_code == 409
    assert again.json()["error"].startswith("Cannot pause")
    assert stopped.json()["status"] == "stopped"


def test_start_refused_when_buying_power_dropped(user_client, buying_power):
    buying_power("500")
    bot = BotFactory(capital=Decimal("1000"))

    response = user_client.post(f"/api/bots/{bot.pk}/start")

    assert response.status_code == 409
    assert "buying power is $500.00" in response.json()["error"]


def test_delete(user_client):
    bot = BotFactory()

    response = user_client.delete(f"/api/bots/{bot.pk}")

    assert response.status_code == 204
    assert user_client.get(f"/api/bots/{bot.pk}").status_code == 404


def test_unknown_bot_is_404_json(user_client):
    response = user_client.get("/api/bots/8d0c4f51-6f3f-4c67-9d58-8d0e2f9b1c11")

    assert response.status_code == 404
    assert response.json() == {"error": "Not found", "fields": {}}


@pytest.mark.parametrize(
    ("exposure", "change", "field"),
    [("position", {"symbol": "MSFT"}, "symbol"), ("position", {"timeframe": "1Min"}, "timeframe"),
     ("order", {"symbol": "MSFT"}, "symbol"), ("order", {"timeframe": "1Min"}, "timeframe")],
)  # fmt: skip
def test_an_exposed_bots_symbol_and_timeframe_are_409(
    user_client, buying_power, exposure, change, field
):
    buying_power("10000")
    bot = BotFactory(name="Apple")
    if exposure == "position":
        PositionFactory(bot=bot, qty=Decimal("2.5"))
        held = "holds 2.5 AAPL"
    else:
        TradeFactory(bot=bot, status=Trade.Status.PENDING, order_id=None)
        held = "has an open buy order for 10 AAPL (pending)"

    response = put(user_client, f"/api/bots/{bot.pk}", change)

    assert response.status_code == 409
    message = f"'Apple' {held}; its {field} cannot change until it is flat."
    assert response.json() == {"error": message, "fields": {field: [message]}}
    bot.refresh_from_db()
    assert (bot.symbol, bot.timeframe) == ("AAPL", "5Min")


def test_an_exposed_bot_may_lower_capital_while_the_broker_is_down(user_client, monkeypatch):
    bot = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=bot)

    def down(self):
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "get_account", down)

    lowered = put(user_client, f"/api/bots/{bot.pk}", {"capital": "250", "name": "Less"})
    raised = put(user_client, f"/api/bots/{bot.pk}", {"capital": "2500"})

    assert lowered.status_code == 200
    assert (lowered.json()["capital"], lowered.json()["name"]) == ("250", "Less")
    assert raised.status_code == 503
    bot.refresh_from_db()
    assert bot.capital == Decimal("250")


@pytest.mark.parametrize("exposure", ["position", "order"])
def test_delete_of_an_exposed_bot_is_409(user_client, exposure):
    bot = BotFactory()
    if exposure == "position":
        PositionFactory(bot=bot)
    else:
        TradeFactory(bot=bot, status=Trade.Status.PARTIALLY_FILLED, filled_qty=Decimal("1"))

    response = user_client.delete(f"/api/bots/{bot.pk}")

    assert response.status_code == 409
    assert "cannot be deleted until it is flat" in response.json()["error"]
    assert Bot.objects.filter(pk=bot.pk).exists()


def test_a_flat_bot_is_deleted_through_the_api(user_client):
    bot = BotFactory()
    PositionFactory(bot=bot, closed=True)
    TradeFactory(bot=bot, status=Trade.Status.CANCELED)

    assert user_client.delete(f"/api/bots/{bot.pk}").status_code == 204
    assert not Bot.objects.exists()


def test_bots_come_in_pages_by_name(user_client, django_assert_max_num_queries):
    for name in ["Delta", "alpha", "Charlie", "Bravo", "Echo"]:
        BotFactory(name=name)
    first = user_client.get("/api/bots", {"limit": "2"}).json()

    with django_assert_max_num_queries(4):  # session, user, the page's bots, their positions
        second = user_client.get("/api/bots", {"limit": "2", "cursor": first["next"]}).json()
    last = user_client.get("/api/bots", {"limit": "2", "cursor": second["next"]}).json()

    names = [bot["name"] for page in (first, second, last) for bot in page["results"]]
    assert names == ["Bravo", "Charlie", "Delta", "Echo", "alpha"]
    assert last["next"] is None


def test_the_status_history(user_client, buying_power):
    buying_power("10000")
    bot = BotFactory()
    user_client.post(f"/api/bots/{bot.pk}/start")
    user_client.post(f"/api/bots/{bot.pk}/pause")

    body = user_client.get(f"/api/bots/{bot.pk}/status-changes").json()

    assert [(c["from_status"], c["to_status"], c["reason"]) for c in body["results"]] == [
        ("running", "paused", "Paused"),
        ("stopped", "running", "Started"),
    ]
    assert {change["actor"] for change in body["results"]} == {
        user_client.get("/api/me").json()["username"]
    }


def test_the_chart_of_the_bot_page(user_client):
    bot = BotFactory(strategy={"indicators": {"sma_cross": {"enabled": True}},
                               "buy_rule": "sma_cross", "sell_rule": "sma_cross"})  # fmt: skip

    body = user_client.get(f"/api/bots/{bot.pk}/chart").json()

    assert len(body["bars"]) == 150
    assert {overlay["name"] for overlay in body["overlays"]} == {"SMA fast", "SMA slow"}
    assert body["panes"] == [] and body["fills"] == []
    bar = body["bars"][-1]
    assert Decimal(bar["low"]) <= Decimal(bar["close"]) <= Decimal(bar["high"])
    assert all("E" not in bar[price] for price in ("open", "high", "low", "close"))


def test_the_chart_has_oscillator_panes_and_the_bots_fills(user_client):
    bot = BotFactory(
        strategy={
            "indicators": {
                "rsi": {"enabled": True, "oversold": 20, "overbought": 80},
                "macd": {"enabled": True},
            },
            "buy_rule": "majority",
            "sell_rule": "majority",
        }
    )
    latest = PaperBroker().get_bars([bot.symbol], bot.timeframe, 1)[bot.symbol][-1]
    TradeFactory(bot=bot, qty=Decimal("4"), price=Decimal("187.5"), filled_at=latest.timestamp)

    body = user_client.get(f"/api/bots/{bot.pk}/chart").json()

    assert set(body) == {"bars", "overlays", "panes", "markers", "fills"}
    assert [pane["key"] for pane in body["panes"]] == ["rsi", "macd"]
    assert body["panes"][0]["levels"] == [
        {"name": "Oversold", "value": "20"},
        {"name": "Overbought", "value": "80"},
    ]
    histogram = body["panes"][1]["series"][2]
    assert (histogram["name"], histogram["kind"]) == ("Histogram", "histogram")
    assert len(histogram["points"]) == 150
    assert all(isinstance(point["value"], str) for point in histogram["points"])
    assert body["fills"] == [
        {"time": int(latest.timestamp.timestamp()), "side": "buy", "qty": "4", "price": "187.5"}
    ]
    # A marker starts each run of signals: never two of the same side on consecutive bars.
    times = [bar["time"] for bar in body["bars"]]
    marked = {(times.index(marker["time"]), marker["side"]) for marker in body["markers"]}
    assert not any((index + 1, side) in marked for index, side in marked)


def test_the_chart_says_when_the_broker_is_down(user_client, monkeypatch):
    bot = BotFactory()

    def down(self, *args, **kwargs):
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "get_bars", down)

    response = user_client.get(f"/api/bots/{bot.pk}/chart")

    assert response.status_code == 503
    assert response.json()["error"] == (
        "Price data unavailable: Alpaca unreachable: ConnectTimeout"
    )


def test_a_stored_strategy_the_schema_refuses_is_reported_not_a_500(user_client):
    bot = BotFactory()
    broken = default_strategy()
    broken["indicators"]["macd"].update(fast=30, slow=10)  # disabled, so the old code let it be
    Bot.objects.filter(pk=bot.pk).update(strategy=broken)

    listed = user_client.get("/api/bots").json()["results"][0]
    chart = user_client.get(f"/api/bots/{bot.pk}/chart")

    assert listed["strategy"] is None
    assert listed["strategy_problems"] == [
        "MACD slow period must be longer than the fast period (fast 30, slow 10)."
    ]
    assert chart.status_code == 409
    assert chart.json() == {
        "error": "No chart: the strategy is invalid.",
        "fields": {
            "strategy.indicators.macd.slow": [
                "MACD slow period must be longer than the fast period (fast 30, slow 10)."
            ]
        },
    }
    fixed = put(user_client, f"/api/bots/{bot.pk}", {"strategy": {"indicators": {"macd": {
        "fast": 12, "slow": 26}}}})  # fmt: skip
    assert fixed.status_code == 200 and fixed.json()["strategy_problems"] == []
