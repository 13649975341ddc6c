"""Every bot status change reaches the pages showing the bot over the WebSocket."""

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
