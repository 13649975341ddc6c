"""The fill model's edge cases, on tiny bar series whose signals are known in advance.

The strategy is RSI over 2 bars: a close below the one before makes RSI 0 (buy), a close above
it makes RSI 100 (sell), and an unchanged close keeps the previous value. Its warm-up is 3 bars,
so bar 2 is the first that can decide.
"""

from decimal import Decimal

import numpy as np
import pytest

from backtests import simulation
from backtests.simulation import END_OF_BACKTEST, Bars, NotEnoughBars, Params, simulate
from bots.schema import StrategyConfig
from bots.strategy import stop_loss_reason, take_profit_reason

RSI_2 = StrategyConfig.model_validate(
    {
        "indicators": {"rsi": {"enabled": True, "period": 2, "oversold": 30, "overbought": 70}},
        "buy_rule": "rsi",
        "sell_rule": "rsi",
    }
)
RSI_14 = StrategyConfig.default()
# Three flat bars, then a drop: the buy decided on bar 3's close fills at bar 4's open.
DROP = [100, 100, 100, 99]


def make_bars(closes, *, opens=None, highs=None, lows=None) -> Bars:
    """One-minute bars at ``closes``; each opens at the close before it unless ``opens`` (by
    bar index) says otherwise, and its high / low are its open and close unless ``highs`` /
    ``lows`` say otherwise."""
    opens_at = [closes[0], *closes[:-1]]
    for index, price in (opens or {}).items():
        opens_at[index] = price
    rows = []
    for index, (open_, close) in enumerate(zip(opens_at, closes, strict=True)):
        high = (highs or {}).get(index, max(open_, close))
        low = (lows or {}).get(index, min(open_, close))
        rows.append((1_700_000_000 + 60 * index, open_, high, low, close))
    return Bars.from_rows(rows)


def params(**fields) -> Params:
    return Params(**{"strategy": RSI_2, "capital": Decimal(1000), **fields})


def test_a_buy_fills_at_the_next_open_and_a_sell_signal_exits_at_the_open_after_it():
    # Bar 5 rises: RSI 100, the sell decided on its close fills at bar 6's open.
    bars = make_bars([*DROP, 99, 110, 110], opens={6: 111})

    (trade,) = simulate(params(), bars).trades

    assert (trade.entry_decided, trade.entry_filled, trade.entry_price) == (3, 4, Decimal(99))
    assert (trade.exit_decided, trade.exit_filled, trade.exit_price) == (5, 6, Decimal(111))
    assert (trade.entry_reason, trade.exit_reason) == ("RSI buy signal", "RSI sell signal")
    assert trade.qty == 10  # floor(1000 / 99)
    assert trade.pnl == Decimal(120)


def test_slippage_moves_each_signal_fill_against_the_trader_to_the_cent():
    bars = make_bars([*DROP, 99, 110, 110], opens={4: 200, 6: 300})

    (trade,) = simulate(params(slippage_bps=Decimal(10)), bars).trades

    assert trade.entry_price == Decimal("200.20")  # 200 + 0.1%
    assert trade.exit_price == Decimal("299.70")  # 300 - 0.1%
    assert trade.qty == 5  # the capital over the open before slippage, as the engine sizes it


@pytest.mark.parametrize(
    ("low", "high", "exit_price", "reason"),
    [
        (Decimal(94), Decimal(99), Decimal("94.05"), stop_loss_reason(Decimal("94.05"))),
        (Decimal(99), Decimal(104), Decimal("103.95"), take_profit_reason(Decimal("103.95"))),
    ],
    ids=["stop-loss", "take-profit"],
)
def test_a_level_touched_inside_a_bar_fills_at_the_level(low, high, exit_price, reason):
    bars = make_bars([*DROP, 99, 99, 99], lows={5: low}, highs={5: high})
    simulated = params(stop_loss_pct=Decimal(5), take_profit_pct=Decimal(5))

    (trade,) = simulate(simulated, bars).trades

    assert (trade.exit_decided, trade.exit_filled) == (5, 5)
    assert (trade.exit_price, trade.exit_reason) == (exit_price, reason)


@pytest.mark.parametrize(
    ("open_", "reason"),
    [
        (Decimal(90), stop_loss_reason(Decimal("94.05"))),
        (Decimal(110), take_profit_reason(Decimal("103.95"))),
    ],
    ids=["stop-loss", "take-profit"],
)
def test_a_bar_that_opens_through_a_level_fills_at_its_open(open_, reason):
    bars = make_bars([*DROP, 99, open_, open_], opens={5: open_})
    simulated = params(stop_loss_pct=Decimal(5), take_profit_pct=Decimal(5))

    (trade,) = simulate(simulated, bars).trades

    assert (trade.exit_decided, trade.exit_filled) == (5, 5)
    assert (trade.exit_price, trade.exit_reason) == (open_, reason)


def test_when_one_bar_touches_both_levels_the_stop_loss_counts():
    bars = make_bars([*DROP, 99, 99, 99], lows={5: 90}, highs={5: 110})
    simulated = params(stop_loss_pct=Decimal(5), take_profit_pct=Decimal(5))

    (trade,) = simulate(simulated, bars).trades  # one exit, not a stop-loss and a take-profit

    assert trade.exit_price == Decimal("94.05")
    assert trade.exit_reason == stop_loss_reason(Decimal("94.05"))


