"""The bot pages: list, form with inline validation, detail, lifecycle buttons, delete."""

import re
from decimal import Decimal
from uuid import UUID

import pytest
from django.urls import reverse

from bots.models import Bot, BotStatusChange
from bots.schema import StrategyConfig
from bots.tests.conftest import bot_form_data
from bots.tests.factories import BotFactory
from tradebots.tests.live_pages import declarations
from trading.models import Trade
from trading.tests.factories import PositionFactory, TradeFactory

pytestmark = pytest.mark.django_db


def test_list_shows_one_card_per_bot_with_its_buttons(user_client, buying_power):
    buying_power("5000")
    running = BotFactory(name="Runner", status=Bot.Status.RUNNING, capital=Decimal("1200"))
    BotFactory(name="Idle", status=Bot.Status.STOPPED)

    html = user_client.get(reverse("bots:list")).content.decode()

    assert f'id="bot-{running.pk}"' in html
    assert "Runner" in html and "Idle" in html
    assert "$1,200.00" in html
    assert reverse("bots:pause", args=[running.pk]) in html
    assert "Available" in html and "$2,800.00" in html


def test_list_query_count_does_not_grow_with_the_number_of_bots(
    user_client, buying_power, django_assert_max_num_queries
):
    buying_power("100000")
    BotFactory.create_batch(2)
    with django_assert_max_num_queries(20) as few:
        user_client.get(reverse("bots:list"))
    BotFactory.create_batch(30)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = user_client.get(reverse("bots:list"))

    assert response.content.decode().count('class="card bot-card') == 32


def _card_ids(html: str) -> list[str]:
    return re.findall(r'<article id="bot-([0-9a-f-]{36})"', html)


def test_the_list_shows_fifty_cards_a_page_by_name(
    user_client, buying_power, django_assert_max_num_queries
):
    buying_power("1000000")
    names = [f"Bot {n:03}" for n in range(53)]
    by_name = {BotFactory(name=name).pk: name for name in reversed(names)}
    with django_assert_max_num_queries(20) as first_queries:
        first = user_client.get(reverse("bots:list")).content.decode()
    link = re.search(
        r'<a href="(/bots/\?cursor=[^"]+)" hx-get="[^"]+" hx-target="#bots-page"', first
    )

    with django_assert_max_num_queries(len(first_queries.captured_queries)):
        second = user_client.get(
            link[1], headers={"HX-Request": "true", "HX-Target": "bots-page"}
        ).content.decode()

    assert [by_name[UUID(pk)] for pk in _card_ids(first)] == names[:50]
    assert [by_name[UUID(pk)] for pk in _card_ids(second)] == names[50:]
    assert "<html" not in second and 'rel="first">← First</a>' in second
    # Each page's socket watches only the cards it shows.
    assert declarations(first)["bots"]["rows"] == _card_ids(first)
    assert declarations(second)["bots"]["rows"] == _card_ids(second)


def test_a_bots_page_link_not_handed_out_shows_the_first_page(user_client, buying_power):
    buying_power("100000")
    bot = BotFactory()

    html = user_client.get(reverse("bots:list"), {"cursor": "not-a-cursor"}).content.decode()

    assert _card_ids(html) == [str(bot.pk)]


def test_new_bot_form_shows_available_capital_before_typing(user_client, buying_power):
    buying_power("5000")
    BotFactory(capital=Decimal("1500"))

    html = user_client.get(reverse("bots:create")).content.decode()

    assert "Available: $3,500.00" in html
    assert 'hx-post="/bots/validate/"' in html


def test_creating_a_bot_redirects_to_it(user_client, buying_power):
    buying_power("5000")

    response = user_client.post(reverse("bots:create"), bot_form_data())

    bot = Bot.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("bots:detail", args=[bot.pk])
    assert (bot.name, bot.symbol, bot.capital) == ("Apple RSI", "AAPL", Decimal("1000"))
    assert bot.strategy["indicators"]["rsi"]["enabled"] is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("capital", "-5", "Capital must be greater than 0."),
        ("capital", "0", "Capital must be greater than 0."),
        ("capital", "lots", "Capital must be a number."),
        ("capital", "1e30", "Capital must have at most 14 digits."),
        ("capital", "9000", "Capital $9,000.00 exceeds the available $5,000.00"),
        ("symbol", "ZZZZ", "Unknown symbol ZZZZ."),
        ("symbol", "not a symbol", "Symbol must be a ticker symbol such as AAPL or BRK.B."),
        ("name", "", "Name is required."),
        ("name", "   ", "Name is required."),
        ("rsi_period", "1", "RSI period must be at least 2."),
        ("rsi_period", "0", "RSI period must be at least 2."),
        ("rsi_period", "14.5", "RSI period must be a whole number."),
        ("stop_loss_pct", "0", "Stop-loss must be greater than 0."),
        ("take_profit_pct", "0.001", "Take-profit must have at most 2 decimal places."),
        ("timeframe", "2Min", "Timeframe must be one of"),
    ],
)
def test_bad_input_gets_an_inline_error_and_creates_nothing(
    user_client, buying_power, field, value, message
):
    buying_power("5000")

    response = user_client.post(reverse("bots:create"), bot_form_data(**{field: value}))

    assert response.status_code == 200
    html = response.content.decode()
    error_line = html.split(f'id="error-{field}"')[1].split("</div>")[0]
    assert message in error_line
    assert not Bot.objects.exists()


