"""Holdings: per symbol, the broker's quantity against the sum of our open positions. Ours above
the broker's is a position_mismatch; the broker's above ours is unmanaged, listed as information.
On broker positions made by hand, then through the real order path on the paper exchange and on
AlpacaBroker against the fake Alpaca server, and through the command, the API and the pages."""

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from bots.tests.factories import BotFactory
from reconciliation import schemas, services
from reconciliation.models import ReconciliationRun
from tradebots.broker import BrokerError, BrokerUnavailable, OrderSide, get_broker
from trading import orders
from trading.models import Position, Trade
from trading.tests.factories import PositionFactory, TradeFactory

from .helpers import ListBroker, held, order_for, run_command

URL = "/api/account/reconcile"
CHECK = reverse("reconciliation:check")
HTMX = {"HX-Request": "true"}


def reconcile(broker=None, trigger=ReconciliationRun.Trigger.COMMAND) -> ReconciliationRun:
    return services.reconcile(trigger=trigger, broker=broker)


def holdings(run) -> list[dict]:
    return [d for d in run.discrepancies if d["kind"] == "position_mismatch"]


def two_bots_holding_39() -> tuple:
    bot_a, bot_b = BotFactory(name="Bot A"), BotFactory(name="Bot B")
    PositionFactory(bot=bot_a, qty=Decimal("30"))
    PositionFactory(bot=bot_b, qty=Decimal("9"))
    return bot_a, bot_b


# The comparison, on broker positions made by hand


@pytest.mark.django_db
def test_books_holding_shares_the_broker_does_not_is_a_position_mismatch():
    bot_a, bot_b = two_bots_holding_39()
    broker = ListBroker(positions=[])  # the broker lists no positions at all

    run = reconcile(broker)

    assert run.outcome == ReconciliationRun.Outcome.DISCREPANCIES
    assert run.summary == "0 orders synced, 1 discrepancy found"
    (mismatch,) = run.discrepancies
    assert mismatch["kind"] == "position_mismatch" and mismatch["label"] == "Holding differs"
    assert mismatch["symbol"] == "AAPL"
    assert mismatch["bots"] == [
        {"id": str(bot_a.pk), "name": "Bot A", "qty": "30"},
        {"id": str(bot_b.pk), "name": "Bot B", "qty": "9"},
    ]
    assert (mismatch["our_qty"], mismatch["broker_qty"]) == ("39", "0")
    assert (mismatch["ours"], mismatch["broker"]) == ("39", "0")
    assert mismatch["detail"] == "Our books hold 39 AAPL (Bot A 30, Bot B 9); the broker holds 0."
    assert mismatch["bot"] == {"id": None, "name": None, "prefix": None}  # several: see bots
    assert run.holdings_checked == 1 and run.unmanaged_holdings == []
    assert broker.position_calls == 1


@pytest.mark.django_db
def test_books_holding_more_than_the_broker_is_a_mismatch_with_its_quantity():
    bot = BotFactory(name="Solo")
    PositionFactory(bot=bot, qty=Decimal("12.5"), symbol="MSFT")

    run = reconcile(ListBroker(positions=[held("MSFT", "10"), held("AAPL", "3")]))

    (mismatch,) = holdings(run)
    assert mismatch["detail"] == "Our books hold 12.5 MSFT (Solo 12.5); the broker holds 10."
    assert mismatch["bot"] == {"id": str(bot.pk), "name": "Solo", "prefix": bot.short_id}
    # AAPL: the broker's alone, information only.
    assert [h["symbol"] for h in run.unmanaged_holdings] == ["AAPL"]
    assert run.holdings_checked == 2 and run.discrepancy_count == 1


@pytest.mark.django_db
def test_the_broker_holding_more_is_unmanaged_information_not_a_discrepancy():
    PositionFactory(qty=Decimal("5"))

    run = reconcile(ListBroker(positions=[held("AAPL", "12"), held("MSFT", "3", price="400")]))

    assert run.outcome == ReconciliationRun.Outcome.IN_SYNC and run.discrepancy_count == 0
    assert run.unmanaged_holdings == [
        {"symbol": "AAPL", "qty": "7", "broker_qty": "12", "ours": "5", "market_value": "1050.00"},
        {"symbol": "MSFT", "qty": "3", "broker_qty": "3", "ours": "0", "market_value": "1200.00"},
    ]
    body = schemas.report(run)
    assert body["unmanaged_holdings"] == [
        {"symbol": "AAPL", "qty": "7", "broker_qty": "12", "ours": "5", "market_value": "1050"},
        {"symbol": "MSFT", "qty": "3", "broker_qty": "3", "ours": "0", "market_value": "1200"},
    ]
    assert body["holdings_checked"] == 2 and body["discrepancies"] == []


