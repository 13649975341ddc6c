"""A page load opens a WebSocket; a hundred tabs (or a reconnect storm after a restart) open them
at once. Every one must be accepted: joining the groups goes through one Redis connection pool per
daphne, which must not run out."""

import asyncio

import pytest
import websockets
from django.test import Client

SOCKETS = 100


async def open_sockets(ws_url: str, headers: dict) -> list[str]:
    async def open_one(number: int) -> str | None:
        try:
            async with websockets.connect(ws_url, additional_headers=headers, open_timeout=30):
                await asyncio.sleep(0.5)  # held open while the others connect
        except Exception as error:  # noqa: BLE001 - every failure is the finding
            return f"socket {number}: {type(error).__name__}: {error}"
        return None

    outcomes = await asyncio.gather(*(open_one(number) for number in range(SOCKETS)))
    return [outcome for outcome in outcomes if outcome]


@pytest.mark.django_db(transaction=True)
def test_a_hundred_simultaneous_sockets_are_all_accepted(user, start_daphne):
    browser = Client()
    browser.force_login(user)
    with start_daphne(LOG_LEVEL="WARNING") as url:
        host = url.removeprefix("http://")
        headers = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}", "Origin": url}
        failures = asyncio.run(open_sockets(f"ws://{host}/ws/updates/", headers))

    assert failures == []
