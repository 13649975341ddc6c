"""Login throttling (django-axes): LOGIN_FAILURE_LIMIT failed logins of one username from one
address lock that pair out, right password or not, for the cool-off; a success clears the count."""

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def log_in(client, username, password, address="127.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, user, settings):
    assert settings.LOGIN_FAILURE_LIMIT == 5
    for _ in range(30):
        log_in(client, user.username, "wrong-password")

    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many failed attempts; try again in 15 minutes." in html
    assert 'name="password"' in html  # still the login page, with the username kept
    assert f'name="username" value="{user.username}"' in html
    assert not logged_in(client)


def test_the_lockout_starts_at_the_limit(client, user):
    for attempt in range(1, 5):
        response = log_in(client, user.username, "wrong-password")
        assert response.status_code == 200, attempt
        assert "Please enter a correct username and password" in response.content.decode()

    assert log_in(client, user.username, "wrong-password").status_code == 429
    assert log_in(client, user.username, DEFAULT_PASSWORD).status_code == 429


def test_a_success_resets_the_count(client, user):
    for _ in range(4):
        log_in(client, user.username, "wrong-password")
    assert log_in(client, user.username, DEFAULT_PASSWORD).status_code == 302
    client.logout()

    for _ in range(4):
        log_in(client, user.username, "wrong-password")
    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert logged_in(client)


def test_only_that_username_from_that_address_is_locked_out(client, user, viewer):
    for _ in range(5):
        log_in(client, user.username, "wrong-password", address="203.0.113.7")
    assert log_in(client, user.username, DEFAULT_PASSWORD, "203.0.113.7").status_code == 429

    assert log_in(client, user.username, DEFAULT_PASSWORD, "198.51.100.2").status_code == 302
    client.logout()
    assert log_in(client, viewer.username, DEFAULT_PASSWORD, "203.0.113.7").status_code == 302


def test_the_message_gives_the_configured_cool_off(client, user, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    for _ in range(5):
        log_in(client, user.username, "wrong-password")

    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert "Too many failed attempts; try again in 1 minute." in response.content.decode()