@pytest.mark.django_db
def test_books_equal_to_the_broker_are_clean():
    two_bots_holding_39()
    PositionFactory(qty=Decimal("4"), symbol="MSFT", bot__symbol="MSFT")
    PositionFactory(qty=Decimal("8"), symbol="NVDA", is_open=False)  # closed: not in our books

    run = reconcile(ListBroker(positions=[held("AAPL", "39"), held("MSFT", "4")]))

    assert run.outcome == ReconciliationRun.Outcome.IN_SYNC
    assert run.discrepancies == [] and run.unmanaged_holdings == []
    assert run.holdings_checked == 2


@pytest.mark.django_db
def test_a_short_at_the_broker_against_our_long_is_a_mismatch():
    PositionFactory(qty=Decimal("10"))

    run = reconcile(ListBroker(positions=[held("AAPL", "-5")]))

    (mismatch,) = holdings(run)
    assert (mismatch["our_qty"], mismatch["broker_qty"]) == ("10", "-5")


@pytest.mark.django_db
def test_positions_of_deleted_bots_count_and_are_named():
    bot = BotFactory(name="Bot A")
    PositionFactory(bot=bot, qty=Decimal("30"))
    for qty in ("4", "5"):  # two orphans, once owned by bots since deleted
        PositionFactory(bot=None, symbol="AAPL", qty=Decimal(qty))

    run = reconcile(ListBroker(positions=[]))

    (mismatch,) = holdings(run)
    assert mismatch["detail"] == (
        "Our books hold 39 AAPL (Bot A 30, no bot (deleted) 9); the broker holds 0."
    )
    assert mismatch["bots"][1] == {"id": None, "name": None, "qty": "9"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            BrokerUnavailable("Alpaca error 500: internal error"),
            "The broker could not be reached to list its positions, so holdings were not "
            "compared: Alpaca error 500: internal error",
        ),
        (
            BrokerError("Alpaca refused the request (403): forbidden"),
            "The broker refused to list its positions, so holdings were not compared: "
            "Alpaca refused the request (403): forbidden",
        ),
    ],
)
def test_positions_the_broker_cannot_list_fail_the_run_saying_so(error, message):
    two_bots_holding_39()

    run = reconcile(ListBroker(positions_error=error))

    run.refresh_from_db()
    assert run.failed and run.error == message
    assert run.summary == f"Failed: {message}"
    assert run.discrepancies == [] and run.unmanaged_holdings == []


def in_flight_sell(position: Position) -> Trade:
    return TradeFactory(
        bot=position.bot, side="sell", qty=position.qty, status=Trade.Status.ACCEPTED,
        submitted_at=timezone.now(),
    )  # fmt: skip


@pytest.mark.django_db
def test_a_sell_in_flight_is_allowed_for_until_the_sync_stalls():
    position = PositionFactory(qty=Decimal("10"))
    sell = in_flight_sell(position)
    # It filled at the broker; our sync has not booked it yet.
    broker = ListBroker([order_for(sell, status="filled", filled_qty="10", price="150")])

    run = reconcile(broker)

    assert run.discrepancies == [] and run.in_flight == 1

    stalled = timezone.now() - services.in_flight_grace() - timedelta(seconds=1)
    Trade.objects.filter(pk=sell.pk).update(updated_at=stalled)
    run = reconcile(broker)

    assert "position_mismatch" in {d["kind"] for d in run.discrepancies}
    (mismatch,) = holdings(run)
    assert mismatch["detail"].endswith("the broker holds 0.")


@pytest.mark.django_db
def test_an_in_flight_sell_covers_only_its_own_quantity():
    position = PositionFactory(qty=Decimal("10"))
    PositionFactory(qty=Decimal("6"))  # another bot on the same symbol, not selling
    sell = in_flight_sell(position)

    run = reconcile(ListBroker([order_for(sell)], positions=[]))

    (mismatch,) = holdings(run)
    assert mismatch["in_flight_sell_qty"] == "10"
    assert mismatch["detail"].endswith(
        "the broker holds 0. Sells of 10 still in flight were allowed for."
    )


# The scheduled run's toast: a holding keeps its identity (kind + symbol)


