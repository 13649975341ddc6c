"""The WebSocket at /ws/updates/ over the real Redis channel layer, and the Celery worker."""

from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from tradebots import live
from tradebots.asgi import application
from tradebots.tasks import ping_worker

ORIGIN = (b"origin", b"http://127.0.0.1")
RECEIVE_TIMEOUT_SECONDS = 10


def test_websocket_refuses_anonymous_users(transactional_db):
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=[ORIGIN])
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_broadcast_reaches_a_logged_in_socket(transactional_db, socket_headers):

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(live.toast)("Order filled", "success")
        message = await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()

    assert 'id="toasts" hx-swap-oob="beforeend"' in message
    assert "toast-success" in message
    assert "Order filled" in message


def test_broadcast_escapes_what_it_renders(transactional_db, socket_headers):

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        await sync_to_async(live.toast)("<script>alert(1)</script>")
        message = await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)
        await communicator.disconnect()
        return message

    assert "&lt;script&gt;" in async_to_sync(scenario)()


def test_broadcast_on_commit_waits_for_the_commit(transactional_db, socket_headers):
    from django.db import transaction

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()

        def rolled_back_then_committed():
            try:
                with transaction.atomic():
                    live.toast_on_commit("never sent")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            with transaction.atomic():
                live.toast_on_commit("sent after commit")

        await sync_to_async(rolled_back_then_committed)()
        message = await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)
        nothing_else = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return message, nothing_else

    message, nothing_else = async_to_sync(scenario)()

    assert "sent after commit" in message
    assert nothing_else


def test_task_round_trips_through_a_real_worker_and_reaches_the_socket(
    transactional_db, socket_headers, celery_worker
):

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        result = await sync_to_async(ping_worker.delay)("alice")
        answer = await sync_to_async(result.get)(timeout=RECEIVE_TIMEOUT_SECONDS)
        message = await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)
        await communicator.disconnect()
        return answer, message

    answer, message = async_to_sync(scenario)()

    assert answer == "Worker answered the ping from alice."
    assert "Worker answered the ping from alice." in message


def test_ping_worker_button_reports_an_unreachable_queue(user_client, settings, monkeypatch):
    from kombu.exceptions import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(ping_worker, "delay", refuse)

    response = user_client.post("/system/ping-worker/")

    assert response.status_code == 200
    assert "Could not reach the task queue" in response.content.decode()


def test_heartbeat_from_the_worker_refreshes_the_status_card_live(
    transactional_db, socket_headers, celery_worker
):
    from tradebots import health
    from tradebots.tasks import record_heartbeat

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        await communicator.send_json_to({"watch": "dashboard"})
        await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)  # #live-watching
        result = await sync_to_async(record_heartbeat.delay)()
        await sync_to_async(result.get)(timeout=RECEIVE_TIMEOUT_SECONDS)
        message = await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()

    assert message.startswith('<section id="system-status"')
    assert health.check_worker().ok


def test_an_idle_socket_still_receives_after_the_redis_read_timeout(
    transactional_db, socket_headers
):
    """redis-py's default 5 s read timeout once killed idle consumers; they must outlive it."""
    import asyncio

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        await asyncio.sleep(6)  # longer than channels_redis's 5 s blocking pop
        await sync_to_async(live.toast)("still here")
        message = await communicator.receive_from(timeout=RECEIVE_TIMEOUT_SECONDS)
        await communicator.disconnect()
        return message

    assert "still here" in async_to_sync(scenario)()


def _recording(monkeypatch) -> list[tuple[str, dict]]:
    sent = []
    monkeypatch.setattr(live, "_deliver", sent.extend)
    return sent


