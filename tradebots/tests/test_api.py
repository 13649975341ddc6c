"""What every endpoint of the JSON API shares: auth and roles, the error shape, strict request
bodies, money as plain decimal strings, the login-only schema and docs."""

import json
import re
from decimal import Decimal

import pytest
from django.test import Client

from accounts.tokens import create_api_token
from backtests.models import Backtest
from bots.models import Bot, default_strategy
from bots.tests.factories import BotFactory
from reconciliation.models import ReconciliationRun
from tradebots.api import CSRF_MESSAGE, api
from tradebots.money import plain_decimal
from tradebots.permissions import REFUSED_MESSAGE
from trading.models import Position, Trade
from trading.tests.factories import PositionFactory, TradeFactory

pytestmark = pytest.mark.django_db

NEW_BOT = {
    "name": "Apple RSI",
    "symbol": "AAPL",
    "capital": "2500",
    "strategy": {"indicators": {"rsi": {"enabled": True}}, "buy_rule": "rsi", "sell_rule": "rsi"},
}


def operations(method_wanted):
    """(method, path template) of every operation in the API's own schema."""
    schema = api.get_openapi_schema()
    return [
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method_wanted(method.upper())
    ]


@pytest.fixture
def books(db):
    bot = BotFactory(name="Holder")
    position = PositionFactory(bot=bot)
    trade = TradeFactory(bot=bot)
    run = ReconciliationRun.objects.create(
        started_at=trade.created_at, finished_at=trade.created_at, trigger="api", outcome="in_sync"
    )
    backtest = Backtest.objects.create(
        name="Done", symbol="AAPL", timeframe="5Min", strategy=default_strategy(),
        capital=Decimal("1000"), slippage_bps=Decimal("5"), start=trade.created_at,
        end=trade.created_at, status=Backtest.Status.DONE,
    )  # fmt: skip
    return {"bot_id": bot.pk, "position_id": position.pk, "trade_id": trade.pk,
            "run_id": run.pk, "symbol": "AAPL", "backtest_id": backtest.pk}  # fmt: skip


