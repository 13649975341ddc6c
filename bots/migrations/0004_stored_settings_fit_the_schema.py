"""Stored strategies and percentages as the bot schema (bots/schema.py) accepts them, without
changing what any bot does.

The code before the schema read a stored strategy leniently: it ignored unknown keys, took a
null or blank parameter as its default and a falsy rule as "majority", read "enabled" as
Python truth, never checked the parameters of a disabled indicator, and took a stop-loss or
take-profit of 0 as none. The schema refuses all of these, so this rewrites them as what they
meant: defaults for what was unused or blank, and null (none) for a percentage of 0. A value
that an *enabled* indicator uses is never changed; if it is invalid the bot page and the engine
say so until the bot is edited.

The rules are a copy of the schema's as of this migration, so that it keeps doing the same
when the schema changes later.
"""

from decimal import Decimal, InvalidOperation

from django.db import migrations

DEFAULTS = {
    "rsi": {"period": 14, "oversold": 30, "overbought": 70},
    "macd": {"fast": 12, "slow": 26, "signal": 9},
    "bollinger": {"window": 20, "std": "2"},
    "sma_cross": {"fast": 10, "slow": 30},
    "ema_cross": {"fast": 12, "slow": 26},
    "stochastic": {"k": 14, "d": 3, "oversold": 20, "overbought": 80},
}
TOP_LEVEL = ("indicators", "buy_rule", "sell_rule")
LEVELS = ("oversold", "overbought")


def _whole(value):
    """The whole number the schema would read, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _valid(param, value) -> bool:
    if param == "std":
        if isinstance(value, bool):
            return False
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return False
        places = -number.normalize().as_tuple().exponent if number.is_finite() else 99
        return number.is_finite() and 0 < number <= 10 and places <= 2
    number = _whole(value)
    if number is None:
        return False
    return 0 < number < 100 if param in LEVELS else 2 <= number <= 500


def _in_order(params, first, second) -> bool:
    if first not in params or second not in params:
        return True
    return _whole(params[first]) < _whole(params[second])


def upgrade_indicator(key, config):
    """One stored indicator as the schema accepts it, or None for "absent" (the default)."""
    if not isinstance(config, dict):
        return config if config else None  # a non-object was never readable: left to be seen
    enabled = bool(config.get("enabled"))
    params = {"enabled": enabled}
    for param, default in DEFAULTS[key].items():
        value = config.get(param)
        blank = value is None or value == ""
        params[param] = default if blank or (not enabled and not _valid(param, value)) else value
    if not enabled:
        for first, second in (("fast", "slow"), ("oversold", "overbought")):
            if not _in_order(params, first, second):
                params[first], params[second] = DEFAULTS[key][first], DEFAULTS[key][second]
    return params


def upgrade_strategy(strategy):
    if not isinstance(strategy, dict):
        return strategy
    indicators = strategy.get("indicators") or {}
    upgraded = {}
    if isinstance(indicators, dict):
        upgraded["indicators"] = {
            key: config
            for key in DEFAULTS
            if (config := upgrade_indicator(key, indicators.get(key))) is not None
        }
    else:
        upgraded["indicators"] = indicators
    for rule in ("buy_rule", "sell_rule"):
        upgraded[rule] = strategy.get(rule) or "majority"
    return upgraded


def forwards(apps, schema_editor):
    Bot = apps.get_model("bots", "Bot")
    for bot in Bot.objects.only("strategy", "stop_loss_pct", "take_profit_pct").iterator():
        changed = []
        strategy = upgrade_strategy(bot.strategy)
        if strategy != bot.strategy:
            bot.strategy = strategy
            changed.append("strategy")
        for field in ("stop_loss_pct", "take_profit_pct"):
            if getattr(bot, field) == 0:
                setattr(bot, field, None)
                changed.append(field)
        if changed:
            bot.save(update_fields=changed)


class Migration(migrations.Migration):
    dependencies = [("bots", "0003_trade_permission")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
