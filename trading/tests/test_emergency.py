"""Emergency SELL (pausing the bot), the kill switch, and closing unmanaged holdings."""

import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bots.models import Bot, BotStatusChange
from bots.tests.factories import BotFactory
from tradebots.broker import OrderSide, get_broker
from tradebots.broker.paper.broker import PaperBroker
from tradebots.broker.paper.models import PaperOrder
from trading import emergency
from trading.models import Position, Trade
from trading.orders import place_order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_verification(settings):
    settings.ORDER_VERIFY_DELAY_SECONDS = 0


def holding_bot(name="Holder", symbol="AAPL", qty="5") -> tuple[Bot, Position]:
    bot = BotFactory(name=name, symbol=symbol, status=Bot.Status.RUNNING)
    place_order(bot, "buy", Decimal(qty), "RSI buy signal")
    return bot, Position.objects.get(bot=bot, is_open=True)


def test_close_sells_everything_and_pauses_the_bot(user):
    bot, position = holding_bot()

    result = emergency.close_position(position, user.username)

    trade = result.trade
    assert (trade.side, trade.qty, trade.reason) == ("sell", 5, "Manual close")
    assert trade.client_order_id.startswith(f"bot-{bot.id.hex[:8]}-")
    assert trade.status == Trade.Status.FILLED
    position.refresh_from_db()
    assert not position.is_open and position.realized_pnl is not None
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    change = BotStatusChange.objects.filter(bot=bot).first()
    assert (change.to_status, change.actor) == ("paused", user.username)
    assert change.reason == f"Emergency sell by {user.username}"
    assert result.message == "Position closed. Bot 'Holder' has been paused."


def test_the_bot_is_paused_before_its_sell_goes_out(user, monkeypatch):
    """Never "running and flat", even for the moment between the fill and the pause."""
    bot, position = holding_bot()
    status_when_sent = []
    send = emergency.send_intent

    def record_and_send(trade, **kwargs):
        status_when_sent.append(Bot.objects.get(pk=bot.pk).status)
        return send(trade, **kwargs)

    monkeypatch.setattr(emergency, "send_intent", record_and_send)

    emergency.close_position(position, user.username)

    assert status_when_sent == [Bot.Status.PAUSED]


def test_close_without_pausing_leaves_the_bot_running(user):
    bot, position = holding_bot()

    result = emergency.close_position(position, user.username, pause_bot=False)

    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING
    assert result.message == "Position closed."


def test_closing_a_closed_position_is_refused(user):
    _, position = holding_bot()
    emergency.close_position(position, user.username)

    with pytest.raises(emergency.CloseRefused, match="already closed") as refused:
        emergency.close_position(position, user.username)

    assert refused.value.status == 409
    assert Trade.objects.filter(reason="Manual close").count() == 1


def test_a_second_request_while_the_sell_is_in_flight_answers_with_that_sell(user, monkeypatch):
    _, position = holding_bot()
    in_flight = Trade.objects.create(
        bot=position.bot, position=position, symbol="AAPL", side="sell", qty=position.qty,
        reason="Manual close", client_order_id="bot-00000000-inflight", status="accepted",
    )  # fmt: skip

    result = emergency.close_position(position, user.username)

    assert result.already_in_flight and result.trade == in_flight
    assert Trade.objects.filter(side="sell").count() == 1


def test_two_simultaneous_closes_send_one_order(user):
    _, position = holding_bot()
    start = threading.Barrier(2)
    outcomes = []

    def click():
        start.wait()
        try:
            result = emergency.close_position(Position.objects.get(pk=position.pk), user.username)
            outcomes.append(("in flight" if result.already_in_flight else "sold", result.trade.pk))
        except emergency.CloseRefused as refused:
            outcomes.append(("refused", refused.status))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert PaperOrder.objects.filter(side="sell").count() == 1
    assert Trade.objects.filter(side="sell").count() == 1
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds in (["in flight", "sold"], ["refused", "sold"])


def test_a_rejected_sell_leaves_the_position_open_and_the_bot_paused(user, monkeypatch):
    """The trader asked to get out: the bot was paused first and stays so; the answer says it."""
    from tradebots.broker import OrderRejected

    bot, position = holding_bot()

    def reject(self, symbol, qty, side, client_order_id):
        raise OrderRejected("trading is halted for AAPL")

    monkeypatch.setattr(PaperBroker, "submit_market_order", reject)

    with pytest.raises(emergency.CloseRefused, match="trading is halted") as refused:
        emergency.close_position(position, user.username)

    assert refused.value.status == 502
    assert refused.value.message.endswith("The position is still open. Bot 'Holder' stays paused.")
    position.refresh_from_db()
    bot.refresh_from_db()
    assert position.is_open
    assert bot.status == Bot.Status.PAUSED
    assert Trade.objects.get(side="sell").status == Trade.Status.REJECTED


