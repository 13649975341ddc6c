"""The bots admin goes through the services: exposed bots keep their symbol and timeframe and
cannot be deleted, one at a time or in bulk, and the admin never claims otherwise."""

import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.urls import reverse

from bots.models import Bot
from bots.schema import StrategyConfig
from bots.tests.factories import BotFactory
from trading.models import Trade
from trading.tests.factories import PositionFactory, TradeFactory

pytestmark = pytest.mark.django_db


def change_form(bot: Bot, **changes) -> dict:
    """What the admin change form posts for ``bot`` with ``changes``."""
    data = {
        "name": bot.name,
        "symbol": bot.symbol,
        "timeframe": bot.timeframe,
        "strategy": json.dumps(bot.strategy),
        "stop_loss_pct": "",
        "take_profit_pct": "",
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
        "status_changes-MIN_NUM_FORMS": "0",
        "status_changes-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    return {**data, **changes}


def expose(bot: Bot, exposure: str) -> str:
    if exposure == "position":
        PositionFactory(bot=bot)
        return "holds 10 AAPL"
    TradeFactory(bot=bot, status=Trade.Status.ACCEPTED)
    return "has an open buy order for 10 AAPL (accepted)"


@pytest.mark.parametrize("exposure", ["position", "order"])
@pytest.mark.parametrize("field", ["symbol", "timeframe"])
def test_an_exposed_bots_symbol_and_timeframe_are_refused(admin_client, exposure, field):
    bot = BotFactory(name="Apple")
    held = expose(bot, exposure)
    url = reverse("admin:bots_bot_change", args=[bot.pk])
    change = {"symbol": "MSFT"} if field == "symbol" else {"timeframe": "1Hour"}

    response = admin_client.post(url, change_form(bot, name="Renamed", **change))

    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert errors == {field: [f"'Apple' {held}; its {field} cannot change until it is flat."]}
    bot.refresh_from_db()
    assert (bot.name, bot.symbol, bot.timeframe) == ("Apple", "AAPL", "5Min")


def test_a_flat_bot_changes_symbol_and_timeframe_in_the_admin(admin_client):
    bot = BotFactory()
    PositionFactory(bot=bot, closed=True)
    url = reverse("admin:bots_bot_change", args=[bot.pk])

    response = admin_client.post(url, change_form(bot, symbol="MSFT", timeframe="1Hour"))

    assert response.status_code == 302
    bot.refresh_from_db()
    assert (bot.symbol, bot.timeframe) == ("MSFT", "1Hour")


def test_an_exposed_bot_may_be_renamed_in_the_admin(admin_client):
    bot = BotFactory()
    PositionFactory(bot=bot)

    response = admin_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]), change_form(bot, name="Renamed")
    )

    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.name == "Renamed"


def test_an_unknown_symbol_is_refused_in_the_admin(admin_client):
    bot = BotFactory()

    response = admin_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]), change_form(bot, symbol="ZZZZ")
    )

    assert response.context["adminform"].form.errors == {"symbol": ["Unknown symbol ZZZZ."]}


