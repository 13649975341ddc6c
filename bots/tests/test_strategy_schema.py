"""The bot schema (bots/schema.py): what it accepts, what it refuses and how it says so."""

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from bots.schema import (
    INDICATOR_NAMES,
    WHOLE,
    BollingerConfig,
    BotSettings,
    EmaCrossConfig,
    IndicatorSet,
    MacdConfig,
    RsiConfig,
    SmaCrossConfig,
    StochasticConfig,
    StrategyConfig,
    Timeframe,
    validation_errors,
)

RSI_PERIOD = "indicators.rsi.period"
BOT = {"name": "Apple RSI", "symbol": "AAPL", "capital": "1000"}


def strategy_errors(data) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        StrategyConfig.model_validate(data)
    return validation_errors(caught.value)


def bot_errors(data) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        BotSettings.model_validate(data)
    return validation_errors(caught.value)


def only(key: str, **params) -> dict:
    """A strategy (as JSON) with one indicator enabled and both rules naming it."""
    return {
        "indicators": {key: {"enabled": True, **params}},
        "buy_rule": key,
        "sell_rule": key,
    }


# --- what is accepted --------------------------------------------------------------------------


def test_the_default_strategy_is_rsi_with_its_usual_settings():
    strategy = StrategyConfig.default()

    assert strategy.enabled_indicators == ("rsi",)
    assert strategy.indicators.rsi == RsiConfig(enabled=True, period=14, oversold=30, overbought=70)
    assert (strategy.buy_rule, strategy.sell_rule) == ("rsi", "rsi")


def test_the_dump_is_the_stored_shape():
    assert StrategyConfig.default().model_dump(mode="json") == {
        "indicators": {
            "rsi": {"enabled": True, "period": 14, "oversold": 30, "overbought": 70},
            "macd": {"enabled": False, "fast": 12, "slow": 26, "signal": 9},
            "bollinger": {"enabled": False, "window": 20, "std": "2"},
            "sma_cross": {"enabled": False, "fast": 10, "slow": 30},
            "ema_cross": {"enabled": False, "fast": 12, "slow": 26},
            "stochastic": {"enabled": False, "k": 14, "d": 3, "oversold": 20, "overbought": 80},
        },
        "buy_rule": "rsi",
        "sell_rule": "rsi",
    }


def test_a_strategy_stored_by_the_previous_code_still_loads():
    # Written by the dataclass version's to_dict(): every indicator, the std as a string.
    stored = {
        "indicators": {
            "rsi": {"enabled": True, "period": 9, "oversold": 25, "overbought": 75},
            "macd": {"enabled": False, "fast": 12, "slow": 26, "signal": 9},
            "bollinger": {"enabled": True, "window": 30, "std": "2.50"},
            "sma_cross": {"enabled": False, "fast": 10, "slow": 30},
            "ema_cross": {"enabled": False, "fast": 12, "slow": 26},
            "stochastic": {"enabled": False, "k": 5, "d": 3, "oversold": 20, "overbought": 80},
        },
        "buy_rule": "bollinger",
        "sell_rule": "majority",
    }

    strategy = StrategyConfig.model_validate(stored)

    assert strategy.indicators.bollinger.std == Decimal("2.5")
    assert strategy.enabled_indicators == ("rsi", "bollinger")
    assert strategy.model_dump(mode="json") == stored


def test_a_json_round_trip_gives_back_the_same_strategy():
    strategy = StrategyConfig(
        indicators=IndicatorSet(
            macd=MacdConfig(enabled=True, fast=5, slow=35, signal=5),
            bollinger=BollingerConfig(enabled=True, std=Decimal("1.75")),
        ),
        buy_rule="macd",
        sell_rule="majority",
    )

    restored = StrategyConfig.model_validate(
        json.loads(json.dumps(strategy.model_dump(mode="json")))
    )

    assert restored == strategy
    assert hash(restored) == hash(strategy)  # the engine evaluates each distinct strategy once


def test_every_indicator_enabled_with_its_defaults_is_valid():
    data = {"indicators": {key: {"enabled": True} for key in INDICATOR_NAMES}}

    strategy = StrategyConfig.model_validate(data)

    assert strategy.enabled_indicators == tuple(INDICATOR_NAMES)
    assert strategy.buy_rule == strategy.sell_rule == "majority"