def test_the_api_closes_and_reports(user_client):
    bot, position = holding_bot()

    response = user_client.post(f"/api/positions/{position.pk}/close?pause_bot=true")
    again = user_client.post(f"/api/positions/{position.pk}/close")

    assert response.status_code == 200
    body = response.json()
    assert body["trade"]["reason"] == "Manual close"
    assert body["trade"]["status"] == "filled"
    assert body["bot"] == {"id": str(bot.pk), "name": "Holder", "status": "paused"}
    assert again.status_code == 409
    assert again.json() == {"error": "The AAPL position is already closed.", "fields": {}}


def test_the_api_validates_pause_bot(user_client):
    _, position = holding_bot()

    response = user_client.post(f"/api/positions/{position.pk}/close?pause_bot=maybe")

    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid parameters",
        "fields": {"pause_bot": ["Input should be a valid boolean, unable to interpret input"]},
    }
    assert Position.objects.get(pk=position.pk).is_open


def test_the_page_button_answers_with_a_toast(user_client):
    _, position = holding_bot()

    response = user_client.post(
        f"/trading/positions/{position.pk}/close/", {"pause_bot": "true"},
        headers={"HX-Request": "true"},
    )  # fmt: skip

    html = response.content.decode()
    assert "toast-success" in html
    assert "Position closed. Bot &#x27;Holder&#x27; has been paused." in html


def test_positions_page_has_a_sell_button_and_confirmation_per_row(user_client):
    _, position = holding_bot()

    html = user_client.get("/trading/positions/").content.decode()

    assert f'data-url="/trading/positions/{position.pk}/close/"' in html
    assert "Sell all 5 shares of AAPL at market price? Bot 'Holder' will be paused." in html
    assert 'data-confirm-label="Sell &amp; Pause Bot"' in html
    assert 'id="sell-dialog"' in html
    assert 'hx-get="/trading/emergency-stop/"' in html  # the kill switch reads its counts on open


def test_the_kill_switch_confirmation_counts_what_there_is_now(user_client):
    holding_bot()
    BotFactory(name="Idle", status=Bot.Status.RUNNING)

    html = user_client.get("/trading/emergency-stop/").content.decode()

    assert "Sell all 1 open position at market and pause all 2 running bots?" in html
    assert "<html" not in html


def test_the_kill_switch_says_when_there_is_nothing_to_do(user_client):
    html = user_client.get("/trading/emergency-stop/").content.decode()

    assert "Nothing to sell or pause: no open position and no running bot." in html
    assert "Sell all &amp; pause all" not in html


def test_an_unmanaged_holding_can_be_closed_without_touching_any_bot(user_client):
    bot, _ = holding_bot(qty="2")
    get_broker().submit_market_order("AAPL", Decimal("3"), OrderSide.BUY, "placed-by-hand")

    response = user_client.post("/trading/unmanaged/AAPL/close/", headers={"HX-Request": "true"})

    assert "Sold 3 unmanaged AAPL shares." in response.content.decode()
    (held,) = get_broker().list_positions()
    assert held.qty == 2  # what the bot owns stays
    trade = Trade.objects.get(bot=None)
    assert trade.client_order_id.startswith("manual-")
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING


def test_closing_an_unmanaged_symbol_that_is_not_there_says_so(user_client):
    response = user_client.post("/trading/unmanaged/KO/close/", headers={"HX-Request": "true"})

    assert "There is no unmanaged KO position." in response.content.decode()


def test_the_kill_switch_sells_everything_and_pauses_every_bot(user_client):
    holding_bot("One", "AAPL")
    holding_bot("Two", "MSFT")
    idle = BotFactory(name="Idle", status=Bot.Status.RUNNING)

    response = user_client.post("/trading/emergency-stop/", headers={"HX-Request": "true"})

    assert "Sold 2 position(s), paused 3 bot(s)." in response.content.decode()
    assert not Position.objects.filter(is_open=True).exists()
    assert not Bot.objects.filter(status=Bot.Status.RUNNING).exists()
    idle.refresh_from_db()
    assert idle.status == Bot.Status.PAUSED


def test_the_emergency_stop_command(monkeypatch):
    holding_bot("One", "AAPL")
    out = StringIO()

    call_command("emergency_stop", "--yes", stdout=out)

    assert "Paused One" in out.getvalue()
    assert "Sold 5 AAPL (Filled)" in out.getvalue()
    assert not Position.objects.filter(is_open=True).exists()


def test_the_emergency_stop_command_asks_first(monkeypatch):
    holding_bot("One", "AAPL")
    monkeypatch.setattr("builtins.input", lambda question: "no")

    with pytest.raises(CommandError, match="Aborted; nothing was changed."):
        call_command("emergency_stop")

    assert Position.objects.filter(is_open=True).exists()