def test_slow_period_not_above_fast_is_an_inline_error(user_client, buying_power):
    buying_power("5000")
    data = bot_form_data(sma_cross_enabled="on", sma_cross_fast="30", sma_cross_slow="30")

    html = user_client.post(reverse("bots:create"), data).content.decode()

    error_line = html.split('id="error-sma_cross_slow"')[1].split("</div>")[0]
    assert (
        "SMA crossover slow period must be longer than the fast period (fast 30, slow 30)."
        in error_line
    )
    assert not Bot.objects.exists()


def test_no_indicator_enabled_is_a_form_error(user_client, buying_power):
    buying_power("5000")
    data = bot_form_data(rsi_enabled=None, buy_rule="majority", sell_rule="majority")

    response = user_client.post(reverse("bots:create"), data)

    assert response.context["form"].non_field_errors() == [
        "Strategy must enable at least one indicator."
    ]
    assert 'class="form-error"' in response.content.decode()
    assert not Bot.objects.exists()


def test_the_form_stores_what_the_schema_dumps(user_client, buying_power):
    buying_power("5000")
    data = bot_form_data(
        name="  Spaced  ", symbol=" msft ", capital="1234.50", stop_loss_pct="2.5",
        rsi_period="9", bollinger_enabled="on", bollinger_std="2.25", buy_rule="majority",
    )  # fmt: skip

    response = user_client.post(reverse("bots:create"), data)

    assert response.status_code == 302
    bot = Bot.objects.get()
    assert (bot.name, bot.symbol, bot.capital) == ("Spaced", "MSFT", Decimal("1234.50"))
    assert (bot.stop_loss_pct, bot.take_profit_pct) == (Decimal("2.5"), None)
    assert bot.strategy == StrategyConfig.model_validate(bot.strategy).model_dump(mode="json")
    assert bot.strategy["indicators"]["rsi"] == {
        "enabled": True, "period": 9, "oversold": 30, "overbought": 70,
    }  # fmt: skip
    assert bot.strategy["indicators"]["bollinger"] == {"enabled": True, "window": 20, "std": "2.25"}
    assert (bot.strategy["buy_rule"], bot.strategy["sell_rule"]) == ("majority", "rsi")


def test_the_edit_form_shows_the_stored_settings(user_client, buying_power):
    buying_power("5000")
    strategy = {"indicators": {"macd": {"enabled": True, "fast": 5}}, "buy_rule": "macd"}
    bot = BotFactory(strategy=strategy, stop_loss_pct=Decimal("3.50"))

    form = user_client.get(reverse("bots:edit", args=[bot.pk])).context["form"]

    assert form["macd_enabled"].value() is True
    assert (form["macd_fast"].value(), form["macd_slow"].value()) == (5, 26)
    assert form["rsi_enabled"].value() is False
    assert (form["buy_rule"].value(), form["sell_rule"].value()) == ("macd", "majority")
    assert form["stop_loss_pct"].value() == Decimal("3.50")


def test_a_bot_with_an_invalid_stored_strategy_shows_what_to_fix(user_client, buying_power):
    """Stored through the admin before the schema checked it: the page says so, never a 500."""
    buying_power("5000")
    broken = {"indicators": {"rsi": {"enabled": True, "period": 0}}, "buy_rule": "rsi"}
    bot = BotFactory(strategy=broken)

    detail = user_client.get(reverse("bots:detail", args=[bot.pk]))
    edit = user_client.get(reverse("bots:edit", args=[bot.pk]))

    assert detail.status_code == 200
    html = detail.content.decode()
    assert "RSI period must be at least 2." in html.split('data-testid="strategy-problems"')[1]
    assert "No chart: the strategy is invalid." in html
    assert edit.context["form"]["rsi_period"].value() == 0


