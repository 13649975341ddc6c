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


def test_coalesced_pushes_send_each_fragment_once_in_its_latest_state(monkeypatch):
    sent = []
    monkeypatch.setattr(live, "_send", sent.append)

    with live.coalesced():
        live.push(
            "trade:1", lambda created: f'<tbody id="t1" c="{created}">v1</tbody>', created=True
        )
        live.push(
            "trade:1", lambda created: f'<tbody id="t1" c="{created}">v2</tbody>', created=False
        )
        live.push("position:1", lambda: ['<tr id="p1">a</tr>', '<tbody id="p1-insert"></tbody>'])
        live.push("position:2", lambda: '<tr id="p2">b</tr>')
        live.toast("Filled", "success")
        live.push_each("cards", "a", lambda items: [f'<div id="card-{i}"></div>' for i in items])
        live.push_each("cards", "b", lambda items: [f'<div id="card-{i}"></div>' for i in items])
        live.push_each("cards", "a", lambda items: [f'<div id="card-{i}"></div>' for i in items])
        assert sent == []  # nothing leaves before the block ends

    # Rows first, then <tbody> wrappers, then other elements: one message each.
    assert sent == [
        '<tr id="p1">a</tr><tr id="p2">b</tr>',
        '<tbody id="t1" c="True">v2</tbody><tbody id="p1-insert"></tbody>',
        live.render_toast("Filled", "success") + '<div id="card-a"></div><div id="card-b"></div>',
    ]


def test_pushes_outside_a_coalesced_block_go_out_at_once(monkeypatch):
    sent = []
    monkeypatch.setattr(live, "_send", sent.append)

    live.push("trade:1", lambda created: f"<tr>{created}</tr>", created=True)
    live.push_each("cards", "a", lambda items: [f"<div>{i}</div>" for i in items])

    assert sent == ["<tr>True</tr>", "<div>a</div>"]


def test_a_fragment_that_cannot_render_does_not_stop_the_others(monkeypatch, caplog):
    sent = []
    monkeypatch.setattr(live, "_send", sent.append)

    def broken():
        raise ValueError("template missing")

    with live.coalesced():
        live.push("bad", broken)
        live.push("good", lambda: "<div>ok</div>")

    assert sent == ["<div>ok</div>"]
    assert "Live update bad could not be rendered" in caplog.text


def test_a_coalesced_row_is_rendered_as_the_database_holds_it_when_the_block_ends(
    transactional_db, monkeypatch
):
    from trading import live_updates
    from trading.models import Trade
    from trading.tests.factories import TradeFactory

    sent = []
    monkeypatch.setattr(live, "_send", sent.append)
    trade = TradeFactory(status=Trade.Status.ACCEPTED)
    sent.clear()  # the factory's own saves

    with live.coalesced():
        live_updates.trade_changed(trade, created=True)
        # Another process books the fill meanwhile (and pushes it itself).
        Trade.objects.filter(pk=trade.pk).update(status=Trade.Status.FILLED)

    (message,) = sent
    assert message.startswith('<tbody hx-swap-oob="afterbegin:#trade-rows">')
    assert "Filled" in message and "Accepted" not in message
