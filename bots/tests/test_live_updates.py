"""Every bot status change reaches the pages showing the bot over the WebSocket."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from bots import services
from bots.tests.factories import BotFactory
from tradebots.asgi import application
from tradebots.tests.live_pages import declare


def test_a_status_change_pushes_the_bots_card(transactional_db, socket_headers, buying_power):
    buying_power("5000")
    bot = BotFactory(name="Pushed")

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        connected, _ = await communicator.connect()
        assert connected
        await declare(communicator, "bots", rows=[bot.pk])
        await sync_to_async(services.start_bot)(bot, "alice")
        messages = []  # the account summary is refreshed too; find the card among the pushes
        while not any(m.startswith("<article") for m in messages):
            messages.append(await communicator.receive_from(timeout=10))
        await communicator.disconnect()
        return messages[-1]

    message = async_to_sync(scenario)()

    assert message.startswith(f'<article id="bot-{bot.pk}"')
    assert 'hx-swap-oob="true"' in message
    assert 'data-testid="bot-status">Running<' in message


@pytest.mark.django_db
def test_a_card_goes_to_a_bots_own_page_only_while_it_is_open(monkeypatch):
    from tradebots import live

    shown, unseen = BotFactory(name="Shown"), BotFactory(name="Unseen")
    monkeypatch.setattr(live, "watched_groups", lambda groups: {live.bot_group(shown.pk)})

    pushes = services.render_bot_cards([shown.pk, unseen.pk])

    rows = sorted(p.pk for p in pushes if isinstance(p, live.Row))
    pages = [p.group for p in pushes if isinstance(p, live.Fragment)]
    assert rows == sorted([str(shown.pk), str(unseen.pk)])  # the bots list filters its own
    assert pages == [live.bot_group(shown.pk)]