@pytest.mark.django_db
def test_a_holding_mismatch_is_toasted_once_per_symbol(monkeypatch):
    toasts = []
    monkeypatch.setattr(
        services.live, "toast", lambda message, level="info", **options: toasts.append(1)
    )
    position = PositionFactory(qty=Decimal("10"))
    schedule = ReconciliationRun.Trigger.SCHEDULE

    first = reconcile(ListBroker(positions=[]), trigger=schedule)
    assert services.discrepancy_key(holdings(first)[0]) == ("position_mismatch", "AAPL")
    Position.objects.filter(pk=position.pk).update(qty=Decimal("12"))
    reconcile(ListBroker(positions=[]), trigger=schedule)  # the same drift, grown: not new
    assert len(toasts) == 1

    PositionFactory(qty=Decimal("3"), symbol="MSFT", bot__symbol="MSFT")
    run = reconcile(ListBroker(positions=[]), trigger=schedule)

    assert len(toasts) == 2
    assert [d["symbol"] for d in services.new_discrepancies(run)] == ["MSFT"]


# Through the real order path, on both brokers


def sold_by_hand_at_the_broker() -> tuple:
    """Two bots buy 30 and 9 AAPL; someone then sells all 39 in the broker's own dashboard."""
    bot_a, bot_b = BotFactory(name="Bot A"), BotFactory(name="Bot B")
    orders.place_order(bot_a, "buy", Decimal("30"), "RSI buy signal")
    orders.place_order(bot_b, "buy", Decimal("9"), "RSI buy signal")
    assert Position.objects.filter(is_open=True).count() == 2
    get_broker().submit_market_order("AAPL", Decimal("39"), OrderSide.SELL, str(uuid.uuid4()))
    assert get_broker().list_positions() == []
    return bot_a, bot_b


def test_shares_sold_behind_our_back_are_a_position_mismatch(broker_side):
    bot_a, bot_b = sold_by_hand_at_the_broker()

    run = reconcile()

    assert run.outcome == ReconciliationRun.Outcome.DISCREPANCIES
    assert run.synced_count == 2 and run.external_count == 1
    (mismatch,) = run.discrepancies
    assert mismatch["kind"] == "position_mismatch"
    assert [(b["name"], b["qty"]) for b in mismatch["bots"]] == [("Bot A", "30"), ("Bot B", "9")]
    assert mismatch["detail"] == "Our books hold 39 AAPL (Bot A 30, Bot B 9); the broker holds 0."


def test_bought_by_hand_at_the_broker_is_unmanaged_not_a_discrepancy(broker_side):
    orders.place_order(BotFactory(), "buy", Decimal("5"), "RSI buy signal")
    get_broker().submit_market_order("AAPL", Decimal("7"), OrderSide.BUY, str(uuid.uuid4()))

    run = reconcile()

    assert run.outcome == ReconciliationRun.Outcome.IN_SYNC and run.discrepancy_count == 0
    (unmanaged,) = run.unmanaged_holdings
    assert (unmanaged["symbol"], unmanaged["qty"], unmanaged["broker_qty"], unmanaged["ours"]) == (
        "AAPL",
        "7",
        "12",
        "5",
    )


def test_books_that_agree_with_the_broker_are_clean(broker_side):
    for qty in ("30", "9"):
        orders.place_order(BotFactory(), "buy", Decimal(qty), "RSI buy signal")

    run = reconcile()

    assert run.outcome == ReconciliationRun.Outcome.IN_SYNC
    assert (run.synced_count, run.holdings_checked, run.discrepancy_count) == (2, 1, 0)
    assert run.unmanaged_holdings == []


def test_the_command_exits_1_and_lists_the_holding(broker_side):
    sold_by_hand_at_the_broker()

    output, code = run_command()

    assert code == 1
    assert "2 orders synced, 1 discrepancy found; 1 external order." in output
    assert "Compared holdings of 1 symbol; 0 unmanaged holdings (not discrepancies)." in output
    line = next(line for line in output.splitlines() if "position_mismatch" in line)
    assert "Bot A, Bot B" in line
    assert "Our books hold 39 AAPL (Bot A 30, Bot B 9); the broker holds 0." in line


def test_the_command_lists_unmanaged_holdings_and_exits_0(broker_side):
    get_broker().submit_market_order("MSFT", Decimal("3"), OrderSide.BUY, str(uuid.uuid4()))

    output, code = run_command()

    assert code == 0
    assert "Compared holdings of 1 symbol; 1 unmanaged holding (not discrepancies)." in output
    assert "MSFT   3 unmanaged: the broker holds 3, our bots 0" in output


