"""The strategy layer on constructed bar series whose signals are known in advance."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
from ta.trend import MACD

from bots.schema import (
    BollingerConfig,
    EmaCrossConfig,
    IndicatorSet,
    MacdConfig,
    RsiConfig,
    SmaCrossConfig,
    StochasticConfig,
    StrategyConfig,
)
from bots.strategy import (
    Action,
    evaluate,
    indicator_series,
    prices_frame,
    signal_series,
    stop_loss_price,
    stop_loss_reason,
    take_profit_price,
    take_profit_reason,
    warmup_bars,
)

START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Bar:
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def make_bars(closes, spread=1):
    """One-minute bars at the given closes, each with high/low `spread` above/below the close."""
    bars = []
    for index, close in enumerate(closes):
        close = Decimal(str(close))
        bars.append(
            Bar(
                timestamp=START + timedelta(minutes=index),
                open=close,
                high=close + spread,
                low=close - spread,
                close=close,
                volume=Decimal(1000),
            )
        )
    return bars


def make_strategy(buy_rule="majority", sell_rule="majority", **configs) -> StrategyConfig:
    return StrategyConfig(
        indicators=IndicatorSet(**configs), buy_rule=buy_rule, sell_rule=sell_rule
    )


def only(key, config):
    """A strategy with one enabled indicator, both rules naming it."""
    return make_strategy(key, key, **{key: config})


DEFAULT = StrategyConfig.default()


FALLING = [100 - index for index in range(30)]
RISING = [100 + index for index in range(30)]


# --- RSI ------------------------------------------------------------------------------------


def test_rsi_buys_a_steadily_falling_series():
    signal = evaluate(DEFAULT, make_bars(FALLING), holding=False)

    assert signal.action is Action.BUY
    assert signal.fired == ("rsi",)
    assert signal.reason == "RSI buy signal"
    assert signal.values == {"rsi": {"rsi": Decimal("0.0000")}}


def test_rsi_sells_a_steadily_rising_series_when_holding():
    signal = evaluate(DEFAULT, make_bars(RISING), holding=True)

    assert signal.action is Action.SELL
    assert signal.fired == ("rsi",)
    assert signal.reason == "RSI sell signal"
    assert signal.values == {"rsi": {"rsi": Decimal("100.0000")}}


def test_rsi_value_matches_wilder_smoothing_by_hand():
    # Period 2 (alpha 1/2): gains 0, 2, 0 average to 0.5; losses 0, 0, 1 average to 0.5; RS 1.
    strategy = only("rsi", RsiConfig(enabled=True, period=2))

    signal = evaluate(strategy, make_bars([10, 12, 11]), holding=False)

    assert signal.values == {"rsi": {"rsi": Decimal("50.0000")}}
    assert signal.action is Action.HOLD
    assert signal.reason == "No signal"
    assert signal.fired == ()


def test_rsi_levels_are_strict():
    # RSI is exactly 50 (see above): on the oversold or the overbought level it does not vote.
    at_oversold = only("rsi", RsiConfig(enabled=True, period=2, oversold=50, overbought=70))
    at_overbought = only("rsi", RsiConfig(enabled=True, period=2, oversold=30, overbought=50))
    bars = make_bars([10, 12, 11])

    assert evaluate(at_oversold, bars, holding=False).action is Action.HOLD
    assert evaluate(at_overbought, bars, holding=True).action is Action.HOLD


# --- MACD -----------------------------------------------------------------------------------

MACD_FAST = MacdConfig(enabled=True, fast=2, slow=4, signal=2)
MACD_DIP_THEN_TURN = [10] * 5 + [9, 8, 7, 6, 5, 5.5]


def test_macd_buys_when_its_line_crosses_above_the_signal_on_the_last_bar():
    bars = make_bars(MACD_DIP_THEN_TURN)

    before = evaluate(only("macd", MACD_FAST), bars[:-1], holding=False)
    signal = evaluate(only("macd", MACD_FAST), bars, holding=False)

    assert before.action is Action.HOLD
    assert before.values["macd"]["diff"] == Decimal("-0.0484")
    assert signal.action is Action.BUY
    assert signal.reason == "MACD buy signal"
    assert signal.values["macd"] == {
        "macd": Decimal("-0.5307"),
        "signal": Decimal("-0.6328"),
        "diff": Decimal("0.1021"),
    }


def test_macd_sells_when_its_line_crosses_below_the_signal_on_the_last_bar():
    mirrored = [20 - close for close in MACD_DIP_THEN_TURN]
    bars = make_bars(mirrored)

    assert evaluate(only("macd", MACD_FAST), bars[:-1], holding=True).action is Action.HOLD
    signal = evaluate(only("macd", MACD_FAST), bars, holding=True)

    assert signal.action is Action.SELL
    assert signal.reason == "MACD sell signal"
    assert signal.values["macd"]["diff"] == Decimal("-0.1021")


# --- Bollinger Bands --------------------------------------------------------------------------

BOLLINGER_5_1 = BollingerConfig(enabled=True, window=5, std=Decimal(1))


def test_bollinger_buys_a_close_far_below_the_lower_band():
    # Window [10, 10, 10, 10, 0]: mean 8, population std 4, so the bands are 4 / 8 / 12.
    signal = evaluate(only("bollinger", BOLLINGER_5_1), make_bars([10] * 5 + [0]), holding=False)

    assert signal.action is Action.BUY
    assert signal.reason == "Bollinger Bands buy signal"
    assert signal.values == {
        "bollinger": {
            "upper": Decimal("12.0000"),
            "middle": Decimal("8.0000"),
            "lower": Decimal("4.0000"),
        }
    }


def test_bollinger_sells_a_close_far_above_the_upper_band():
    signal = evaluate(only("bollinger", BOLLINGER_5_1), make_bars([10] * 5 + [20]), holding=True)

    assert signal.action is Action.SELL
    assert signal.reason == "Bollinger Bands sell signal"
    assert signal.values["bollinger"]["upper"] == Decimal("16.0000")


def test_bollinger_bands_are_strict():
    # Window [10, 0] with one deviation: bands 0 / 5 / 10, and the close sits on the band.
    strategy = only("bollinger", BollingerConfig(enabled=True, window=2, std=Decimal(1)))

    on_lower = evaluate(strategy, make_bars([10, 10, 0]), holding=False)
    on_upper = evaluate(strategy, make_bars([0, 0, 10]), holding=True)

    assert on_lower.values["bollinger"]["lower"] == Decimal("0.0000")
    assert on_lower.action is Action.HOLD
    assert on_upper.values["bollinger"]["upper"] == Decimal("10.0000")
    assert on_upper.action is Action.HOLD


def test_bollinger_holds_inside_the_bands():
    closes = [100, 101] * 10 + [100]
    strategy = only("bollinger", BollingerConfig(enabled=True))

    assert evaluate(strategy, make_bars(closes), holding=False).action is Action.HOLD
    assert evaluate(strategy, make_bars(closes), holding=True).action is Action.HOLD


# --- Moving-average crossovers ----------------------------------------------------------------

# 30 flat bars, a 15-bar dip to 85, then a rally of +2 a bar: the 10-bar SMA climbs back over
# the 30-bar SMA exactly on the last bar (94.0 < 94.5 on the bar before, 96.0 > 94.6667 on it).
DIP_THEN_RALLY = [100] * 30 + list(range(99, 84, -1)) + list(range(87, 106, 2))


def test_sma_crossover_buys_exactly_on_the_bar_where_fast_crosses_above_slow():
    strategy = only("sma_cross", SmaCrossConfig(enabled=True))
    bars = make_bars(DIP_THEN_RALLY)

    before = evaluate(strategy, bars[:-1], holding=False)
    signal = evaluate(strategy, bars, holding=False)

    assert before.action is Action.HOLD
    assert before.values == {"sma_cross": {"fast": Decimal("94.0000"), "slow": Decimal("94.5000")}}
    assert signal.action is Action.BUY
    assert signal.fired == ("sma_cross",)
    assert signal.reason == "SMA crossover buy signal"
    assert signal.values == {"sma_cross": {"fast": Decimal("96.0000"), "slow": Decimal("94.6667")}}


def test_sma_crossover_counts_leaving_equal_averages_upwards_as_a_cross():
    strategy = only("sma_cross", SmaCrossConfig(enabled=True, fast=2, slow=3))
    # Both SMAs are 100 until the last bar lifts SMA2 to 100.5 over SMA3's 100.3333.
    bars = make_bars([100] * 5 + [101])

    assert evaluate(strategy, bars[:-1], holding=False).action is Action.HOLD
    assert evaluate(strategy, bars, holding=False).action is Action.BUY


def test_sma_crossover_does_not_buy_again_on_the_bar_after_the_cross():
    strategy = only("sma_cross", SmaCrossConfig(enabled=True))
    bars = make_bars([*DIP_THEN_RALLY, 107])

    assert evaluate(strategy, bars, holding=False).action is Action.HOLD


def test_sma_crossover_sells_when_fast_crosses_below_slow():
    strategy = only("sma_cross", SmaCrossConfig(enabled=True, fast=2, slow=3))
    # SMA2: -, 8.5, 9.5, 10.5, 9.5; SMA3: -, -, 9, 10, 9.6667: fast drops under slow at the end.
    bars = make_bars([8, 9, 10, 11, 8])

    before = evaluate(strategy, bars[:-1], holding=True)
    signal = evaluate(strategy, bars, holding=True)

    assert (before.action, before.reason) == (Action.HOLD, "No signal")
    assert signal.action is Action.SELL
    assert signal.reason == "SMA crossover sell signal"
    assert signal.values == {"sma_cross": {"fast": Decimal("9.5000"), "slow": Decimal("9.6667")}}


def test_ema_crossover_sells_when_fast_crosses_below_slow():
    strategy = only("ema_cross", EmaCrossConfig(enabled=True))
    rise_then_fall = [100] * 30 + list(range(101, 116)) + list(range(113, 98, -2))
    bars = make_bars(rise_then_fall)

    before = evaluate(strategy, bars[:-1], holding=True)
    signal = evaluate(strategy, bars, holding=True)

    assert before.action is Action.HOLD
    assert before.values["ema_cross"]["fast"] > before.values["ema_cross"]["slow"]
    assert signal.action is Action.SELL
    assert signal.reason == "EMA crossover sell signal"
    assert signal.values["ema_cross"]["fast"] < signal.values["ema_cross"]["slow"]


def test_ema_crossover_buys_the_mirrored_series():
    strategy = only("ema_cross", EmaCrossConfig(enabled=True))
    fall_then_rise = [100] * 30 + list(range(99, 84, -1)) + list(range(87, 102, 2))

    signal = evaluate(strategy, make_bars(fall_then_rise), holding=False)

    assert signal.action is Action.BUY
    assert signal.reason == "EMA crossover buy signal"


# --- Stochastic -------------------------------------------------------------------------------

STOCHASTIC_3_2 = StochasticConfig(enabled=True, k=3, d=2)


def stochastic_bars(last_close):
    # The last three bars span low 8 .. high 13, so %K = 100 * (close - 8) / 5.
    highs_lows_closes = [
        (12, 10, 11),
        (12, 10, 11),
        (12, 10, 11),
        (13, 11, 12),
        (12, 8, last_close),
    ]
    return [
        Bar(
            timestamp=START + timedelta(minutes=index),
            open=Decimal(close),
            high=Decimal(high),
            low=Decimal(low),
            close=Decimal(close),
            volume=Decimal(1),
        )
        for index, (high, low, close) in enumerate(highs_lows_closes)
    ]


def test_stochastic_buys_when_k_is_below_oversold():
    signal = evaluate(only("stochastic", STOCHASTIC_3_2), stochastic_bars("8.5"), holding=False)

    assert signal.action is Action.BUY
    assert signal.reason == "Stochastic buy signal"
    assert signal.values["stochastic"]["k"] == Decimal("10.0000")


def test_stochastic_oversold_is_strict():
    signal = evaluate(only("stochastic", STOCHASTIC_3_2), stochastic_bars("9"), holding=False)

    assert signal.values["stochastic"]["k"] == Decimal("20.0000")
    assert signal.action is Action.HOLD


def test_stochastic_sells_when_k_is_above_overbought():
    signal = evaluate(only("stochastic", STOCHASTIC_3_2), stochastic_bars("12.5"), holding=True)

    assert signal.action is Action.SELL
    assert signal.reason == "Stochastic sell signal"
    assert signal.values["stochastic"]["k"] == Decimal("90.0000")


# --- Rules ------------------------------------------------------------------------------------

THREE_INDICATORS = dict(
    rsi=RsiConfig(enabled=True),
    bollinger=BollingerConfig(enabled=True),
    sma_cross=SmaCrossConfig(enabled=True, fast=3, slow=5),
)
# Falling steadily, then a plunge: RSI and Bollinger vote buy; the SMAs never cross.
FALLING_THEN_PLUNGE = [*FALLING[:-1], FALLING[-1] - 10]


def test_majority_buys_when_two_of_three_indicators_agree():
    signal = evaluate(
        make_strategy(**THREE_INDICATORS), make_bars(FALLING_THEN_PLUNGE), holding=False
    )

    assert signal.action is Action.BUY
    assert signal.fired == ("rsi", "bollinger")
    assert signal.reason == "Majority vote buy signal"
    assert set(signal.values) == {"rsi", "bollinger", "sma_cross"}


def test_majority_holds_when_only_one_of_three_agrees():
    # Without the plunge the close stays inside the Bollinger Bands: only RSI votes buy.
    signal = evaluate(make_strategy(**THREE_INDICATORS), make_bars(FALLING), holding=False)

    assert signal.action is Action.HOLD
    assert signal.reason == "No signal"


def test_majority_needs_more_than_half_so_one_of_two_holds():
    two = make_strategy(
        rsi=RsiConfig(enabled=True), sma_cross=SmaCrossConfig(enabled=True, fast=3, slow=5)
    )

    signal = evaluate(two, make_bars(FALLING), holding=False)

    assert signal.action is Action.HOLD
    assert evaluate(DEFAULT, make_bars(FALLING), holding=False).action is Action.BUY


def test_majority_sells_when_two_of_three_agree():
    rising_then_spike = [*RISING[:-1], RISING[-1] + 10]

    signal = evaluate(make_strategy(**THREE_INDICATORS), make_bars(rising_then_spike), holding=True)

    assert signal.action is Action.SELL
    assert signal.fired == ("rsi", "bollinger")
    assert signal.reason == "Majority vote sell signal"


def test_a_named_rule_ignores_the_other_indicators():
    bars = make_bars(FALLING_THEN_PLUNGE)
    rsi_rule = make_strategy(buy_rule="rsi", **THREE_INDICATORS)
    sma_rule = make_strategy(buy_rule="sma_cross", **THREE_INDICATORS)

    by_rsi = evaluate(rsi_rule, make_bars(FALLING), holding=False)
    by_sma = evaluate(sma_rule, bars, holding=False)

    # RSI alone decides, even though the majority would hold ...
    assert by_rsi.action is Action.BUY
    assert by_rsi.fired == ("rsi",)
    assert by_rsi.reason == "RSI buy signal"
    # ... and the SMA crossover alone holds, even though RSI and Bollinger vote buy.
    assert by_sma.action is Action.HOLD


def test_not_holding_only_checks_the_buy_rule():
    signal = evaluate(DEFAULT, make_bars(RISING), holding=False)

    assert signal.action is Action.HOLD
    assert signal.values == {"rsi": {"rsi": Decimal("100.0000")}}


def test_holding_only_checks_the_sell_rule():
    signal = evaluate(DEFAULT, make_bars(FALLING), holding=True)

    assert signal.action is Action.HOLD
    assert signal.reason == "No signal"


def test_a_shared_indicator_cache_keeps_only_the_votes_and_decides_as_without_it():
    # Waves of two lengths: every indicator votes both ways somewhere in the series.
    closes = [100 + 8 * math.sin(n / 9) + 3 * math.sin(n / 2.3) for n in range(400)]
    prices = prices_frame(make_bars(closes))
    all_six = {
        "rsi": RsiConfig(enabled=True, oversold=40, overbought=60),
        "macd": MacdConfig(enabled=True),
        "bollinger": BollingerConfig(enabled=True, std=Decimal("1")),
        "sma_cross": SmaCrossConfig(enabled=True),
        "ema_cross": EmaCrossConfig(enabled=True),
        "stochastic": StochasticConfig(enabled=True),
    }
    cache = {}
    for period in (7, 14, 21):  # as a grid over the RSI period: the other five are reused
        indicators = {**all_six, "rsi": all_six["rsi"].model_copy(update={"period": period})}
        for rule in indicators:  # every indicator's own votes, through the cache and without
            strategy = make_strategy(rule, rule, **indicators)
            cached, fresh = signal_series(strategy, prices, cache), signal_series(strategy, prices)

            assert fresh.buy.any() and fresh.sell.any()
            assert cached.buy.tolist() == fresh.buy.tolist()
            assert cached.sell.tolist() == fresh.sell.tolist()
    assert len(cache) == 8
    assert all(computed.lines == {} for computed in cache.values())


# --- Not enough data / warm-up ----------------------------------------------------------------


def test_too_few_bars_hold_with_how_many_are_needed():
    signal = evaluate(DEFAULT, make_bars(FALLING[:14]), holding=False)

    assert signal.action is Action.HOLD
    assert signal.reason == "Not enough data (14 bars, need 15)"
    assert signal.fired == ()


def test_no_bars_at_all_hold():
    signal = evaluate(DEFAULT, [], holding=True)

    assert signal.action is Action.HOLD
    assert signal.reason == "Not enough data (0 bars, need 15)"
    assert signal.values == {"rsi": {"rsi": None}}


@pytest.mark.parametrize(
    ("key", "config", "needed"),
    [
        ("rsi", RsiConfig(enabled=True, period=5), 6),
        ("macd", MacdConfig(enabled=True, fast=3, slow=6, signal=4), 10),
        ("bollinger", BollingerConfig(enabled=True, window=5), 6),
        ("sma_cross", SmaCrossConfig(enabled=True, fast=3, slow=7), 8),
        ("ema_cross", EmaCrossConfig(enabled=True, fast=3, slow=7), 8),
        ("stochastic", StochasticConfig(enabled=True, k=5, d=3), 8),
    ],
)
def test_warmup_bars_is_the_least_that_gives_values_on_the_last_two_bars(key, config, needed):
    one = only(key, config)
    zigzag = [100 + (index * 7) % 5 for index in range(needed)]

    def has_all_values(bars):
        values = evaluate(one, bars, holding=False).values[key]
        return all(value is not None for value in values.values())

    assert warmup_bars(one) == needed
    assert evaluate(one, make_bars(zigzag), holding=False).reason != (
        f"Not enough data ({needed} bars, need {needed})"
    )
    short = evaluate(one, make_bars(zigzag[:-1]), holding=False)
    assert short.reason == f"Not enough data ({needed - 1} bars, need {needed})"
    # With `needed` bars both the last and the previous bar have every value, one bar fewer not.
    assert has_all_values(make_bars(zigzag))
    assert has_all_values(make_bars(zigzag[:-1]))
    assert not has_all_values(make_bars(zigzag[:-2]))


def test_warmup_bars_takes_the_most_demanding_enabled_indicator():
    everything = make_strategy(
        rsi=RsiConfig(enabled=True),
        macd=MacdConfig(enabled=True),
        bollinger=BollingerConfig(enabled=True),
        sma_cross=SmaCrossConfig(enabled=True),
        ema_cross=EmaCrossConfig(enabled=True),
        stochastic=StochasticConfig(enabled=True),
    )

    assert warmup_bars(DEFAULT) == 15
    assert warmup_bars(everything) == 35  # MACD: 26 + 9
    assert warmup_bars(make_strategy(sma_cross=SmaCrossConfig(enabled=True, slow=50))) == 51


# --- Chart series -----------------------------------------------------------------------------


def test_indicator_series_draws_price_overlays_and_marks_signals():
    strategy = make_strategy(
        rsi=RsiConfig(enabled=True, period=2),
        sma_cross=SmaCrossConfig(enabled=True, fast=2, slow=3),
        bollinger=BollingerConfig(enabled=True, window=3),
        buy_rule="sma_cross",
        sell_rule="sma_cross",
    )
    # SMA2: -, 9.5, 8.5, 7.5, 9.5; SMA3: -, -, 9, 8, 9; fast crosses above slow on the last bar.
    bars = make_bars([10, 9, 8, 7, 12])
    stamps = [bar.timestamp for bar in bars]

    series = indicator_series(strategy, bars)

    assert set(series) == {"overlays", "panes", "markers"}
    assert set(series["overlays"]) == {"sma_cross", "bollinger"}
    assert set(series["panes"]) == {"rsi"}  # RSI has its own scale
    assert series["overlays"]["sma_cross"] == {
        "fast": [
            (stamps[1], Decimal("9.5000")),
            (stamps[2], Decimal("8.5000")),
            (stamps[3], Decimal("7.5000")),
            (stamps[4], Decimal("9.5000")),
        ],
        "slow": [
            (stamps[2], Decimal("9.0000")),
            (stamps[3], Decimal("8.0000")),
            (stamps[4], Decimal("9.0000")),
        ],
    }
    bollinger = series["overlays"]["bollinger"]
    assert set(bollinger) == {"upper", "middle", "lower"}
    assert [stamp for stamp, _ in bollinger["middle"]] == stamps[2:]
    assert bollinger["middle"][0] == (stamps[2], Decimal("9.0000"))
    assert series["markers"] == [(stamps[4], Action.BUY, "SMA crossover buy signal")]


def test_indicator_series_marks_the_first_bar_of_each_run_of_signals():
    strategy = only("rsi", RsiConfig(enabled=True, period=2))
    # RSI(2): -, 100, 100, 42.9, 20, 9.7, 78, 89, 35.5, 19.7: above 70, below 30, twice.
    bars = make_bars([10, 11, 12, 11, 10, 9, 12, 14, 11, 9])
    stamps = [bar.timestamp for bar in bars]
    rsi = dict(indicator_series(strategy, bars)["panes"]["rsi"]["rsi"])
    buys = [stamp for stamp in stamps if stamp in rsi and rsi[stamp] < 30]
    sells = [stamp for stamp in stamps if stamp in rsi and rsi[stamp] > 70]

    series = indicator_series(strategy, bars)

    # Two runs of each: every bar of a run votes, only its first is marked.
    assert buys == [stamps[4], stamps[5], stamps[9]]
    assert sells == [stamps[1], stamps[2], stamps[6], stamps[7]]
    assert series["overlays"] == {}
    assert series["markers"] == [
        (stamps[1], Action.SELL, "RSI sell signal"),
        (stamps[4], Action.BUY, "RSI buy signal"),
        (stamps[6], Action.SELL, "RSI sell signal"),
        (stamps[9], Action.BUY, "RSI buy signal"),
    ]


def test_indicator_series_puts_oscillators_in_panes_from_ta():
    strategy = make_strategy(
        rsi=RsiConfig(enabled=True, period=3),
        macd=MacdConfig(enabled=True, fast=2, slow=4, signal=2),
        stochastic=StochasticConfig(enabled=True, k=3, d=2),
        buy_rule="majority",
        sell_rule="majority",
    )
    bars = make_bars([10, 11, 12, 11, 10, 9, 12, 14, 11, 9, 10, 13])
    stamps = [bar.timestamp for bar in bars]
    closes = pd.Series([float(bar.close) for bar in bars])

    panes = indicator_series(strategy, bars)["panes"]

    assert {key: set(lines) for key, lines in panes.items()} == {
        "rsi": {"rsi"},
        "macd": {"macd", "signal", "diff"},
        "stochastic": {"k", "d"},
    }
    macd = MACD(closes, window_slow=4, window_fast=2, window_sign=2)
    histogram = dict(panes["macd"]["diff"])
    assert histogram[stamps[-1]] == Decimal(str(macd.macd_diff().iloc[-1])).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_UP
    )
    # The histogram is the MACD line minus its signal line, on every bar where both exist.
    lines = {name: dict(points) for name, points in panes["macd"].items()}
    for stamp, value in histogram.items():
        assert abs(value - (lines["macd"][stamp] - lines["signal"][stamp])) <= Decimal("0.0002")
    assert [stamp for stamp, _ in panes["rsi"]["rsi"]] == stamps[2:]
    assert [stamp for stamp, _ in panes["stochastic"]["d"]] == stamps[3:]


def test_indicator_series_agrees_with_evaluate_on_the_last_bar():
    bars = make_bars(DIP_THEN_RALLY)
    strategy = only("sma_cross", SmaCrossConfig(enabled=True))

    markers = indicator_series(strategy, bars)["markers"]

    # The flat start leaves both SMAs equal at 100 until the dip pulls the fast one under: a
    # spread going from 0 to negative counts as crossing below.
    assert markers == [
        (bars[30].timestamp, Action.SELL, "SMA crossover sell signal"),
        (bars[-1].timestamp, Action.BUY, "SMA crossover buy signal"),
    ]
    assert evaluate(strategy, bars[:31], holding=True).action is Action.SELL
    assert evaluate(strategy, bars, holding=False).action is Action.BUY


def test_indicator_series_of_no_bars_is_empty():
    series = indicator_series(only("sma_cross", SmaCrossConfig(enabled=True)), [])

    assert series == {
        "overlays": {"sma_cross": {"fast": [], "slow": []}},
        "panes": {},
        "markers": [],
    }


# --- Stop-loss / take-profit ------------------------------------------------------------------


def test_stop_loss_price_rounds_half_up_to_the_cent():
    # 162.50 * 0.95 = 154.375 -> 154.38 (ROUND_HALF_UP).
    assert stop_loss_price(Decimal("162.50"), Decimal(5)) == Decimal("154.38")
    # 100.30 * 0.95 = 95.285 -> 95.29 (half-even would give 95.28).
    assert stop_loss_price(Decimal("100.30"), Decimal(5)) == Decimal("95.29")
    assert stop_loss_price(Decimal("200"), Decimal("2.5")) == Decimal("195.00")


def test_take_profit_price_rounds_half_up_to_the_cent():
    # 162.50 * 1.05 = 170.625 -> 170.63 (half-even would give 170.62).
    assert take_profit_price(Decimal("162.50"), Decimal(5)) == Decimal("170.63")
    assert take_profit_price(Decimal("100"), Decimal(10)) == Decimal("110.00")


def test_exit_reasons_read_as_the_trade_history_shows_them():
    stop = stop_loss_price(Decimal("162.50"), Decimal(5))
    target = take_profit_price(Decimal("162.50"), Decimal(5))

    assert stop_loss_reason(stop) == "Stop-loss triggered (price ≤ $154.38)"
    assert take_profit_reason(target) == "Take-profit triggered (price ≥ $170.63)"
    assert stop_loss_reason(Decimal("155")) == "Stop-loss triggered (price ≤ $155.00)"
    assert take_profit_reason(Decimal("1234.5")) == "Take-profit triggered (price ≥ $1,234.50)"
