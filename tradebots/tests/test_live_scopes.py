"""Each page's socket gets only what its page shows: the groups it declares, and of a table the
rows it shows (and new rows only where it shows the newest). Real Redis channel layer."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from tradebots import live
from tradebots.asgi import application
from tradebots.consumers import BAD_DECLARATION_CLOSE_CODE, BadDeclaration, parse_declaration

QUIET_SECONDS = 0.3


OOB = ' hx-swap-oob="true"'


def _row(pk, text="", insert=True):
    def render(oob=False):
        return f'<tr id="trade-{pk}"{OOB if oob else ""}>{text}</tr>'

    return live.table_row("trades", pk, render, tbody="trade-rows", insert=insert)


async def _socket(headers, *declarations):
    communicator = WebsocketCommunicator(application, "/ws/updates/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    for declaration in declarations:
        await communicator.send_json_to(declaration)
        # The socket confirms each declaration once it has joined the group.
        confirmation = await communicator.receive_from(timeout=5)
        assert confirmation.startswith('<div id="live-watching" hidden hx-swap-oob="true"')
        assert f" {declaration['watch']}" in confirmation
    return communicator


async def _received(communicator) -> list[str]:
    messages = []
    while not await communicator.receive_nothing(timeout=QUIET_SECONDS):
        messages.append(await communicator.receive_from())
    return messages


def test_a_page_gets_only_the_groups_it_declares(transactional_db, socket_headers):
    async def scenario():
        dashboard = await _socket(socket_headers, {"watch": "dashboard"})
        trades = await _socket(socket_headers, {"watch": "trades", "rows": "", "newest": "1"})
        bare = await _socket(socket_headers)
        await sync_to_async(live._send_all)(
            [live.Fragment("dashboard", '<section id="account-summary"></section>')]
        )
        await sync_to_async(live.toast)("to every page")
        got = [await _received(socket) for socket in (dashboard, trades, bare)]
        for socket in (dashboard, trades, bare):
            await socket.disconnect()
        return got

    dashboard, trades, bare = async_to_sync(scenario)()

    assert dashboard[0] == '<section id="account-summary"></section>'
    assert [len(messages) for messages in (dashboard, trades, bare)] == [2, 1, 1]
    assert all("to every page" in messages[-1] for messages in (dashboard, trades, bare))


def test_rows_go_where_they_fit_the_page(transactional_db, socket_headers):
    async def scenario():
        newest = await _socket(socket_headers, {"watch": "trades", "rows": "1 2", "newest": "1"})
        filtered = await _socket(socket_headers, {"watch": "trades", "rows": "2"})
        send = sync_to_async(live._send_all)
        # A new trade, a change to trade 2, a change to an old trade no page shows.
        await send([_row(3, "new"), _row(2, "changed", insert=False), _row(9, "old", insert=False)])
        first = [await _received(socket) for socket in (newest, filtered)]
        # The inserted row is now shown: its next change replaces it; then 1 leaves.
        await send([_row(3, "filled", insert=False), live.removed_row("trades", 1, "trade-1")])
        second = [await _received(socket) for socket in (newest, filtered)]
        for socket in (newest, filtered):
            await socket.disconnect()
        return first, second

    (newest_first, filtered_first), (newest_second, filtered_second) = async_to_sync(scenario)()

    # Lone rows and <tbody> wrappers go in separate messages (the parser re-parents mixes).
    assert newest_first == [
        '<tr id="trade-2" hx-swap-oob="true">changed</tr>',
        '<tbody hx-swap-oob="afterbegin:#trade-rows"><tr id="trade-3">new</tr></tbody>',
    ]
    assert filtered_first == ['<tr id="trade-2" hx-swap-oob="true">changed</tr>']
    assert newest_second == [
        '<tr id="trade-3" hx-swap-oob="true">filled</tr><tr id="trade-1" hx-swap-oob="delete"></tr>'
    ]
    assert filtered_second == []


def test_the_socket_confirms_what_it_watches(transactional_db, socket_headers):
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        await communicator.send_json_to({"watch": "dashboard"})
        first = await communicator.receive_from(timeout=5)
        await communicator.send_json_to({"watch": "trades", "rows": "1"})
        second = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return first, second

    first, second = async_to_sync(scenario)()

    assert first == (
        '<div id="live-watching" hidden hx-swap-oob="true" data-watching="toasts dashboard" '
        'data-declarations="1"></div>'
    )
    assert 'data-watching="toasts dashboard trades" data-declarations="2"' in second


def test_a_later_declaration_of_a_table_replaces_the_earlier(transactional_db, socket_headers):
    """Another page of the table swapped in (htmx) declares its own rows."""

    async def scenario():
        socket = await _socket(
            socket_headers,
            {"watch": "trades", "rows": "1", "newest": "1"},
            {"watch": "trades", "rows": "7"},
        )
        await sync_to_async(live._send_all)([_row(1, "one"), _row(7, "seven", insert=False)])
        got = await _received(socket)
        await socket.disconnect()
        return got

    assert async_to_sync(scenario)() == ['<tr id="trade-7" hx-swap-oob="true">seven</tr>']


def test_a_bots_page_gets_only_its_bot(transactional_db, socket_headers):
    mine, other = (
        "0b7d6a2e-1d3c-4a39-9c33-6f3d0d1b2c4e",
        "9f1e0c11-57a2-4b7e-8d55-0f6b7e1a2d33",
    )

    async def scenario():
        socket = await _socket(socket_headers, {"watch": f"bot.{mine}"})
        await sync_to_async(live._send_all)(
            [
                live.Fragment(live.bot_group(other), f'<article id="bot-{other}"></article>'),
                live.Fragment(live.bot_group(mine), f'<article id="bot-{mine}"></article>'),
            ]
        )
        got = await _received(socket)
        await socket.disconnect()
        return got

    assert async_to_sync(scenario)() == [f'<article id="bot-{mine}"></article>']


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '["trades"]',
        '{"watch": "updates"}',
        '{"watch": "user-1"}',
        '{"watch": "bot.not-a-uuid"}',
        '{"watch": "trades", "rows": "1 2 <script>"}',
        '{"watch": "trades", "rows": [1, 2]}',
        '{"watch": "trades", "rows": "' + " ".join(["1"] * 5001) + '"}',
        "[" * 100_000,
    ],
)
def test_a_declaration_that_is_not_one_of_ours_is_refused(text):
    with pytest.raises(BadDeclaration):
        parse_declaration(text)


def test_a_socket_sending_a_bad_declaration_is_closed(transactional_db, socket_headers):
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        await communicator.connect()
        await communicator.send_to(text_data='{"watch": "user-2"}')
        closed = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return closed

    assert async_to_sync(scenario)() == {
        "type": "websocket.close",
        "code": BAD_DECLARATION_CLOSE_CODE,
    }