def test_the_api_shows_the_holding(broker_side, user_client):
    bot_a, bot_b = sold_by_hand_at_the_broker()

    body = user_client.get(URL).json()

    assert body["outcome"] == "discrepancies" and body["discrepancy_count"] == 1
    (mismatch,) = body["discrepancies"]
    assert mismatch["kind"] == "position_mismatch" and mismatch["symbol"] == "AAPL"
    assert mismatch["bots"] == [
        {"id": str(bot_a.pk), "name": "Bot A", "qty": "30"},
        {"id": str(bot_b.pk), "name": "Bot B", "qty": "9"},
    ]
    assert (mismatch["our_qty"], mismatch["broker_qty"]) == ("39", "0")
    assert body["holdings_checked"] == 1 and body["unmanaged_holdings"] == []


def test_check_sync_and_the_report_show_the_holding(broker_side, user_client):
    bot_a, bot_b = sold_by_hand_at_the_broker()

    html = user_client.post(CHECK, headers=HTMX).content.decode()

    assert "2 orders synced, 1 discrepancy found" in html
    row = re.search(
        r'<tr class="discrepancy" data-kind="position_mismatch">.*?</tr>', html, re.S
    ).group(0)
    assert "Holding differs" in row and "holding AAPL" in row
    assert f'<a href="{reverse("bots:detail", args=[bot_a.pk])}">Bot A</a> 30' in row
    assert f'<a href="{reverse("bots:detail", args=[bot_b.pk])}">Bot B</a> 9' in row
    assert "Our books hold 39 AAPL (Bot A 30, Bot B 9); the broker holds 0." in row

    run = ReconciliationRun.objects.get()
    report = user_client.get(reverse("reconciliation:run", args=[run.pk])).content.decode()
    assert "Discrepancies (1)" in report and 'data-kind="position_mismatch"' in report
    assert "1 symbol compared (0 unmanaged)" in report


def test_the_report_lists_unmanaged_holdings_apart(broker_side, user_client):
    get_broker().submit_market_order("MSFT", Decimal("3"), OrderSide.BUY, str(uuid.uuid4()))
    run = reconcile()

    html = user_client.get(reverse("reconciliation:run", args=[run.pk])).content.decode()

    assert "Discrepancies (0)" in html and "Unmanaged holdings (1)" in html
    row = re.search(r'<tr class="unmanaged-holding" data-symbol="MSFT">.*?</tr>', html, re.S)
    assert row and '<td data-label="Unmanaged" class="num">3</td>' in row.group(0)


def test_a_deleted_bots_position_is_named_on_the_page(user_client):
    PositionFactory(bot=None, symbol="AAPL", qty=Decimal("9"))

    html = user_client.post(CHECK, headers=HTMX).content.decode()

    row = re.search(r'data-kind="position_mismatch">.*?</tr>', html, re.S).group(0)
    assert '<span class="muted">no bot (deleted)</span> 9' in row
    assert "Our books hold 9 AAPL (no bot (deleted) 9); the broker holds 0." in row


# Alpaca cannot list its positions


def test_positions_alpaca_cannot_list_make_the_run_say_holdings_were_not_compared(
    fake, user_client
):
    sold_by_hand_at_the_broker()
    fake.fail(500, times=100, path="/v2/positions")
    not_compared = "The broker could not be reached to list its positions, so holdings were not "

    run = reconcile()
    assert run.failed and run.error.startswith(not_compared + "compared: Alpaca error 500")

    output, code = run_command()
    assert code == 3

    response = user_client.get(URL)
    assert response.status_code == 503
    assert response.json()["error"].startswith(not_compared)

    html = user_client.post(CHECK, headers=HTMX).content.decode()
    assert 'role="alert"' in html and not_compared in html


@pytest.mark.django_db
def test_the_admin_shows_holdings_and_unmanaged_ones(client):
    from accounts.tests.factories import UserFactory

    two_bots_holding_39()
    run = reconcile(ListBroker(positions=[held("MSFT", "3")]))
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    html = client.get(
        reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
    ).content.decode()

    assert (
        "<p><strong>position_mismatch</strong> holding AAPL: "
        "Our books hold 39 AAPL (Bot A 30, Bot B 9); the broker holds 0.</p>"
    ) in html
    assert "<p>3 MSFT: the broker holds 3, our bots 0</p>" in html
