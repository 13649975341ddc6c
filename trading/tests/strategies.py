"""Strategies whose signal is certain on the paper exchange's prices, for engine tests."""

from bots.strategy import Strategy

# RSI always sits between 2 and 98 on these prices, so these rules fire on every tick.
ALWAYS_BUY = Strategy.from_dict(
    {"indicators": {"rsi": {"enabled": True, "oversold": 98, "overbought": 99}},
     "buy_rule": "rsi", "sell_rule": "rsi"}
).to_dict()  # fmt: skip
ALWAYS_SELL = Strategy.from_dict(
    {"indicators": {"rsi": {"enabled": True, "oversold": 1, "overbought": 2}},
     "buy_rule": "rsi", "sell_rule": "rsi"}
).to_dict()  # fmt: skip
NEVER = Strategy.from_dict(
    {"indicators": {"rsi": {"enabled": True, "oversold": 1, "overbought": 99}},
     "buy_rule": "rsi", "sell_rule": "rsi"}
).to_dict()  # fmt: skip
