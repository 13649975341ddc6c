"""The bots page form, the admin and the JSON API refuse the same bad strategy with the same
messages: all three validate through the one schema."""

import json

import pytest
from django.urls import reverse

from bots.forms import WIDGET_PATHS
from bots.models import Bot
from bots.tests.factories import BotFactory
from bots.tests.test_admin import change_form

pytestmark = pytest.mark.django_db

BOT = {"name": "Checked", "symbol": "AAPL", "capital": "1000", "timeframe": "5Min"}

BAD_STRATEGIES = {
    "zero period": {"indicators": {"rsi": {"enabled": True, "period": 0}}, "buy_rule": "rsi"},
    "zero period as text": {
        "indicators": {"rsi": {"enabled": True, "period": "0"}},
        "buy_rule": "rsi",
    },
    "fast not below slow": {
        "indicators": {"sma_cross": {"enabled": True, "fast": 30, "slow": 30}},
        "buy_rule": "sma_cross",
    },
    "levels crossed, one omitted": {"indicators": {"rsi": {"enabled": True, "oversold": 75}}},
    "rule on a disabled indicator": {
        "indicators": {"rsi": {"enabled": True}},
        "buy_rule": "macd",
        "sell_rule": "bollinger",
    },
    "nothing enabled": {"indicators": {"rsi": {"enabled": False}}},
    "deviations too wide": {"indicators": {"bollinger": {"enabled": True, "std": "11"}}},
    "disabled but zero": {
        "indicators": {"rsi": {"enabled": True}, "stochastic": {"enabled": False, "k": 0}}
    },
}
# What the page form cannot express: the API and the admin must still agree.
NOT_FORM_SHAPED = {
    "indicators not an object": {"indicators": "x"},
    "unknown indicator": {"indicators": {"rsi": {"enabled": True}, "vwap": {}}},
    "unknown key": {"indicators": {"rsi": {"enabled": True}}, "stop_loss": 5},
    "not a boolean": {"indicators": {"rsi": {"enabled": "maybe"}}},
    "huge integer": {"indicators": {"rsi": {"enabled": True, "period": 10**30}}},
}


def form_post(strategy: dict) -> dict:
    """What the bots page posts for BOT with this strategy: one widget per strategy setting."""
    data = dict(BOT)
    for widget, path in WIDGET_PATHS.items():
        node = {"strategy": strategy}
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is True:
            data[widget] = "on"
        elif node is not None and node is not False:  # 0 == False, and 0 is a value
            data[widget] = str(node)
    return data


def page_messages(client, strategy: dict) -> list[str]:
    response = client.post(reverse("bots:create"), form_post(strategy))
    assert response.status_code == 200
    errors = response.context["form"].errors
    return sorted(message for messages in errors.values() for message in messages)


def admin_messages(client, bot: Bot, strategy: dict) -> list[str]:
    url = reverse("admin:bots_bot_change", args=[bot.pk])
    response = client.post(url, change_form(bot, strategy=json.dumps(strategy)))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"strategy"}
    return sorted(errors["strategy"])


def api_messages(client, strategy: dict) -> list[str]:
    body = json.dumps({**BOT, "strategy": strategy})
    response = client.post("/api/bots", body, content_type="application/json")
    assert response.status_code == 400
    return sorted(response.json()["fields"].values())


@pytest.mark.parametrize("strategy", BAD_STRATEGIES.values(), ids=BAD_STRATEGIES)
def test_page_admin_and_api_give_the_same_messages(
    user_client, admin_client, buying_power, strategy
):
    buying_power("10000")
    bot = BotFactory()

    page = page_messages(user_client, strategy)
    admin = admin_messages(admin_client, bot, strategy)
    api = api_messages(user_client, strategy)

    assert page == admin == api
    assert page  # refused, with at least one message
    assert Bot.objects.count() == 1


@pytest.mark.parametrize("strategy", NOT_FORM_SHAPED.values(), ids=NOT_FORM_SHAPED)
def test_admin_and_api_give_the_same_messages(user_client, admin_client, buying_power, strategy):
    buying_power("10000")
    bot = BotFactory()

    admin = admin_messages(admin_client, bot, strategy)
    api = api_messages(user_client, strategy)

    assert admin == api
    assert admin
    assert Bot.objects.count() == 1