def test_coalesced_pushes_send_each_once_in_its_latest_state_per_group(monkeypatch):
    sent = _recording(monkeypatch)

    def row(table, pk, text):
        return live.Row(table, pk, replace=f'<tr id="{pk}">{text}</tr>')

    with live.coalesced():
        live.push("a", lambda created: row("trades", "1", f"v1 {created}"), created=True)
        live.push("a", lambda created: row("trades", "1", f"v2 {created}"), created=False)
        live.push("b", lambda: [row("trades", "2", "b"), live.Fragment("dashboard", "<tr>x</tr>")])
        live.push("c", lambda: live.Fragment("dashboard", '<div id="summary"></div>'))
        live.toast("Filled", "success")
        live.push_each(
            "cards", "x", lambda items: [live.Fragment("bots", f"<div>{i}</div>") for i in items]
        )
        live.push_each(
            "cards", "y", lambda items: [live.Fragment("bots", f"<div>{i}</div>") for i in items]
        )
        live.push_each(
            "cards", "x", lambda items: [live.Fragment("bots", f"<div>{i}</div>") for i in items]
        )
        assert sent == []  # nothing leaves before the block ends

    html = [(group, message["html"]) for group, message in sent if message["type"] == "live.html"]
    rows = [(group, message) for group, message in sent if message["type"] == "live.rows"]
    # Per group one message per kind of element (rows, <tbody> wrappers, others).
    assert html == [
        ("dashboard", "<tr>x</tr>"),
        ("dashboard", '<div id="summary"></div>'),
        ("toasts", live.render_toast("Filled", "success")),
        ("bots", "<div>x</div><div>y</div>"),
    ]
    # A flag set by any version stays set; the content is the latest.
    ((table, message),) = rows
    assert table == "trades" and message["table"] == "trades"
    assert [(r["pk"], r["replace"]) for r in message["rows"]] == [
        ("1", '<tr id="1">v2 True</tr>'),
        ("2", '<tr id="2">b</tr>'),
    ]


def test_pushes_outside_a_coalesced_block_go_out_at_once(monkeypatch):
    sent = _recording(monkeypatch)

    live.push("a", lambda created: live.Fragment("dashboard", f"<p>{created}</p>"), created=True)
    live.push_each(
        "cards", "x", lambda items: [live.Fragment("bots", f"<div>{i}</div>") for i in items]
    )

    assert [(group, message["html"]) for group, message in sent] == [
        ("dashboard", "<p>True</p>"),
        ("bots", "<div>x</div>"),
    ]


def test_a_fragment_that_cannot_render_does_not_stop_the_others(monkeypatch, caplog):
    sent = _recording(monkeypatch)

    def broken():
        raise ValueError("template missing")

    with live.coalesced():
        live.push("bad", broken)
        live.push("good", lambda: live.Fragment("dashboard", "<div>ok</div>"))

    assert [message["html"] for _, message in sent] == ["<div>ok</div>"]
    assert "Live update bad could not be rendered" in caplog.text


def test_a_coalesced_row_is_rendered_as_the_database_holds_it_when_the_block_ends(
    transactional_db, monkeypatch
):
    from trading import live_updates
    from trading.models import Trade
    from trading.tests.factories import TradeFactory

    sent = _recording(monkeypatch)
    trade = TradeFactory(status=Trade.Status.ACCEPTED)
    sent.clear()  # the factory's own saves

    with live.coalesced():
        live_updates.trade_changed(trade, created=True)
        # Another process books the fill meanwhile (and pushes it itself).
        Trade.objects.filter(pk=trade.pk).update(status=Trade.Status.FILLED)

    ((group, message),) = sent
    (row,) = message["rows"]
    assert group == "trades"
    assert row["insert"].startswith('<tbody hx-swap-oob="afterbegin:#trade-rows">')
    for html in (row["insert"], row["replace"]):
        assert "Filled" in html and "Accepted" not in html


def test_a_flush_is_one_trip_and_a_failing_group_does_not_stop_the_others(monkeypatch, caplog):
    delivered = []

    class Layer:
        async def group_send(self, group, message):
            if group == "bad":
                raise ConnectionError("Redis went away")
            delivered.append(group)

    monkeypatch.setattr(live, "get_channel_layer", Layer)
    trips = []
    real_async_to_sync = live.async_to_sync
    monkeypatch.setattr(live, "async_to_sync", lambda f: trips.append(f) or real_async_to_sync(f))

    with live.coalesced():
        for group in ("dashboard", "bad", "toasts"):
            live.send_html(group, f"<div>{group}</div>")

    assert len(trips) == 1
    assert sorted(delivered) == ["dashboard", "toasts"]
    assert "Live update to bad could not be pushed" in caplog.text