def url(path: str, books: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: str(books[match.group(1)]), path)


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), operations(lambda method: method != "GET"))
def test_a_viewer_can_change_nothing(viewer, viewer_client, books, method, path):
    token = create_api_token(viewer.username)
    before = (list(Bot.objects.values()), list(Position.objects.values()), Trade.objects.count())

    with_session = viewer_client.generic(method, url(path, books), "{}", "application/json")
    with_token = Client().generic(
        method, url(path, books), "{}", "application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip

    for response in (with_session, with_token):
        assert response.status_code == 403
        assert response.json() == {"error": REFUSED_MESSAGE, "fields": {}}
    after = (list(Bot.objects.values()), list(Position.objects.values()), Trade.objects.count())
    assert after == before


@pytest.mark.parametrize(("method", "path"), operations(lambda method: method == "GET"))
def test_a_viewer_can_read_everything_but_not_run_a_reconciliation(
    viewer_client, books, method, path
):
    response = viewer_client.get(url(path, books))

    if path == "/api/account/reconcile":  # it runs one: a trader's action, as Check Sync is
        assert response.status_code == 403
        assert not ReconciliationRun.objects.filter(trigger="api").exclude(pk=books["run_id"])
    else:
        assert response.status_code == 200, response.content


def test_a_superuser_may_trade(client, buying_power):
    from accounts.tests.factories import UserFactory

    buying_power("10000")
    client.force_login(UserFactory(is_superuser=True))

    response = client.post("/api/bots", NEW_BOT, content_type="application/json")

    assert response.status_code == 201
    assert client.get("/api/me").json()["can_trade"] is True


# --- authentication ----------------------------------------------------------------------------


def test_anonymous_requests_are_401_whatever_the_method(client, books):
    for response in (
        client.get("/api/bots"),
        client.post("/api/bots", NEW_BOT, content_type="application/json"),
        client.delete(f"/api/bots/{books['bot_id']}"),
    ):
        assert response.status_code == 401
        assert response.json() == {"error": "Authentication required", "fields": {}}
    assert Bot.objects.count() == 1


def test_a_session_must_send_the_csrf_token_to_change_something(user, buying_power):
    buying_power("10000")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/")  # the page sets the csrftoken cookie, as in a browser

    refused = browser.post("/api/bots", NEW_BOT, content_type="application/json")
    reading = browser.get("/api/bots")
    accepted = browser.post(
        "/api/bots", NEW_BOT, content_type="application/json",
        headers={"X-CSRFToken": browser.cookies["csrftoken"].value},
    )  # fmt: skip

    assert refused.status_code == 403
    assert refused.json() == {"error": CSRF_MESSAGE, "fields": {}}
    assert reading.status_code == 200
    assert accepted.status_code == 201
    assert Bot.objects.count() == 1


def test_a_token_needs_no_csrf_token(user, buying_power):
    buying_power("10000")
    token = create_api_token(user.username)
    script = Client(enforce_csrf_checks=True)

    response = script.post(
        "/api/bots", NEW_BOT, content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip

    assert response.status_code == 201
    assert Bot.objects.get().status_changes.get().actor == user.username


def test_a_wrong_token_is_refused_even_with_a_session(user_client):
    response = user_client.get("/api/me", headers={"Authorization": "Bearer wrong"})

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API token", "fields": {}}


# --- errors ------------------------------------------------------------------------------------


def test_a_wrong_method_is_405_json_naming_the_allowed_ones(user_client):
    response = user_client.patch("/api/bots")

    assert response.status_code == 405
    assert response.json() == {"error": "Method PATCH not allowed; use GET, POST", "fields": {}}
    assert response["Allow"] == "GET, POST"


def test_unknown_ids_are_404_json(user_client):
    for path in ("/api/trades/999999", "/api/reconciliation/runs/999999", "/api/bots/not-a-uuid",
                 "/api/positions/999999/close"):  # fmt: skip
        response = user_client.generic("GET" if "close" not in path else "POST", path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not found", "fields": {}}


def test_bad_parameters_name_their_fields(user_client):
    response = user_client.get("/api/trades", {"side": "both", "limit": "501", "since": "soon"})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid parameters"
    assert set(body["fields"]) == {"side", "limit", "since"}
    assert body["fields"]["limit"] == ["Input should be less than or equal to 500"]


# --- request bodies ----------------------------------------------------------------------------


def post_raw(client, body: bytes | str):
    return client.post("/api/bots", body, content_type="application/json")


@pytest.mark.parametrize(
    ("body", "error", "fields"),
    [
        ('{"name": ', "The request body is not valid JSON: Expecting value: line 1 column 10 "
         "(char 9).", {}),
        ("[" * 5000 + "]" * 5000, "The request body is nested deeper than 32 levels.", {}),
        ('{"a":' * 40 + "1" + "}" * 40, "The request body is nested deeper than 32 levels.", {}),
        ('{"capital": ' + "1" * 4301 + "}",
         "Numbers in the request body are limited to 100 digits.", {}),
        ('{"capital": 1.' + "5" * 200 + "}",
         "Numbers in the request body are limited to 100 digits.", {}),
        ('{"capital": NaN}', "NaN is not a JSON value.", {}),
        ('{"capital": -Infinity}', "-Infinity is not a JSON value.", {}),
        ('{"name": "\\ud800", "symbol": "AAPL", "capital": "1"}', "Invalid request body",
         {"name": ["Text must be valid Unicode; a lone surrogate escape such as \\ud800 is "
                   "not."]}),
        ('{"strategy": {"indicators": {"rsi\\udfff": {}}}}', "Invalid request body",
         {"strategy.indicators": ["Text must be valid Unicode; a lone surrogate escape such as "
                                  "\\ud800 is not."]}),
        ('{"name": "Nul\\u0000"}', "Invalid request body",
         {"name": ["Text must not contain NUL characters."]}),
        (b'{"name": "\xff"}', "The request body must be JSON encoded as UTF-8.", {}),
    ],
)  # fmt: skip
def test_bad_json_is_400_never_500(user_client, body, error, fields):
    response = post_raw(user_client, body)

    assert response.status_code == 400
    assert response.json() == {"error": error, "fields": fields}
    assert not Bot.objects.exists()


def test_a_missing_body_is_400(user_client, books):
    response = user_client.put(f"/api/bots/{books['bot_id']}")

    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid request body: A JSON body is required.",
        "fields": {},
    }


def test_numbers_are_read_exactly(user_client, buying_power):
    buying_power("10000")

    response = post_raw(user_client, json.dumps({**NEW_BOT, "capital": 1234.56}))

    assert response.status_code == 201
    assert response.json()["capital"] == "1234.56"
    assert Bot.objects.get().capital == Decimal("1234.56")


def test_a_body_over_the_limit_is_413_json(user_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({**NEW_BOT, "name": "x" * 2000})

    response = post_raw(user_client, body)

    assert response.status_code == 413
    assert response.json() == {
        "error": "Request body too large: at most 1,000 bytes.",
        "fields": {},
    }
    assert not Bot.objects.exists()


def test_a_form_post_over_the_limit_is_413_for_the_api_and_the_pages(user_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    form = {"name": "x" * 2000}

    api_response = user_client.post("/api/bots", form)  # form-encoded, read by the CSRF check
    page_response = user_client.post("/bots/new/", form)

    assert api_response.status_code == 413
    assert api_response.json()["error"] == "Request body too large: at most 1,000 bytes."
    assert page_response.status_code == 413
    assert not Bot.objects.exists()


def test_the_upload_limit_is_set():
    from django.conf import settings

    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 256 * 1024


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("0E-9", "0"), ("-0", "0"), ("0.000000000", "0"), ("1.1200000000000", "1.12"),
     ("2.5E+3", "2500"), ("2500.00", "2500"), ("-12.50", "-12.5"), ("0.000000001", "0.000000001"),
     ("123456789012.3456", "123456789012.3456")],
)  # fmt: skip
def test_plain_decimal(value, text):
    assert plain_decimal(Decimal(value)) == text


def test_money_in_responses_is_plain_decimal_strings(user_client):
    trade = TradeFactory(qty=Decimal("2.500000000"), price=Decimal("150.1200"))
    Trade.objects.filter(pk=trade.pk).update(filled_qty=Decimal("0E-9"))

    body = user_client.get(f"/api/trades/{trade.pk}").json()

    assert (body["qty"], body["price"], body["filled_qty"]) == ("2.5", "150.12", "0")
    assert body["fills"] == {"filled_qty": "0", "average_price": "150.12"}


# --- the schema and its docs -------------------------------------------------------------------


def test_the_schema_and_docs_need_a_login(client):
    schema = client.get("/api/openapi.json")
    docs = client.get("/api/docs")

    assert schema.status_code == 401
    assert schema.json() == {"error": "Authentication required", "fields": {}}
    assert docs.status_code == 302
    assert docs["Location"] == "/login/?next=/api/docs"


def test_the_schema_documents_every_endpoint(viewer_client):
    schema = viewer_client.get("/api/openapi.json").json()

    assert schema["info"]["title"] == "TradeBots API"
    assert {"/api/trades", "/api/trades/{trade_id}", "/api/reconciliation/runs",
            "/api/reconciliation/runs/{run_id}", "/api/positions/closed",
            "/api/bots/{bot_id}/status-changes"} <= set(schema["paths"])  # fmt: skip
    body = schema["paths"]["/api/bots"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/BotSettings"
    strategy = schema["components"]["schemas"]["BotSettings"]["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/StrategyConfig"}]
    assert set(schema["components"]["securitySchemes"]) == {"BearerToken", "SessionCookie"}


def test_the_docs_page_uses_the_vendored_swagger_ui(viewer_client):
    html = viewer_client.get("/api/docs").content.decode()
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)

    assert "/static/ninja/swagger-ui-bundle.js" in scripts
    assert all(source.startswith("/static/") for source in scripts)
    for source in scripts:
        assert viewer_client.get(source).status_code == 200, source


NO_UTC_EQUIVALENT = "Must fall between the years 1 and 9999 in UTC."


@pytest.mark.parametrize(
    ("path", "since", "message"),
    [
        ("/api/trades", "9999-12-31T23:59:59-05:00", NO_UTC_EQUIVALENT),
        ("/api/trades", "0001-01-01T00:00:00+05:00", NO_UTC_EQUIVALENT),
        ("/api/account/reconcile", "9999-12-31T23:59:59-05:00", "Must be in the past."),
        ("/api/account/reconcile", "0001-01-01T00:00:00+05:00",
         "Must be on or after 1970-01-01: no broker order is older."),
    ],
)  # fmt: skip
def test_a_time_out_of_range_is_400(user_client, path, since, message):
    response = user_client.get(path, {"since": since})

    assert response.status_code == 400
    assert response.json() == {"error": "Invalid parameters", "fields": {"since": [message]}}
