"""The WebSocket: only pages of this site may open it (scheme, host and port), and it closes
when the session it was opened in ends: logout, deactivation, deletion, password change."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from tradebots.asgi import application
from tradebots.same_origin import request_scheme
from tradebots.socket_sessions import SESSION_ENDED_CLOSE_CODE

RECEIVE_TIMEOUT_SECONDS = 5


def session_cookie(user) -> tuple[bytes, bytes]:
    """A browser's cookie header for a new session of ``user``, and its Client."""
    client = Client()
    client.force_login(user)
    return client, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def open_socket(headers) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, "/ws/updates/", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


async def closed_with(communicator) -> int | None:
    """The close code the server sent (None if it sent something else)."""
    message = await communicator.receive_output(RECEIVE_TIMEOUT_SECONDS)
    return message.get("code") if message["type"] == "websocket.close" else None


# --- origins ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "origin", "accepted"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("127.0.0.1", "http://127.0.0.1", True),
        ("127.0.0.1", "http://127.0.0.1:80", True),
        ("127.0.0.1:8000", "http://127.0.0.1:9999", False),  # another app on the same host
        ("127.0.0.1:8000", "http://127.0.0.1", False),
        ("127.0.0.1:8000", "https://127.0.0.1:8000", False),  # not how the page was served
        ("127.0.0.1:8000", "http://localhost:8000", False),  # an allowed host, but not this one
        ("evil.example:8000", "http://evil.example:8000", False),  # not in ALLOWED_HOSTS
        ("127.0.0.1:8000", "https://evil.example", False),
        ("127.0.0.1:8000", None, False),
        (None, "http://127.0.0.1:8000", False),
    ],
)
def test_only_this_sites_origin_may_open_the_socket(transactional_db, user, host, origin, accepted):
    _, cookie = session_cookie(user)
    headers = [cookie]
    if host:
        headers.append((b"host", host.encode()))
    if origin:
        headers.append((b"origin", origin.encode()))

    async def scenario():
        communicator, connected = await open_socket(headers)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is accepted


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://trade.example.com", True),
        ("https://trade.example.com:443", True),
        ("https://trade.example.com:8443", False),
        ("http://trade.example.com", False),
        ("https://desk.example.org", True),  # https://*.example.org
        ("https://example.org", True),
        ("https://example.org.evil.example", False),
    ],
)
def test_csrf_trusted_origins_may_open_the_socket(
    transactional_db, user, settings, origin, accepted
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://trade.example.com", "https://*.example.org"]
    _, cookie = session_cookie(user)
    headers = [cookie, (b"host", b"127.0.0.1:8000"), (b"origin", origin.encode())]

    async def scenario():
        communicator, connected = await open_socket(headers)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is accepted


@pytest.mark.parametrize(("forwarded", "origin_scheme"), [("https", "https"), ("http", "http")])
def test_behind_a_trusted_proxy_the_forwarded_scheme_counts(
    transactional_db, user, settings, forwarded, origin_scheme
):
    settings.ALLOWED_HOSTS = ["trade.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    _, cookie = session_cookie(user)
    base = [cookie, (b"host", b"trade.example.com"), (b"x-forwarded-proto", forwarded.encode())]

    async def scenario(origin):
        communicator, connected = await open_socket([*base, (b"origin", origin)])
        await communicator.disconnect()
        return connected

    other_scheme = "http" if origin_scheme == "https" else "https"
    assert async_to_sync(scenario)(f"{origin_scheme}://trade.example.com".encode()) is True
    assert async_to_sync(scenario)(f"{other_scheme}://trade.example.com".encode()) is False


def test_the_connections_own_scheme_counts_without_a_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    forged = [(b"x-forwarded-proto", b"https")]
    assert request_scheme({"scheme": "wss", "headers": []}) == "https"
    assert request_scheme({"scheme": "ws", "headers": forged}) == "http"
    assert request_scheme({"headers": []}) == "http"


# --- sessions --------------------------------------------------------------------------------


def _headers(cookie):
    return [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), cookie]


def test_logging_out_closes_that_sessions_sockets_only(transactional_db, user):
    leaving, leaving_cookie = session_cookie(user)
    _, staying_cookie = session_cookie(user)  # the same user in another browser

    async def scenario():
        leaving_socket, connected = await open_socket(_headers(leaving_cookie))
        assert connected
        staying_socket, connected = await open_socket(_headers(staying_cookie))
        assert connected
        await sync_to_async(leaving.post)("/logout/")
        code = await closed_with(leaving_socket)
        untouched = await staying_socket.receive_nothing(timeout=0.5)
        await staying_socket.disconnect()
        return code, untouched

    assert async_to_sync(scenario)() == (SESSION_ENDED_CLOSE_CODE, True)


def test_a_logged_out_sessions_cookie_cannot_open_a_socket(transactional_db, user):
    client, cookie = session_cookie(user)
    client.post("/logout/")

    async def scenario():
        communicator, connected = await open_socket(_headers(cookie))
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def _change_user_closes_every_socket(user, change):
    _, first = session_cookie(user)
    _, second = session_cookie(user)

    async def scenario():
        sockets = []
        for cookie in (first, second):
            communicator, connected = await open_socket(_headers(cookie))
            assert connected
            sockets.append(communicator)
        await sync_to_async(change)()
        return [await closed_with(communicator) for communicator in sockets]

    return async_to_sync(scenario)()


def test_deactivating_the_user_closes_its_sockets(transactional_db, user):
    def deactivate():
        user.is_active = False
        user.save()

    codes = _change_user_closes_every_socket(user, deactivate)

    assert codes == [SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_CLOSE_CODE]


def test_changing_the_password_closes_the_sessions_opened_with_the_old_one(transactional_db, user):
    def change_password():
        user.set_password("a-brand-new-passphrase")
        user.save()

    codes = _change_user_closes_every_socket(user, change_password)

    assert codes == [SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_CLOSE_CODE]


def test_deleting_the_user_closes_its_sockets(transactional_db, user):
    codes = _change_user_closes_every_socket(user, user.delete)

    assert codes == [SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_CLOSE_CODE]


def test_other_changes_to_the_user_leave_its_sockets_open(transactional_db, user, viewer):
    _, cookie = session_cookie(user)

    async def scenario():
        communicator, connected = await open_socket(_headers(cookie))
        assert connected

        def edit_and_log_in_elsewhere():
            user.first_name = "Ada"
            user.save()
            session_cookie(user)
            viewer.is_active = False  # someone else's account
            viewer.save()

        await sync_to_async(edit_and_log_in_elsewhere)()
        untouched = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return untouched

    assert async_to_sync(scenario)() is True
