"""Migration 0004: what the code before the schema stored loads under the schema, meaning what
it meant then."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from pydantic import ValidationError

from bots.models import default_strategy
from bots.schema import StrategyConfig
from bots.tests.factories import BotFactory

migration = importlib.import_module("bots.migrations.0004_stored_settings_fit_the_schema")


def old_shape(**indicators) -> dict:
    """A strategy as the previous to_dict() wrote it: every indicator, every parameter."""
    stored = default_strategy()
    for key, params in indicators.items():
        stored["indicators"][key].update(params)
    return stored


def test_what_the_previous_code_wrote_for_a_valid_bot_is_kept_as_it_is():
    stored = old_shape(macd={"enabled": True, "fast": 5}, bollinger={"std": "2.50"})

    assert migration.upgrade_strategy(stored) == stored
    StrategyConfig.model_validate(stored)


def test_unused_invalid_settings_of_disabled_indicators_take_their_defaults():
    # The previous form checked only enabled indicators, so these could be stored.
    stored = old_shape(
        macd={"enabled": False, "fast": 1, "slow": 600},
        sma_cross={"enabled": False, "fast": 40, "slow": 30},
        stochastic={"enabled": False, "oversold": 90},
        bollinger={"enabled": False, "std": "0"},
    )
    with pytest.raises(ValidationError):
        StrategyConfig.model_validate(stored)

    upgraded = migration.upgrade_strategy(stored)

    indicators = StrategyConfig.model_validate(upgraded).indicators
    assert (indicators.macd.fast, indicators.macd.slow) == (12, 26)
    assert (indicators.sma_cross.fast, indicators.sma_cross.slow) == (10, 30)
    assert (indicators.stochastic.oversold, indicators.stochastic.overbought) == (20, 80)
    assert indicators.bollinger.std == Decimal(2)
    assert upgraded["indicators"]["rsi"] == stored["indicators"]["rsi"]


def test_what_was_read_leniently_is_written_as_it_was_read():
    stored = {
        "indicators": {
            "rsi": {"enabled": "yes", "period": None, "oversold": "", "overbought": 75},
            "ema_cross": {"enabled": 0, "fast": 5, "slow": 9, "colour": "red"},
            "vwap": {"enabled": True},
        },
        "buy_rule": "",
        "sell_rule": None,
        "note": "tried in March",
    }

    upgraded = migration.upgrade_strategy(stored)

    assert upgraded == {
        "indicators": {
            "rsi": {"enabled": True, "period": 14, "oversold": 30, "overbought": 75},
            "ema_cross": {"enabled": False, "fast": 5, "slow": 9},
        },
        "buy_rule": "majority",
        "sell_rule": "majority",
    }
    StrategyConfig.model_validate(upgraded)


def test_an_enabled_indicators_invalid_setting_is_never_changed():
    stored = old_shape(rsi={"enabled": True, "period": 0})

    assert migration.upgrade_strategy(stored) == stored


@pytest.mark.django_db
def test_the_migration_rewrites_stored_bots_and_clears_zero_percentages():
    disabled_junk = BotFactory(
        strategy=old_shape(macd={"fast": 0}), stop_loss_pct=0, take_profit_pct=Decimal("10")
    )
    untouched = BotFactory(stop_loss_pct=Decimal("5"), take_profit_pct=0)

    migration.forwards(apps, schema_editor=None)

    disabled_junk.refresh_from_db()
    untouched.refresh_from_db()
    assert disabled_junk.strategy["indicators"]["macd"]["fast"] == 12
    assert (disabled_junk.stop_loss_pct, disabled_junk.take_profit_pct) == (None, Decimal("10"))
    assert (untouched.stop_loss_pct, untouched.take_profit_pct) == (Decimal("5"), None)
    assert untouched.strategy == default_strategy()
