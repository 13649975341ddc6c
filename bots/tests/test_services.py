"""Capital rules and the lifecycle, through the services every entry point uses."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from bots import services
from bots.models import Bot, BotStatusChange
from bots.tests.factories import BotFactory
from trading.broker.base import BrokerUnavailable
from trading.broker.paper.broker import PaperBroker

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
        "(buying power $5,000.00 − allocated $3,000.00)."
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
        "Cannot start 'Apple': buying power is $3,000.00, allocated capital is $4,000.00 "
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