def test_a_bar_that_stops_the_position_out_makes_no_entry_on_its_close():
    # Bar 5 gaps through the stop and closes lower: a buy signal on its close, not taken (the
    # engine's tick that sells does not also buy); bar 6's is, and fills at bar 7's open.
    bars = make_bars([*DROP, 99, 90, 89, 89], opens={5: 90})

    first, second = simulate(params(stop_loss_pct=Decimal(5)), bars).trades

    assert first.exit_filled == 5
    assert (second.entry_decided, second.entry_filled) == (6, 7)


def test_a_range_without_bars_is_refused():
    with pytest.raises(NotEnoughBars, match=r"^The range holds no bars\.$"):
        simulate(params(), Bars.from_rows([]))


def test_a_warm_up_longer_than_the_range_is_refused_saying_how_many_bars_it_needs():
    # RSI over 14 bars decides from its 15th bar, and needs one more to trade on.
    with pytest.raises(NotEnoughBars) as refused:
        simulate(params(strategy=RSI_14), make_bars([100] * 15))
    assert str(refused.value) == (
        "The range holds 15 bars; the strategy's indicators need 15 before the first decision "
        "and one more to trade on."
    )
    assert simulate(params(strategy=RSI_14), make_bars([100] * 16)).trades == []


def test_a_signal_on_the_last_bar_does_nothing():
    result = simulate(params(), make_bars(DROP))

    assert result.trades == []
    assert result.equity.tolist() == [1000.0] * 4


def test_a_position_still_open_at_the_end_is_closed_at_the_last_close():
    bars = make_bars([*DROP, 99, 98.5], opens={4: 98})

    (trade,) = simulate(params(slippage_bps=Decimal(5)), bars).trades

    assert trade.entry_filled == 4
    assert (trade.exit_decided, trade.exit_filled) == (5, 5)
    # The last close as it is: no order was sent, so no slippage.
    assert (trade.exit_price, trade.exit_reason) == (Decimal("98.5"), END_OF_BACKTEST)
    assert trade.exit_price - trade.entry_price == Decimal("0.45")  # entry 98.05
    assert bool(np.all(simulate(params(), bars).exposed[4:]))


@pytest.mark.parametrize(
    ("allow_fractional", "qty"), [(False, Decimal(3)), (True, Decimal("3.333"))]
)
def test_quantities_are_whole_shares_or_thousandths_when_fractions_are_allowed(
    allow_fractional, qty
):
    bars = make_bars([310, 310, 310, 300, 300, 300])

    (trade,) = simulate(params(allow_fractional=allow_fractional), bars).trades

    assert trade.qty == qty
    assert trade.qty * trade.entry_price <= 1000


def test_capital_below_one_share_buys_nothing():
    bars = make_bars([2000, 2000, 2000, 1990, 1990, 1990])

    assert simulate(params(), bars).trades == []
    assert simulate(params(allow_fractional=True), bars).trades[0].qty == Decimal("0.502")


def test_commission_is_charged_on_both_fills_and_comes_off_the_pnl():
    # 3 shares bought at 300 and sold at 330; 10 bps of (900 + 990) is 1.89.
    bars = make_bars([310, 310, 310, 300, 300, 330, 330], opens={6: 330})

    (trade,) = simulate(params(commission_bps=Decimal(10)), bars).trades

    assert trade.commission == Decimal("1.89")
    assert trade.pnl == Decimal("88.11")
    assert simulate(params(), bars).trades[0].commission == 0  # none by default, as Alpaca


def test_the_bars_are_walked_a_block_at_a_time_with_the_same_result(monkeypatch):
    # A random walk with wicks: trades by signal, stop-loss and take-profit, across blocks.
    walk = np.random.default_rng(7)
    closes = np.round(100 + np.cumsum(walk.normal(0, 0.6, 600)), 2).tolist()
    highs = {index: close + 1.5 for index, close in enumerate(closes) if index % 7 == 0}
    lows = {index: close - 1.5 for index, close in enumerate(closes) if index % 11 == 0}
    bars = make_bars(closes, highs=highs, lows=lows)
    levels = params(stop_loss_pct=Decimal(1), take_profit_pct=Decimal(1))

    closes_before = bars.close.copy()
    whole = simulate(levels, bars)
    assert np.array_equal(bars.close, closes_before)  # the indicators read the arrays uncopied
    monkeypatch.setattr(simulation, "LOOP_BLOCK_BARS", 5)
    in_blocks = simulate(levels, bars)

    kinds = {trade.exit_reason.split(" (")[0] for trade in whole.trades}
    assert kinds >= {"RSI sell signal", "Stop-loss triggered", "Take-profit triggered"}
    assert len(whole.trades) > 100  # so 5-bar blocks cut through many positions
    assert in_blocks.trades == whole.trades
    assert np.array_equal(in_blocks.equity, whole.equity)