@pytest.mark.parametrize(
    "data",
    [
        {"indicators": {"macd": {"enabled": True, "fast": 5, "slow": None, "signal": None},
                        "rsi": None},
         "buy_rule": "macd", "sell_rule": None},
        {"indicators": {"macd": {"enabled": True, "fast": 5}}, "buy_rule": "macd"},
    ],
    ids=["null", "omitted"],
)  # fmt: skip
def test_null_or_omitted_takes_the_default(data):
    strategy = StrategyConfig.model_validate(data)

    assert strategy.indicators.macd == MacdConfig(enabled=True, fast=5, slow=26, signal=9)
    assert strategy.indicators.rsi == RsiConfig(enabled=False)
    assert strategy.sell_rule == "majority"


def test_numbers_may_come_as_strings_or_whole_floats():
    strategy = StrategyConfig.model_validate(
        only("stochastic", k="5", d=3.0, oversold=" 15 ", overbought="85")
    )

    assert strategy.indicators.stochastic == StochasticConfig(
        enabled=True, k=5, d=3, oversold=15, overbought=85
    )


@pytest.mark.parametrize(("given", "stored"), [(2.5, "2.5"), ("1e1", "10"), ("0.25", "0.25")])
def test_bollinger_deviations_are_stored_as_plain_decimal_strings(given, stored):
    strategy = StrategyConfig.model_validate(only("bollinger", std=given))

    assert strategy.model_dump(mode="json")["indicators"]["bollinger"]["std"] == stored


def test_bot_settings_normalise_name_and_symbol_and_keep_money_decimal():
    settings = BotSettings.model_validate(
        {**BOT, "name": "  Apple RSI ", "symbol": " brk.b ", "capital": 2500.5,
         "stop_loss_pct": "5", "take_profit_pct": 10, "timeframe": "1Hour"}
    )  # fmt: skip

    assert (settings.name, settings.symbol) == ("Apple RSI", "BRK.B")
    assert settings.capital == Decimal("2500.5")
    assert (settings.stop_loss_pct, settings.take_profit_pct) == (Decimal(5), Decimal(10))
    assert settings.timeframe == Timeframe.HOUR_1
    assert settings.strategy == StrategyConfig.default()


def test_bot_fields_are_the_model_values_with_the_strategy_as_stored_json():
    settings = BotSettings.model_validate({**BOT, "strategy": only("sma_cross", fast=5)})

    fields = settings.bot_fields()

    assert fields == {
        "name": "Apple RSI",
        "symbol": "AAPL",
        "capital": Decimal("1000"),
        "timeframe": "5Min",
        "strategy": settings.strategy.model_dump(mode="json"),
        "stop_loss_pct": None,
        "take_profit_pct": None,
        "allow_fractional": False,
    }
    assert fields["strategy"]["indicators"]["sma_cross"] == {"enabled": True, "fast": 5, "slow": 30}


@pytest.mark.parametrize(
    "data", [BOT, {**BOT, "stop_loss_pct": None, "take_profit_pct": None}], ids=["omitted", "null"]
)
def test_no_stop_loss_or_take_profit_is_null_or_omitted(data):

    settings = BotSettings.model_validate(data)

    assert settings.stop_loss_pct is None and settings.take_profit_pct is None


# --- zero is a value ---------------------------------------------------------------------------


@pytest.mark.parametrize("zero", [0, "0", 0.0])
def test_a_zero_period_is_refused_not_replaced_by_the_default(zero):
    assert strategy_errors(only("rsi", period=zero)) == {
        "indicators.rsi.period": ["RSI period must be at least 2."]
    }


@pytest.mark.parametrize("zero", [0, "0", "0.00"])
@pytest.mark.parametrize(("field", "label"), [("stop_loss_pct", "Stop-loss"),
                                              ("take_profit_pct", "Take-profit")])  # fmt: skip
def test_a_zero_percentage_is_refused_not_taken_as_none(zero, field, label):
    assert bot_errors({**BOT, field: zero}) == {field: [f"{label} must be greater than 0."]}


@pytest.mark.parametrize("zero", [0, "0"])
def test_zero_capital_and_zero_deviations_are_refused(zero):
    assert bot_errors({**BOT, "capital": zero}) == {"capital": ["Capital must be greater than 0."]}
    assert strategy_errors(only("bollinger", std=zero)) == {
        "indicators.bollinger.std": ["Bollinger Bands standard deviations must be greater than 0."]
    }


