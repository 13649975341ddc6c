"""Every page and API endpoint requires login; /healthz (and the icon) are open."""

import pytest
from django.test import Client

from accounts.tokens import create_api_token

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/system/status/", "/admin/"])
def test_anonymous_page_request_is_redirected_to_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/") or "/login/" in response["Location"]


def test_the_icon_browsers_ask_for_is_the_static_one(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"


def test_anonymous_api_request_gets_401_json(client):
    response = client.get("/api/me")

    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required", "fields": {}}


def test_unknown_api_path_gets_json_404(user_client):
    response = user_client.get("/api/no-such-endpoint")

    assert response.status_code == 404
    assert response.json() == {"error": "Not found", "fields": {}}


def test_wrong_http_method_on_api_gets_json_405(user_client):
    response = user_client.delete("/api/me")

    assert response.status_code == 405
    assert response.json()["error"] == "Method DELETE not allowed; use GET"
    assert response["Allow"] == "GET"


def test_bearer_token_authenticates_api_request(client, user):
    token = create_api_token(user.username)

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json()["username"] == user.username


def test_wrong_bearer_token_is_refused(client, user):
    create_api_token(user.username)

    response = client.get("/api/me", headers={"Authorization": "Bearer not-the-token"})

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API token", "fields": {}}


def test_token_of_inactive_user_is_refused(client, user):
    token = create_api_token(user.username)
    user.is_active = False
    user.save()

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


def test_bearer_token_does_not_open_html_pages(client, user):
    token = create_api_token(user.username)

    response = client.get("/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 302


def test_token_requests_are_csrf_exempt_but_session_requests_are_not(user):
    token = create_api_token(user.username)
    csrf_client = Client(enforce_csrf_checks=True)

    with_token = csrf_client.post("/api/me", headers={"Authorization": f"Bearer {token}"})
    csrf_client.force_login(user)
    with_session = csrf_client.post("/system/ping-worker/")

    # 405 from the view itself: the CSRF check let the token request through.
    assert with_token.status_code == 405
    assert with_session.status_code == 403


def test_login_page_renders_and_logs_in(client, user):
    from accounts.tests.factories import DEFAULT_PASSWORD

    page = client.get("/login/")
    response = client.post("/login/", {"username": user.username, "password": DEFAULT_PASSWORD})

    assert page.status_code == 200
    assert b'name="password"' in page.content
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_login_with_wrong_password_shows_an_error(client, user):
    response = client.post("/login/", {"username": user.username, "password": "wrong"})

    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_logout_requires_post_and_ends_the_session(user_client):
    response = user_client.post("/logout/")

    assert response.status_code == 302
    assert user_client.get("/").status_code == 302


def test_dashboard_renders_the_shell(user_client):
    response = user_client.get("/")
    html = response.content.decode()

    assert response.status_code == 200
    assert "<h1>Dashboard</h1>" in html
    assert "Paper exchange (simulated)" in html
    assert 'ws-connect="/ws/updates/"' in html
    assert "X-CSRFToken" in html
    assert "django_htmx/htmx-2.min.js" in html
    assert "django_htmx/ext/hx-ws-2.min.js" in html
    for label in ("Dashboard", "Bots", "Positions", "Trades", "Reconciliation"):
        assert f">{label}<" in html


def test_admin_link_only_for_staff(user_client, user):
    assert ">Admin<" not in user_client.get("/").content.decode()

    user.is_staff = True
    user.save()

    assert ">Admin<" in user_client.get("/").content.decode()


def test_a_logged_in_404_is_a_page_of_ours(user_client):
    response = user_client.get("/bots/no-such-bot/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "<title>Not found · TradeBots</title>" in html
    assert "There is no page at <code>/bots/no-such-bot/</code>" in html
    assert '<nav class="nav" aria-label="Main">' in html
