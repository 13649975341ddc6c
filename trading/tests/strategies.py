"""Strategies whose signal is certain on the paper exchange's prices, for engine tests."""

from bots.schema import StrategyConfig


def _rsi_between(oversold: int, overbought: int) -> dict:
    return StrategyConfig.model_validate(
        {"indicators": {"rsi": {"enabled": True, "oversold": oversold, "overbought": overbought}},
         "buy_rule": "rsi", "sell_rule": "rsi"}
    ).model_dump(mode="json")  # fmt: skip


# RSI always sits between 2 and 98 on these prices, so these rules fire on every tick.
ALWAYS_BUY = _rsi_between(98, 99)
ALWAYS_SELL = _rsi_between(1, 2)
NEVER = _rsi_between(1, 99)