def test_a_field_is_validated_as_the_user_leaves_it(user_client, buying_power):
    buying_power("5000")
    url = reverse("bots:validate")

    over = user_client.post(url, bot_form_data(capital="6000", _field="capital"))
    fine = user_client.post(url, bot_form_data(capital="100", _field="capital"))
    symbol = user_client.post(url, bot_form_data(symbol="zzzz", _field="symbol"))

    assert '<div id="error-capital"' in over.content.decode()
    assert "exceeds the available $5,000.00" in over.content.decode()
    assert (
        '<div id="error-capital" class="field-error" role="alert"></div>' in fine.content.decode()
    )
    assert "Unknown symbol ZZZZ." in symbol.content.decode()


def test_editing_checks_capital_without_counting_the_bot_twice(user_client, buying_power):
    buying_power("5000")
    bot = BotFactory(capital=Decimal("4000"))
    url = reverse("bots:validate-existing", args=[bot.pk])

    response = user_client.post(url, bot_form_data(capital="5000", _field="capital"))
    saved = user_client.post(reverse("bots:edit", args=[bot.pk]), bot_form_data(capital="5000"))

    assert 'role="alert"></div>' in response.content.decode()
    assert saved.status_code == 302
    bot.refresh_from_db()
    assert bot.capital == Decimal("5000")


def test_lifecycle_buttons_swap_the_card_in_place(user_client, buying_power):
    buying_power("5000")
    bot = BotFactory()

    response = user_client.post(
        reverse("bots:start", args=[bot.pk]), headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert html.startswith(f'<article id="bot-{bot.pk}"')
    assert 'data-testid="bot-status">Running<' in html
    assert "is running" in html  # the toast
    bot.refresh_from_db()
    assert bot.status == "running"


def test_a_refused_start_says_why_in_a_toast(user_client, buying_power):
    buying_power("500")
    bot = BotFactory(capital=Decimal("1000"))

    response = user_client.post(
        reverse("bots:start", args=[bot.pk]), headers={"HX-Request": "true"}
    )

    assert "toast-error" in response.content.decode()
    assert "buying power is $500.00" in response.content.decode()
    bot.refresh_from_db()
    assert bot.status == "stopped"


def test_detail_shows_configuration_history_and_chart_data(user_client, buying_power):
    buying_power("5000")
    bot = BotFactory(name="Charted")
    user_client.post(reverse("bots:start", args=[bot.pk]))

    html = user_client.get(reverse("bots:detail", args=[bot.pk])).content.decode()

    assert "Charted" in html
    assert "Stopped → Running" in html
    assert 'id="bot-chart-data"' in html and '"bars": [{"time"' in html
    assert "lightweight-charts-5.2.1.standalone.production.js" in html


def test_delete_asks_then_deletes(user_client):
    bot = BotFactory(name="Doomed")

    confirm = user_client.get(reverse("bots:delete", args=[bot.pk]))
    response = user_client.post(reverse("bots:delete", args=[bot.pk]))

    assert "Delete Doomed?" in confirm.content.decode()
    assert response["Location"] == reverse("bots:list")
    assert not Bot.objects.exists()


def test_delete_of_a_running_bot_is_refused(user_client):
    bot = BotFactory(status=Bot.Status.RUNNING)

    response = user_client.post(reverse("bots:delete", args=[bot.pk]), follow=True)

    assert "before deleting it" in response.content.decode()
    assert Bot.objects.exists()


def test_the_capital_field_explains_available(user_client, buying_power):
    buying_power("5000")

    html = user_client.get(reverse("bots:create")).content.decode()

    assert (
        "Available = buying power − reserved; a bot reserves its capital minus what it has "
        "already invested." in html
    )


def test_the_list_counts_invested_money_once(user_client, buying_power):
    bot = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=bot, qty=Decimal("6"), avg_entry_price=Decimal("100"))
    buying_power("400")  # the 600 it spent left the buying power

    html = user_client.get(reverse("bots:list")).content.decode()

    assert 'data-testid="deployed">$600.00<' in html
    assert 'data-testid="reserved">$400.00<' in html
    assert 'data-testid="available" class="pos">$0.00<' in html