def test_a_change_refused_at_the_last_moment_says_so(admin_client, monkeypatch):
    """The bot buys between the form's check and the save: the service refuses under the lock."""
    from bots import services

    bot = BotFactory(name="Racer")
    checked = services.validate_bot_fields

    def fill_arrives_after_the_form_checked(data, bot=None):
        errors = checked(data, bot=bot)
        PositionFactory(bot=bot)
        return errors

    monkeypatch.setattr(services, "validate_bot_fields", fill_arrives_after_the_form_checked)
    url = reverse("admin:bots_bot_change", args=[bot.pk])

    response = admin_client.post(url, change_form(bot, symbol="MSFT"), follow=True)

    html = response.content.decode()
    assert response.redirect_chain == [(url, 302)]
    assert "&#x27;Racer&#x27; holds 10 AAPL; its symbol cannot change until it is flat." in html
    assert "was changed successfully" not in html
    bot.refresh_from_db()
    assert bot.symbol == "AAPL"
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("exposure", ["position", "order"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_single_delete_of_an_exposed_bot_is_refused(admin_client, exposure, method):
    bot = BotFactory(name="Apple")
    held = expose(bot, exposure)
    url = reverse("admin:bots_bot_delete", args=[bot.pk])

    response = getattr(admin_client, method)(url, {"post": "yes"}, follow=True)

    html = response.content.decode()
    assert response.redirect_chain == [(reverse("admin:bots_bot_change", args=[bot.pk]), 302)]
    assert f"&#x27;Apple&#x27; {held}; it cannot be deleted until it is flat" in html
    assert "deleted successfully" not in html
    assert Bot.objects.filter(pk=bot.pk).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_single_delete_of_a_flat_bot(admin_client):
    bot = BotFactory(name="Flat")
    url = reverse("admin:bots_bot_delete", args=[bot.pk])

    confirm = admin_client.get(url)
    response = admin_client.post(url, {"post": "yes"}, follow=True)

    assert "Are you sure" in confirm.content.decode()
    assert "deleted successfully" in response.content.decode()
    assert not Bot.objects.exists()
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 1


def test_a_delete_refused_at_the_last_moment_says_so(admin_client, monkeypatch):
    """The order path records an intent between the confirmation and the delete."""
    from bots import services

    bot = BotFactory(name="Racer")
    url = reverse("admin:bots_bot_delete", args=[bot.pk])
    checked = services.deletion_refusal

    def order_arrives_after_the_page_checked(candidate):
        refusal = checked(candidate)
        TradeFactory(bot=candidate, status=Trade.Status.PENDING, order_id=None)
        monkeypatch.setattr(services, "deletion_refusal", checked)
        return refusal

    monkeypatch.setattr(services, "deletion_refusal", order_arrives_after_the_page_checked)

    response = admin_client.post(url, {"post": "yes"}, follow=True)

    html = response.content.decode()
    assert "has an open buy order for 10 AAPL (pending)" in html
    assert "deleted successfully" not in html
    assert Bot.objects.filter(pk=bot.pk).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def bulk_delete(client, bots, confirmed: bool):
    data = {"action": "delete_selected_bots", "_selected_action": [str(b.pk) for b in bots]}
    if confirmed:
        data["post"] = "yes"
    return client.post(reverse("admin:bots_bot_changelist"), data, follow=True)


@pytest.mark.parametrize("confirmed", [False, True])
def test_bulk_delete_with_an_exposed_bot_deletes_nothing(admin_client, confirmed):
    flat = BotFactory(name="Flat")
    busy = BotFactory(name="Busy")
    TradeFactory(bot=busy, status=Trade.Status.PARTIALLY_FILLED, filled_qty=Decimal("4"))

    response = bulk_delete(admin_client, [flat, busy], confirmed)

    html = response.content.decode()
    assert (
        "&#x27;Busy&#x27; has an open buy order for 6 AAPL (partially filled); it cannot be "
        "deleted until it is flat" in html
    )
    assert "Nothing was deleted." in html
    assert "Successfully deleted" not in html and "Deleted " not in html
    assert Bot.objects.count() == 2


def test_bulk_delete_of_flat_bots_confirms_then_deletes(admin_client):
    bots = BotFactory.create_batch(2)
    PositionFactory(bot=bots[0], closed=True)

    confirm = bulk_delete(admin_client, bots, confirmed=False)
    done = bulk_delete(admin_client, bots, confirmed=True)

    assert "Are you sure" in confirm.content.decode()
    assert Bot.objects.count() == 0
    assert "Deleted 2 bot(s)." in done.content.decode()
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 2


def test_django_bulk_delete_is_replaced(admin_client):
    response = admin_client.get(reverse("admin:bots_bot_changelist"))

    actions = dict(response.context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions
    assert actions["delete_selected_bots"] == "Delete selected bots"


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ({"indicators": {"rsi": {"enabled": True, "period": 0}}, "buy_rule": "rsi"},
         "RSI period must be at least 2."),
        ({"indicators": {"rsi": {"enabled": True, "period": "0"}}, "buy_rule": "rsi"},
         "RSI period must be at least 2."),
        ({"indicators": "x"}, "Indicators must be an object."),
        ({"indicators": {"rsi": {"enabled": True}}, "stop_loss": 5},
         "Unknown field 'stop_loss' in Strategy; use one of indicators, buy_rule, sell_rule."),
        ([1], "Strategy must be an object."),
        (5, "Strategy must be an object."),
    ],
)  # fmt: skip
def test_a_bad_strategy_is_an_error_on_the_strategy_field_and_nothing_is_saved(
    admin_client, user_client, strategy, message
):
    bot = BotFactory()
    stored = bot.strategy
    url = reverse("admin:bots_bot_change", args=[bot.pk])

    response = admin_client.post(url, change_form(bot, strategy=json.dumps(strategy)))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"strategy": [message]}
    bot.refresh_from_db()
    assert bot.strategy == stored
    assert user_client.get(reverse("bots:detail", args=[bot.pk])).status_code == 200


def test_a_zero_stop_loss_is_an_error_in_the_admin(admin_client):
    bot = BotFactory()
    url = reverse("admin:bots_bot_change", args=[bot.pk])

    response = admin_client.post(url, change_form(bot, stop_loss_pct="0"))

    errors = response.context["adminform"].form.errors
    assert errors == {"stop_loss_pct": ["Stop-loss must be greater than 0."]}
    bot.refresh_from_db()
    assert bot.stop_loss_pct is None


def test_the_admin_stores_the_strategy_as_the_schema_dumps_it(admin_client):
    bot = BotFactory()
    given = {"indicators": {"ema_cross": {"enabled": True, "fast": "5"}}, "buy_rule": "ema_cross"}
    url = reverse("admin:bots_bot_change", args=[bot.pk])

    response = admin_client.post(url, change_form(bot, strategy=json.dumps(given)))

    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.strategy == StrategyConfig.model_validate(given).model_dump(mode="json")
    assert bot.strategy["indicators"]["ema_cross"] == {"enabled": True, "fast": 5, "slow": 26}
