def bot_form_data(**overrides) -> dict:
    """What the bot form posts for a valid RSI bot."""
    data = {
        "name": "Apple RSI",
        "symbol": "AAPL",
        "capital": "1000",
        "timeframe": "5Min",
        "rsi_enabled": "on",
        "rsi_period": "14",
        "rsi_oversold": "30",
        "rsi_overbought": "70",
        "buy_rule": "rsi",
        "sell_rule": "rsi",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
