"""The shell as a new user meets it: real daphne, real Redis, real worker, headless Chromium."""

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.browser


def test_login_shows_the_live_dashboard_and_a_worker_toast(
    transactional_db, user, daphne_url, celery_worker, page
):
    page.goto(daphne_url + "/")

    assert "/login/" in page.url
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_selector("h1:has-text('Dashboard')")
    page.wait_for_selector("#live-indicator.live-online")
    assert page.inner_text("#live-indicator") == "Live"
    assert page.inner_text("#broker-label") == "Paper exchange (simulated)"

    page.click("text=Ping the worker")
    toast = page.wait_for_selector(".toast-success")
    assert f"Worker answered the ping from {user.username}" in toast.inner_text()


def test_wrong_password_stays_on_the_login_page(transactional_db, user, daphne_url, page):
    page.goto(daphne_url + "/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")

    assert page.wait_for_selector("[role=alert]").is_visible()
    assert "/login/" in page.url