# --- what is refused, and the message ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (only("rsi", period=501), {RSI_PERIOD: ["RSI period must be at most 500."]}),
        (only("rsi", period=10**100), {RSI_PERIOD: ["RSI period must be at most 500."]}),
        (only("rsi", period=14.5), {RSI_PERIOD: ["RSI period must be a whole number."]}),
        (only("rsi", period=True), {RSI_PERIOD: ["RSI period must be a whole number."]}),
        (only("rsi", period=""), {RSI_PERIOD: ["RSI period must be a whole number."]}),
        (only("rsi", period=[14]), {RSI_PERIOD: ["RSI period must be a whole number."]}),
        (
            only("rsi", period=float("inf")),
            {"indicators.rsi.period": ["RSI period must be a finite number."]},
        ),
        (
            only("stochastic", d="three"),
            {"indicators.stochastic.d": ["Stochastic %D period must be a whole number."]},
        ),
        (
            only("macd", fast=26, slow=12),
            {"indicators.macd.slow": [
                "MACD slow period must be longer than the fast period (fast 26, slow 12)."]},
        ),
        (
            only("sma_cross", fast=30, slow=30),
            {"indicators.sma_cross.slow": [
                "SMA crossover slow period must be longer than the fast period (fast 30, slow 30)."
            ]},
        ),
        (
            # The default slow period (26) is checked against the fast one given.
            only("ema_cross", fast=40),
            {"indicators.ema_cross.slow": [
                "EMA crossover slow period must be longer than the fast period (fast 40, slow 26)."
            ]},
        ),
        (
            only("rsi", oversold=70),
            {"indicators.rsi.overbought": [
                "RSI overbought level must be above the oversold level "
                "(oversold 70, overbought 70)."
            ]},
        ),
        (
            only("stochastic", oversold=0, overbought=100),
            {
                "indicators.stochastic.oversold": [
                    "Stochastic oversold level must be greater than 0."],
                "indicators.stochastic.overbought": [
                    "Stochastic overbought level must be less than 100."],
            },
        ),
        (
            # A period that is itself wrong is not compared with the other one.
            only("sma_cross", fast=600, slow=30),
            {"indicators.sma_cross.fast": ["SMA crossover fast period must be at most 500."]},
        ),
        (
            only("bollinger", std="10.5"),
            {"indicators.bollinger.std": [
                "Bollinger Bands standard deviations must be at most 10."]},
        ),
        (
            only("bollinger", std="2.555"),
            {"indicators.bollinger.std": [
                "Bollinger Bands standard deviations must have at most 2 decimal places."]},
        ),
        (
            only("bollinger", std="NaN"),
            {"indicators.bollinger.std": [
                "Bollinger Bands standard deviations must be a finite number."]},
        ),
        (
            only("bollinger", std="wide"),
            {"indicators.bollinger.std": ["Bollinger Bands standard deviations must be a number."]},
        ),
        (
            only("rsi", enabled="maybe"),
            {"indicators.rsi.enabled": ["RSI enabled must be true or false."]},
        ),
        ({"buy_rule": "majority"}, {WHOLE: ["Strategy must enable at least one indicator."]}),
        (
            {**only("rsi"), "sell_rule": "macd"},
            {"sell_rule": ["Sell rule uses MACD, which is not enabled."]},
        ),
        (
            {**only("rsi"), "buy_rule": "bollinger"},
            {"buy_rule": ["Buy rule uses Bollinger Bands, which is not enabled."]},
        ),
        (
            {**only("rsi"), "buy_rule": "coin_flip"},
            {"buy_rule": ["Buy rule must be one of 'majority', 'rsi', 'macd', 'bollinger', "
                          "'sma_cross', 'ema_cross' or 'stochastic'."]},
        ),
        ({"indicators": "x"}, {"indicators": ["Indicators must be an object."]}),
        ({"indicators": {"rsi": 5}}, {"indicators.rsi": ["RSI must be an object."]}),
        (
            {"indicators": {"rsi": {"enabled": True}, "coin_flip": {"enabled": True}}},
            {"indicators.coin_flip": [
                "Unknown indicator 'coin_flip'; use one of rsi, macd, bollinger, sma_cross, "
                "ema_cross, stochastic."]},
        ),
        (
            only("rsi", peroid=10),
            {"indicators.rsi.peroid": [
                "Unknown field 'peroid' in RSI; use one of enabled, period, oversold, overbought."
            ]},
        ),
        (
            {**only("rsi"), "stop_loss": 5},
            {"stop_loss": [
                "Unknown field 'stop_loss' in Strategy; use one of indicators, buy_rule, "
                "sell_rule."]},
        ),
        ([1, 2], {WHOLE: ["Strategy must be an object."]}),
    ],
)  # fmt: skip
def test_a_bad_strategy_is_refused_with_a_message_naming_the_field(data, errors):
    assert strategy_errors(data) == errors


