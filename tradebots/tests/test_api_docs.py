"""/api/docs in a real browser with no internet: Swagger UI comes from the vendored files, reads
the schema with the session, and "Try it out" answers with the session too."""

from urllib.parse import urlparse

import pytest

from bots.tests.factories import BotFactory

pytestmark = pytest.mark.browser


def test_the_docs_work_offline_for_a_logged_in_user(
    transactional_db, user, daphne_url, page, log_in
):
    BotFactory(name="Apple RSI")
    hosts = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).hostname))
    page.goto(daphne_url + "/api/docs")
    assert "/login/" in page.url  # anonymous: the login page first
    log_in(page, daphne_url, user)

    page.goto(daphne_url + "/api/docs")

    page.wait_for_selector(".swagger-ui .info .title:has-text('TradeBots API')")
    page.click("#operations-bots-bots_api_list_bots .opblock-summary")
    page.click("#operations-bots-bots_api_list_bots .try-out__btn")
    page.click("#operations-bots-bots_api_list_bots .execute")
    answer = page.wait_for_selector("#operations-bots-bots_api_list_bots .live-responses-table")
    assert "Apple RSI" in answer.inner_text()
    assert hosts == {"127.0.0.1"}