@pytest.mark.parametrize("field", ["symbol", "timeframe"])
def test_an_exposed_bots_symbol_and_timeframe_are_refused_inline(user_client, buying_power, field):
    buying_power("5000")
    bot = BotFactory(name="Apple")
    TradeFactory(bot=bot, status=Trade.Status.ACCEPTED, qty=Decimal("4"))
    change = {"symbol": "MSFT"} if field == "symbol" else {"timeframe": "1Hour"}

    inline = user_client.post(
        reverse("bots:validate-existing", args=[bot.pk]), bot_form_data(**change, _field=field)
    )
    saved = user_client.post(reverse("bots:edit", args=[bot.pk]), bot_form_data(**change))

    message = (
        f"&#x27;Apple&#x27; has an open buy order for 4 AAPL (accepted); its {field} cannot "
        "change until it is flat."
    )
    assert message in inline.content.decode()
    assert saved.status_code == 200
    assert message in saved.content.decode().split(f'id="error-{field}"')[1].split("</div>")[0]
    bot.refresh_from_db()
    assert (bot.name, bot.symbol, bot.timeframe) == ("Apple", "AAPL", "5Min")


def test_an_exposed_bot_may_lower_its_capital_from_the_form(user_client, buying_power):
    buying_power("5000")
    bot = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=bot)

    response = user_client.post(
        reverse("bots:edit", args=[bot.pk]), bot_form_data(name="Renamed", capital="200")
    )

    assert response.status_code == 302
    bot.refresh_from_db()
    assert (bot.name, bot.capital) == ("Renamed", Decimal("200"))


@pytest.mark.parametrize("exposure", ["position", "order"])
def test_delete_of_an_exposed_bot_is_refused(user_client, exposure):
    bot = BotFactory(name="Held")
    if exposure == "position":
        PositionFactory(bot=bot)
    else:
        TradeFactory(bot=bot, status=Trade.Status.UNKNOWN)

    response = user_client.post(reverse("bots:delete", args=[bot.pk]), follow=True)

    html = response.content.decode()
    assert "it cannot be deleted until it is flat" in html
    assert "deleted." not in html
    assert Bot.objects.filter(pk=bot.pk).exists()


@pytest.mark.django_db
def test_a_card_says_new_trades_win_rate_last_decision_and_next_evaluation(user_client, settings):
    from datetime import UTC, datetime

    settings.ENGINE_TICK_SECONDS = 60
    fresh = BotFactory(name="Fresh")
    busy = BotFactory(
        name="Busy",
        status=Bot.Status.RUNNING,
        last_action="hold",
        last_reason="No signal (RSI 48.20)",
        last_evaluated_at=datetime(2026, 11, 30, 15, 0, 0, tzinfo=UTC),
    )
    for pnl in ("12.50", "-3.00", "4.00"):
        PositionFactory(bot=busy, closed=True, realized_pnl=Decimal(pnl))
    TradeFactory.create_batch(2, bot=busy)
    BotStatusChange.objects.create(bot=busy, from_status="stopped", to_status="running")

    html = user_client.get(reverse("bots:list")).content.decode()

    fresh_card, busy_card = (
        html[html.index(f'id="bot-{bot.pk}"') :].split("</article>")[0] for bot in (fresh, busy)
    )
    assert 'data-testid="bot-status" title="Never started yet">New<' in fresh_card
    assert "Not evaluated yet" in fresh_card and "None: not running" in fresh_card
    assert 'data-testid="trade-count">2<' in busy_card
    assert '67% <span class="muted small">of 3</span>' in busy_card
    assert "Hold</span> · No signal (RSI 48.20)" in busy_card
    assert '<time datetime="2026-11-30T15:01:00+00:00">' in busy_card


@pytest.mark.django_db
def test_a_card_shows_unrealized_pnl_at_the_last_price_read(user_client):
    from django.core.cache import cache

    from trading.positions import remember_prices

    cache.clear()
    holder = BotFactory(name="Holder", symbol="AAPL")
    PositionFactory(bot=holder, symbol="AAPL", qty=Decimal("2"), avg_entry_price=Decimal("100"))
    remember_prices({"AAPL": Decimal("103.50")})

    html = user_client.get(reverse("bots:detail", args=[holder.pk])).content.decode()

    assert 'data-testid="unrealized-pnl" class="pos">$7.00<' in html


@pytest.mark.django_db
def test_a_running_bots_delete_is_disabled_with_the_reason(user_client):
    running = BotFactory(name="Busy", status=Bot.Status.RUNNING)
    idle = BotFactory(name="Idle")

    busy_page = user_client.get(reverse("bots:detail", args=[running.pk])).content.decode()
    idle_page = user_client.get(reverse("bots:detail", args=[idle.pk])).content.decode()

    assert reverse("bots:delete", args=[running.pk]) not in busy_page
    assert 'data-testid="deletion-refusal">Stop &#x27;Busy&#x27; before deleting it.<' in busy_page
    assert (
        f'href="{reverse("bots:delete", args=[idle.pk])}" class="danger-link">Delete<' in idle_page
    )
