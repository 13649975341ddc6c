"""Capital rules and the lifecycle, through the services every entry point uses."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from bots import services
from bots.models import Bot, BotStatusChange
from bots.tests.factories import BotFactory
from tradebots.broker.base import BrokerUnavailable
from tradebots.broker.paper.broker import PaperBroker
from trading.models import Trade
from trading.tests.factories import PositionFactory, TradeFactory

pytestmark = pytest.mark.django_db


def bot_data(**overrides):
    data = {"name": "Apple", "symbol": "AAPL", "capital": Decimal("1000"), "timeframe": "5Min"}
    return {**data, **overrides}


def test_allocated_capital_counts_every_bot_including_stopped_ones():
    BotFactory(capital=Decimal("100"), status=Bot.Status.STOPPED)
    running = BotFactory(capital=Decimal("250.50"), status=Bot.Status.RUNNING)
    BotFactory(capital=Decimal("50"), status=Bot.Status.PAUSED)

    assert services.get_allocated_capital() == Decimal("400.50")
    assert services.get_allocated_capital(exclude_bot_id=running.pk) == Decimal("150")


def test_allocated_capital_of_no_bots_is_zero():
    assert services.get_allocated_capital() == 0


def test_create_within_available_capital(buying_power):
    buying_power("5000")
    BotFactory(capital=Decimal("3000"))

    bot = services.create_bot(bot_data(capital=Decimal("2000")), "alice")

    assert bot.status == Bot.Status.STOPPED
    change = bot.status_changes.get()
    assert (change.actor, change.to_status, change.reason) == ("alice", "stopped", "Created")


def test_create_beyond_available_capital_is_refused_with_the_numbers(buying_power):
    buying_power("5000")
    BotFactory(capital=Decimal("3000"))

    with pytest.raises(services.CapitalExceeded) as refused:
        services.create_bot(bot_data(capital=Decimal("2000.01")), "alice")

    assert refused.value.fields["capital"] == (
        "Capital $2,000.01 exceeds the available $2,000.00 "
        "(buying power $5,000.00 − reserved $3,000.00)."
    )
    assert Bot.objects.count() == 1


def test_update_excludes_the_bots_own_capital(buying_power):
    buying_power("5000")
    bot = BotFactory(capital=Decimal("3000"))
    BotFactory(capital=Decimal("1000"))

    services.update_bot(bot, {"capital": Decimal("4000")}, "alice")
    with pytest.raises(services.CapitalExceeded):
        services.update_bot(bot, {"capital": Decimal("4000.01")}, "alice")

    bot.refresh_from_db()
    assert bot.capital == Decimal("4000")


def test_unknown_symbol_is_refused():
    with pytest.raises(services.BotError) as refused:
        services.create_bot(bot_data(symbol="ZZZZ"), "alice")

    assert refused.value.fields == {"symbol": "Unknown symbol ZZZZ."}


def test_unreachable_broker_refuses_instead_of_allowing_unchecked(monkeypatch):
    def down(self):
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "get_account", down)

    with pytest.raises(services.BrokerUnreachable, match="broker is unreachable"):
        services.create_bot(bot_data(), "alice")
    assert not Bot.objects.exists()


def test_start_rechecks_against_the_buying_power_of_that_moment(buying_power):
    buying_power("5000")
    bot = services.create_bot(bot_data(capital=Decimal("4000")), "alice")
    buying_power("3000")  # the account lost value between create and start

    with pytest.raises(services.CapitalExceeded) as refused:
        services.start_bot(bot, "alice")

    assert str(refused.value) == (
        "Cannot start 'Apple': buying power is $3,000.00, other bots reserve $0.00 "
        "and this bot needs $4,000.00. Lower its capital or free some first."
    )
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPED


def test_lifecycle_transitions_are_logged_with_actor_and_reason(buying_power):
    buying_power("5000")
    bot = BotFactory()

    services.start_bot(bot, "alice")
    services.pause_bot(bot, "bob", reason="Manual pause")
    services.start_bot(bot, "alice")
    services.stop_bot(bot, "alice")

    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPED
    history = list(
        bot.status_changes.order_by("id").values_list("from_status", "to_status", "actor")
    )
    assert history == [
        ("stopped", "running", "alice"),
        ("running", "paused", "bob"),
        ("paused", "running", "alice"),
        ("running", "stopped", "alice"),
    ]


@pytest.mark.parametrize(
    ("status", "action"),
    [("running", services.start_bot), ("stopped", services.pause_bot),
     ("paused", services.pause_bot), ("stopped", services.stop_bot)],
)  # fmt: skip
def test_impossible_transitions_are_refused(status, action):
    bot = BotFactory(status=status)

    with pytest.raises(services.BotError, match="Cannot"):
        action(bot, "alice")

    assert not BotStatusChange.objects.exists()


def test_error_shows_why_and_a_start_clears_it(buying_power):
    buying_power("5000")
    bot = BotFactory(status=Bot.Status.RUNNING)

    services.mark_bot_error(bot, "engine", "Order rejected 3 times: insufficient buying power")
    bot.refresh_from_db()
    assert (bot.status, bot.last_error) == (
        "error",
        "Order rejected 3 times: insufficient buying power",
    )

    services.start_bot(bot, "alice")
    bot.refresh_from_db()
    assert (bot.status, bot.last_error) == ("running", "")


def test_a_running_bot_cannot_be_deleted():
    bot = BotFactory(status=Bot.Status.RUNNING)

    with pytest.raises(services.BotError, match="Stop 'Bot"):
        services.delete_bot(bot, "alice")

    services.stop_bot(bot, "alice")
    services.delete_bot(bot, "alice")
    assert not Bot.objects.exists()


def test_several_bots_may_trade_the_same_symbol(buying_power):
    buying_power("5000")

    services.create_bot(bot_data(name="One"), "alice")
    services.create_bot(bot_data(name="Two"), "alice")

    assert Bot.objects.filter(symbol="AAPL").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_exceed_buying_power(buying_power):
    """Eight threads each try to allocate 40% of the buying power at once: two may win."""
    buying_power("10000")
    start = threading.Barrier(8)
    outcomes = []

    def create(number):
        start.wait()
        try:
            services.create_bot(bot_data(name=f"Racer {number}", capital=Decimal("4000")), "race")
            outcomes.append("created")
        except services.CapitalExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("created") == 2
    assert outcomes.count("refused") == 6
    assert services.get_allocated_capital() == Decimal("8000")


# --- available capital counts invested money once ----------------------------------------------


def test_capital_figures_count_what_each_bot_has_invested_once(django_assert_num_queries):
    # 4 shares filled of a 10-share buy: the position holds them, the order the other 6.
    partly = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=partly, qty=Decimal("4"), avg_entry_price=Decimal("100.25"))
    TradeFactory(
        bot=partly, status=Trade.Status.PARTIALLY_FILLED, qty=Decimal("10"),
        filled_qty=Decimal("4"), expected_price=Decimal("99.50"),
    )  # fmt: skip
    # Invested beyond its capital (the price rose before the fill): reserves nothing, not less.
    over = BotFactory(capital=Decimal("300"))
    PositionFactory(bot=over, qty=Decimal("10"), avg_entry_price=Decimal("50"))
    # An open buy without the price it was decided at counts 0: the bot keeps reserving.
    unpriced = BotFactory(capital=Decimal("200"))
    TradeFactory(bot=unpriced, status=Trade.Status.ACCEPTED, expected_price=None)
    # Stopped and idle; its history (closed position, filled and cancelled trades, an open
    # sell) does not count.
    idle = BotFactory(capital=Decimal("500"), status=Bot.Status.STOPPED)
    PositionFactory(bot=idle, closed=True)
    TradeFactory(bot=idle, status=Trade.Status.FILLED, expected_price=Decimal("150"))
    TradeFactory(bot=idle, status=Trade.Status.CANCELED, expected_price=Decimal("150"))
    TradeFactory(
        bot=idle, side=Trade.Side.SELL, status=Trade.Status.ACCEPTED,
        expected_price=Decimal("150"),
    )  # fmt: skip

    with django_assert_num_queries(1):
        figures = services.capital_figures()

    # partly: 401 + 597 = 998 invested, reserves 2; over: 500 invested, reserves 0.
    assert figures == services.CapitalFigures(
        allocated=Decimal("2000"), reserved=Decimal("702"), deployed=Decimal("1498")
    )
    assert services.capital_figures(exclude_bot_id=idle.pk) == services.CapitalFigures(
        allocated=Decimal("1500"), reserved=Decimal("202"), deployed=Decimal("1498")
    )


def test_capital_figures_take_one_query_however_many_bots(django_assert_num_queries):
    for _ in range(20):
        bot = BotFactory()
        PositionFactory(bot=bot, qty=Decimal("1"))
        TradeFactory(bot=bot, status=Trade.Status.ACCEPTED, expected_price=Decimal("10"))

    with django_assert_num_queries(1):
        figures = services.capital_figures()

    assert figures.deployed == 20 * (Decimal("150") + Decimal("100"))


def invest_everything(bot, buying_power, left: str = "0"):
    """The bot bought with all its capital: its position costs that, and buying power fell."""
    PositionFactory(bot=bot, qty=bot.capital / 100, avg_entry_price=Decimal("100"))
    buying_power(left)


def test_a_paused_fully_invested_bot_can_be_restarted(buying_power):
    buying_power("1000")
    bot = services.create_bot(bot_data(capital=Decimal("1000")), "alice")
    services.start_bot(bot, "alice")
    invest_everything(bot, buying_power)
    services.pause_bot(bot, "alice")

    services.start_bot(bot, "alice")

    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING
    summary = services.capital_summary()
    assert (summary.allocated, summary.reserved, summary.deployed, summary.available) == (
        Decimal("1000"),
        Decimal("0"),
        Decimal("1000"),
        Decimal("0"),
    )


def test_start_of_a_partly_invested_bot_needs_only_what_it_may_still_spend(buying_power):
    bot = BotFactory(name="Half", capital=Decimal("1000"), status=Bot.Status.PAUSED)
    PositionFactory(bot=bot, qty=Decimal("5"), avg_entry_price=Decimal("100"))
    buying_power("499.99")

    with pytest.raises(services.CapitalExceeded) as refused:
        services.start_bot(bot, "alice")

    assert str(refused.value) == (
        "Cannot start 'Half': buying power is $499.99, other bots reserve $0.00 and this bot "
        "needs $500.00 (its capital $1,000.00 minus $500.00 already invested). "
        "Lower its capital or free some first."
    )
    buying_power("500")
    services.start_bot(bot, "alice")
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING


def test_creating_a_bot_that_would_over_commit_is_still_refused(buying_power):
    invest_everything(BotFactory(capital=Decimal("1000")), buying_power, left="500")
    BotFactory(capital=Decimal("200"))  # idle: reserves all of it

    with pytest.raises(services.CapitalExceeded) as refused:
        services.create_bot(bot_data(capital=Decimal("300.01")), "alice")

    assert refused.value.message == (
        "Capital $300.01 exceeds the available $300.00 (buying power $500.00 − reserved $200.00)."
    )
    services.create_bot(bot_data(capital=Decimal("300")), "alice")
    assert Bot.objects.count() == 3


def test_raising_capital_is_checked_against_what_the_bot_may_still_spend(buying_power):
    bot = BotFactory(capital=Decimal("1000"))
    invest_everything(bot, buying_power, left="300")

    with pytest.raises(services.CapitalExceeded) as refused:
        services.update_bot(bot, {"capital": Decimal("1300.01")}, "alice")

    assert refused.value.fields["capital"] == (
        "Capital $1,300.01 would reserve $300.01 ($1,000.00 is already invested), more than "
        "the available $300.00 (buying power $300.00 − reserved by other bots $0.00)."
    )
    services.update_bot(bot, {"capital": Decimal("1300")}, "alice")
    bot.refresh_from_db()
    assert bot.capital == Decimal("1300")


@pytest.fixture
def broker_down(monkeypatch):
    calls = []

    def down(self):
        calls.append("get_account")
        raise BrokerUnavailable("Alpaca unreachable: ConnectTimeout")

    monkeypatch.setattr(PaperBroker, "get_account", down)
    return calls


def test_lowering_or_keeping_capital_never_asks_the_broker(buying_power, broker_down):
    bot = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=bot)

    services.update_bot(bot, {"capital": Decimal("400"), "name": "Smaller"}, "alice")
    services.update_bot(bot, {"capital": Decimal("400")}, "alice")
    assert services.validate_bot_fields({"capital": Decimal("300")}, bot=bot) == {}

    bot.refresh_from_db()
    assert (bot.name, bot.capital) == ("Smaller", Decimal("400"))
    assert broker_down == []
    with pytest.raises(services.BrokerUnreachable):
        services.update_bot(bot, {"capital": Decimal("400.01")}, "alice")


def test_lowering_capital_through_alpaca_while_its_account_fails(alpaca_fake):
    bot = BotFactory(capital=Decimal("1000"))
    PositionFactory(bot=bot)
    alpaca_fake.fail(500, times=100, method="GET", path="/v2/account")

    services.update_bot(bot, {"capital": Decimal("500")}, "alice")
    with pytest.raises(services.BrokerUnreachable):
        services.update_bot(bot, {"capital": Decimal("501")}, "alice")

    bot.refresh_from_db()
    assert bot.capital == Decimal("500")
    assert alpaca_fake.requests_to("GET", "/v2/account")  # the raise did ask, and failed


# --- exposure: symbol, timeframe and deletion --------------------------------------------------


@pytest.mark.parametrize(
    ("exposure", "changes", "message"),
    [
        ("position", {"symbol": "MSFT"},
         "'Apple' holds 10 AAPL; its symbol cannot change until it is flat."),
        ("position", {"timeframe": "1Min"},
         "'Apple' holds 10 AAPL; its timeframe cannot change until it is flat."),
        ("order", {"symbol": "MSFT"},
         "'Apple' has an open buy order for 10 AAPL (accepted); its symbol cannot change "
         "until it is flat."),
        ("order", {"timeframe": "1Min"},
         "'Apple' has an open buy order for 10 AAPL (accepted); its timeframe cannot change "
         "until it is flat."),
    ],
)  # fmt: skip
def test_symbol_and_timeframe_are_fixed_while_the_bot_is_exposed(
    buying_power, exposure, changes, message
):
    buying_power("5000")
    bot = BotFactory(name="Apple")
    if exposure == "position":
        PositionFactory(bot=bot)
    else:
        TradeFactory(bot=bot, status=Trade.Status.ACCEPTED)

    with pytest.raises(services.BotExposed) as refused:
        services.update_bot(bot, {**changes, "name": "Renamed"}, "alice")

    assert refused.value.message == message
    assert refused.value.fields == {next(iter(changes)): message}
    assert services.validate_bot_fields(changes, bot=bot) == {next(iter(changes)): message}
    bot.refresh_from_db()
    assert (bot.name, bot.symbol, bot.timeframe) == ("Apple", "AAPL", "5Min")


def test_both_settings_refused_at_once_name_both_fields():
    bot = BotFactory(name="Apple")
    PositionFactory(bot=bot)
    TradeFactory(bot=bot, side=Trade.Side.SELL, status=Trade.Status.UNKNOWN, qty=Decimal("10"))

    with pytest.raises(services.BotExposed) as refused:
        services.update_bot(bot, {"symbol": "MSFT", "timeframe": "1Hour"}, "alice")

    assert refused.value.message == (
        "'Apple' holds 10 AAPL and has an open sell order for 10 AAPL (unknown); its symbol "
        "and timeframe cannot change until it is flat."
    )
    assert set(refused.value.fields) == {"symbol", "timeframe"}


def test_an_exposed_bot_may_change_anything_else(buying_power, broker_down):
    bot = BotFactory(name="Apple", capital=Decimal("1000"))
    PositionFactory(bot=bot)
    TradeFactory(bot=bot, status=Trade.Status.PARTIALLY_FILLED, filled_qty=Decimal("3"))

    services.update_bot(
        bot,
        {"name": "Apple 2", "symbol": "AAPL", "timeframe": "5Min", "capital": Decimal("900"),
         "stop_loss_pct": Decimal("3")},
        "alice",
    )  # fmt: skip

    bot.refresh_from_db()
    assert (bot.name, bot.capital, bot.stop_loss_pct) == ("Apple 2", Decimal("900"), Decimal("3"))


def test_a_flat_bot_may_change_symbol_and_timeframe(buying_power):
    buying_power("5000")
    bot = BotFactory()
    PositionFactory(bot=bot, closed=True)
    TradeFactory(bot=bot, status=Trade.Status.FILLED)
    TradeFactory(bot=bot, status=Trade.Status.REJECTED)

    services.update_bot(bot, {"symbol": "MSFT", "timeframe": "1Hour"}, "alice")

    bot.refresh_from_db()
    assert (bot.symbol, bot.timeframe) == ("MSFT", "1Hour")


def test_update_does_not_overwrite_a_status_changed_meanwhile(buying_power):
    buying_power("5000")
    bot = BotFactory()
    stale = Bot.objects.get(pk=bot.pk)
    services.start_bot(bot, "alice")

    services.update_bot(stale, {"name": "Renamed"}, "bob")

    bot.refresh_from_db()
    assert (bot.name, bot.status) == ("Renamed", Bot.Status.RUNNING)


@pytest.mark.parametrize(
    ("exposure", "message"),
    [
        ("position", "'Apple' holds 10 AAPL; it cannot be deleted until it is flat "
                     "(close its position first)."),
        ("order", "'Apple' has an open buy order for 10 AAPL (pending); it cannot be deleted "
                  "until it is flat (let its open order fill or be cancelled first)."),
    ],
)  # fmt: skip
def test_an_exposed_bot_cannot_be_deleted(exposure, message):
    bot = BotFactory(name="Apple", status=Bot.Status.PAUSED)
    if exposure == "position":
        PositionFactory(bot=bot)
    else:
        TradeFactory(bot=bot, status=Trade.Status.PENDING, order_id=None)

    with pytest.raises(services.BotError) as refused:
        services.delete_bot(bot, "alice")

    assert refused.value.message == message
    assert Bot.objects.filter(pk=bot.pk).exists()


def test_a_flat_bot_is_deleted_and_its_books_stay():
    bot = BotFactory()
    position = PositionFactory(bot=bot, closed=True)
    trade = TradeFactory(bot=bot, status=Trade.Status.FILLED)

    services.delete_bot(bot, "alice")

    assert not Bot.objects.exists()
    position.refresh_from_db()
    trade.refresh_from_db()
    assert (position.bot, trade.bot) == (None, None)


def test_deleting_several_bots_is_all_or_nothing():
    flat = BotFactory(name="Flat")
    busy = BotFactory(name="Busy")
    TradeFactory(bot=busy, status=Trade.Status.ACCEPTED)

    with pytest.raises(services.BotError, match="Nothing was deleted"):
        services.delete_bots([flat, busy], "alice")

    assert Bot.objects.count() == 2
    assert services.delete_bots([flat], "alice") == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_never_exceed_buying_power(buying_power):
    """Six invested bots each try to raise by 40% of what is left at once: two may win."""
    bots = []
    for number in range(6):
        bot = BotFactory(name=f"Raiser {number}", capital=Decimal("1000"))
        PositionFactory(bot=bot, qty=Decimal("10"), avg_entry_price=Decimal("100"))
        bots.append(bot)
    buying_power("10000")
    start = threading.Barrier(len(bots))
    outcomes = []

    def raise_capital(bot):
        start.wait()
        try:
            services.update_bot(bot, {"capital": Decimal("5000")}, "race")
            outcomes.append("raised")
        except services.CapitalExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_capital, args=(bot,)) for bot in bots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["raised"] * 2 + ["refused"] * 4
    assert services.capital_figures().reserved == Decimal("8000")


def test_deletion_refusals_read_every_bots_exposure_in_two_queries(db, django_assert_num_queries):
    from trading.tests.factories import PositionFactory, TradeFactory

    holders = [PositionFactory().bot for _ in range(3)]
    waiting = [TradeFactory(status=Trade.Status.ACCEPTED).bot for _ in range(2)]
    flat = BotFactory()

    with django_assert_num_queries(2):
        refusals = services.deletion_refusals([*holders, *waiting, flat])

    assert len(refusals) == 5
    assert all("cannot be deleted until it is flat" in refusal for refusal in refusals)
