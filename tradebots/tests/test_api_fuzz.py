"""The JSON API fuzzed against its own OpenAPI schema by schemathesis, on the real server (daphne,
as `make run` starts it) and authenticated as a trader: whatever it is sent, valid or not, it
never answers 5xx, and every answer has a documented status, content type and body schema.

The schema is the API's own (the live /api/openapi.json serves the same document, checked
below); it is read when the module is collected, as schemathesis parametrizes one test per
operation. (schemathesis.pytest.from_fixture, which would read it from the live server instead,
fails under pytest 9: it reads the removed ``Function._nodeid``.) Path parameters are the ids
of real rows half of the time, so that operations reach their success paths too.
"""

from decimal import Decimal
from uuid import UUID

import pytest
import requests
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tests.factories import UserFactory
from accounts.tokens import create_api_token
from bots.models import Bot
from bots.tests.factories import BotFactory
from reconciliation.models import ReconciliationRun
from tradebots.api import api
from tradebots.broker import OrderSide, get_broker
from trading.tests.factories import PositionFactory, TradeFactory

# Bounded: the whole fuzz run stays well under a minute on a small machine.
EXAMPLES_PER_OPERATION = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Rows the fuzzed requests may find (far above what the sequences hand out meanwhile).
REAL_IDS = {
    "bot_id": ["5b0c4f51-6f3f-4c67-9d58-8d0e2f9b1c11", "6c1d5062-7040-4d78-8e69-9e1f3a0c2d22"],
    "trade_id": [900_000_001],
    "position_id": [900_000_001, 900_000_002],
    "run_id": [900_000_001],
    "symbol": ["KO", "AAPL"],
}

schema = schemathesis.openapi.from_dict(
    api.get_openapi_schema(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION},
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "dictionaries": {name: {"values": values} for name, values in REAL_IDS.items()},
            "parameters": {
                f"path.{name}": {"dictionary": name, "probability": 0.5} for name in REAL_IDS
            },
            "request-timeout": 10,
        }
    ),
)


@pytest.fixture
def books(daphne_url, transactional_db):
    """Rows for the live server to find (committed, so daphne sees them) and a trader."""
    apple, _ = (
        BotFactory(id=UUID(REAL_IDS["bot_id"][0]), name="Holder", status=Bot.Status.RUNNING),
        BotFactory(id=UUID(REAL_IDS["bot_id"][1]), name="Idle", symbol="MSFT"),
    )
    position = PositionFactory(id=REAL_IDS["position_id"][0], bot=apple, qty=Decimal("3"))
    PositionFactory(id=REAL_IDS["position_id"][1], bot=None, closed=True)
    TradeFactory(id=REAL_IDS["trade_id"][0], bot=apple, position=position)
    get_broker().submit_market_order("AAPL", Decimal("3"), OrderSide.BUY, "backing-the-position")
    get_broker().submit_market_order("KO", Decimal("2"), OrderSide.BUY, "placed-by-hand")
    started = position.opened_at
    ReconciliationRun.objects.create(
        id=REAL_IDS["run_id"][0], started_at=started, finished_at=started, trigger="manual",
        outcome="discrepancies", discrepancy_count=1, discrepancies=[{
            "kind": "missing_in_db", "label": "Missing in our books",
            "bot": {"id": None, "name": None, "prefix": "5b0c4f51"}, "symbol": "AAPL",
            "side": "buy", "ours": None, "broker": "filled, buy 1/1 AAPL @ $150.00",
            "detail": "The broker has an order we have no Trade for.",
            "submitted_at": started.isoformat(),
        }],
    )  # fmt: skip
    trader = UserFactory(role="trader")
    return {"url": daphne_url, "trader": trader, "token": create_api_token(trader.username)}


@schema.parametrize()
# The rows are shared by one operation's examples on purpose: they are what the server reads.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_the_api_holds_to_its_schema(case, books):
    case.call_and_validate(
        base_url=books["url"],
        headers={"Authorization": f"Bearer {books['token']}"},
        checks=CHECKS,
    )


def test_the_live_server_serves_the_fuzzed_schema(books):
    browser = Client()
    browser.force_login(books["trader"])

    served = requests.get(
        f"{books['url']}/api/openapi.json",
        cookies={"sessionid": browser.cookies["sessionid"].value},
        timeout=10,
    )

    assert served.status_code == 200
    assert served.json() == schema.raw_schema


def test_a_body_over_the_limit_is_413_json_on_the_live_server(books):
    response = requests.post(
        f"{books['url']}/api/bots",
        data=b'{"name": "' + b"x" * (256 * 1024) + b'"}',
        headers={
            "Authorization": f"Bearer {books['token']}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )

    assert response.status_code == 413
    assert response.json() == {
        "error": "Request body too large: at most 262,144 bytes.",
        "fields": {},
    }