def test_a_disabled_indicator_is_checked_like_an_enabled_one():
    # Its settings are stored, so they must be valid: zero is never quietly kept for later.
    data = {**only("rsi"), "indicators": {"rsi": {"enabled": True}, "macd": {"fast": 0}}}

    assert strategy_errors(data) == {
        "indicators.macd.fast": ["MACD fast period must be at least 2."]
    }


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"name": "   "}, {"name": ["Name is required."]}),
        ({"name": "x" * 101}, {"name": ["Name must be at most 100 characters long."]}),
        ({"name": "\ud800"}, {"name": ["Name contains characters that cannot be stored."]}),
        ({"name": "Nul\x00"}, {"name": ["Name contains characters that cannot be stored."]}),
        ({"name": 5}, {"name": ["Name must be text."]}),
        ({"symbol": "not a symbol"},
         {"symbol": ["Symbol must be a ticker symbol such as AAPL or BRK.B."]}),
        ({"symbol": "ABCDEFGHIJKLM"},
         {"symbol": ["Symbol must be a ticker symbol such as AAPL or BRK.B."]}),
        ({"capital": "-5"}, {"capital": ["Capital must be greater than 0."]}),
        ({"capital": "lots"}, {"capital": ["Capital must be a number."]}),
        ({"capital": "1e30"}, {"capital": ["Capital must have at most 14 digits."]}),
        ({"capital": 10**400}, {"capital": ["Capital must have at most 14 digits."]}),
        ({"capital": "10.001"}, {"capital": ["Capital must have at most 2 decimal places."]}),
        ({"capital": True}, {"capital": ["Capital must be a number."]}),
        ({"timeframe": "2Min"},
         {"timeframe": ["Timeframe must be one of '1Min', '5Min', '15Min', '1Hour' or '1Day'."]}),
        ({"stop_loss_pct": "100"}, {"stop_loss_pct": ["Stop-loss must be less than 100."]}),
        ({"take_profit_pct": "1000.01"},
         {"take_profit_pct": ["Take-profit must be at most 1000."]}),
        ({"allow_fractional": "sometimes"},
         {"allow_fractional": ["Allow fractional shares must be true or false."]}),
        ({"strategy": 5}, {"strategy": ["Strategy must be an object."]}),
        ({"strategy": {"indicators": "x"}},
         {"strategy.indicators": ["Indicators must be an object."]}),
        ({"strategy": only("rsi", period=0)},
         {"strategy.indicators.rsi.period": ["RSI period must be at least 2."]}),
        ({"status": "running"},
         {"status": ["Unknown field 'status' in Bot; use one of name, symbol, capital, timeframe, "
                     "strategy, stop_loss_pct, take_profit_pct, allow_fractional."]}),
    ],
)  # fmt: skip
def test_bad_bot_settings_are_refused_with_a_message_naming_the_field(changes, errors):
    assert bot_errors({**BOT, **changes}) == errors


def test_required_bot_settings_are_named():
    assert bot_errors({}) == {
        "name": ["Name is required."],
        "symbol": ["Symbol is required."],
        "capital": ["Capital is required."],
    }
    assert bot_errors("a bot") == {WHOLE: ["Bot must be an object."]}


def test_text_that_cannot_be_stored_is_refused_wherever_it_is():
    assert bot_errors({**BOT, "strategy": {**only("rsi"), "sell_rule": "\ud800"}}) == {
        "strategy.sell_rule": ["Sell rule contains characters that cannot be stored."]
    }
    assert bot_errors({**BOT, "strategy": {"\ud800": 1}}) == {
        "strategy": ["Strategy contains characters that cannot be stored."]
    }


def test_an_unknown_key_is_shown_escaped_and_cut_short():
    errors = strategy_errors({**only("rsi"), "\x1b[31m" + "x" * 100: 1})

    (message,) = next(iter(errors.values()))
    assert message.startswith("Unknown field '\\x1b[31mxxx")
    assert len(message) < 150


def test_every_indicator_config_class_is_in_the_set():
    configs = {key: type(IndicatorSet().config(key)) for key in INDICATOR_NAMES}

    assert configs == {
        "rsi": RsiConfig,
        "macd": MacdConfig,
        "bollinger": BollingerConfig,
        "sma_cross": SmaCrossConfig,
        "ema_cross": EmaCrossConfig,
        "stochastic": StochasticConfig,
    }
