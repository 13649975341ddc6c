"""The bot form: flat widgets for a human, validated as one nested BotSettings."""

from decimal import Decimal

import pytest

from bots.forms import WIDGET_PATHS, BotForm
from bots.models import default_strategy
from bots.schema import IndicatorSet, StrategyConfig
from bots.tests.conftest import bot_form_data
from bots.tests.factories import BotFactory


def test_there_is_one_widget_per_setting_of_the_schema():
    indicator_settings = {
        f"strategy.indicators.{key}.{param}"
        for key, indicator in IndicatorSet.model_fields.items()
        for param in indicator.annotation.model_fields
    }

    assert set(WIDGET_PATHS.values()) == indicator_settings | {
        "name", "symbol", "capital", "timeframe", "stop_loss_pct", "take_profit_pct",
        "allow_fractional", "strategy.buy_rule", "strategy.sell_rule",
    }  # fmt: skip
    assert set(BotForm().fields) == set(WIDGET_PATHS)


def test_widgets_are_labelled_as_messages_name_them():
    form = BotForm()

    assert form["rsi_enabled"].label == "RSI"
    assert form["rsi_period"].label == "RSI period"
    assert form["stochastic_k"].label == "Stochastic %K period"
    assert form["bollinger_std"].label == "Bollinger Bands standard deviations"


def test_a_new_bot_starts_from_the_default_strategy():
    initial = BotForm.initial_for()

    assert initial["rsi_enabled"] is True
    assert (initial["rsi_period"], initial["rsi_oversold"], initial["rsi_overbought"]) == (
        14,
        30,
        70,
    )
    assert initial["macd_enabled"] is False and initial["macd_slow"] == 26
    assert initial["bollinger_std"] == "2"
    assert (initial["buy_rule"], initial["sell_rule"]) == ("rsi", "rsi")


def test_the_posted_widgets_become_the_stored_settings():
    form = BotForm(
        bot_form_data(
            macd_enabled="on", macd_fast="5", macd_slow="", bollinger_std="2.5",
            buy_rule="majority", stop_loss_pct="4.5", take_profit_pct="",
        )
    )  # fmt: skip

    assert form.is_valid(), form.errors
    data = form.bot_data()
    assert data["strategy"]["indicators"]["macd"] == {
        "enabled": True, "fast": 5, "slow": 26, "signal": 9,  # blank: the default
    }  # fmt: skip
    # A disabled indicator keeps what was typed into it.
    assert data["strategy"]["indicators"]["bollinger"] == {
        "enabled": False, "window": 20, "std": "2.5",
    }  # fmt: skip
    assert data["strategy"]["buy_rule"] == "majority"
    assert (data["stop_loss_pct"], data["take_profit_pct"]) == (Decimal("4.5"), None)
    assert data["capital"] == Decimal("1000")


@pytest.mark.parametrize("zero", ["0", "0.0", " 0 "])
def test_a_zero_in_a_widget_is_an_error_not_the_default(zero):
    form = BotForm(bot_form_data(rsi_period=zero))

    assert not form.is_valid()
    assert form.errors == {"rsi_period": ["RSI period must be at least 2."]}


def test_an_error_no_widget_shows_is_the_forms_own():
    form = BotForm(bot_form_data(rsi_enabled=None, buy_rule="majority", sell_rule="majority"))

    assert not form.is_valid()
    assert form.errors == {"__all__": ["Strategy must enable at least one indicator."]}


@pytest.mark.django_db
def test_editing_shows_a_strategy_stored_in_the_old_partial_shape_with_its_defaults():
    bot = BotFactory(strategy={"indicators": {"ema_cross": {"enabled": True, "fast": 9}},
                               "buy_rule": "ema_cross"})  # fmt: skip

    initial = BotForm.initial_for(bot)

    assert (initial["ema_cross_enabled"], initial["ema_cross_fast"]) == (True, 9)
    assert initial["ema_cross_slow"] == 26
    assert initial["rsi_enabled"] is False and initial["rsi_period"] == 14
    assert (initial["buy_rule"], initial["sell_rule"]) == ("ema_cross", "majority")


@pytest.mark.django_db
def test_editing_a_bot_round_trips_its_settings():
    strategy = StrategyConfig.model_validate(
        {"indicators": {"stochastic": {"enabled": True, "k": 5, "oversold": 15},
                        "sma_cross": {"enabled": True, "fast": 3, "slow": 8}},
         "buy_rule": "stochastic", "sell_rule": "majority"}
    ).model_dump(mode="json")  # fmt: skip
    bot = BotFactory(strategy=strategy, take_profit_pct=Decimal("12.50"), allow_fractional=True)
    posted = {
        name: ("on" if value is True else str(value))
        for name, value in BotForm.initial_for(bot).items()
        if value is not None and value is not False
    }

    form = BotForm(posted)

    assert form.is_valid(), form.errors
    data = form.bot_data()
    assert data["strategy"] == strategy
    assert (data["take_profit_pct"], data["allow_fractional"]) == (Decimal("12.50"), True)
    assert (data["name"], data["symbol"], data["capital"]) == (bot.name, "AAPL", bot.capital)


@pytest.mark.django_db
def test_editing_a_bot_whose_strategy_the_schema_refuses_shows_it_as_stored():
    stored = {**default_strategy(), "buy_rule": "vwap"}
    stored["indicators"]["rsi"]["period"] = 0
    bot = BotFactory(strategy=stored)

    initial = BotForm.initial_for(bot)

    assert (initial["rsi_period"], initial["buy_rule"]) == (0, "vwap")
