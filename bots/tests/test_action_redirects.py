"""Start / pause / stop without htmx: ``next`` sends the browser back only within this site."""

import pytest
from django.http import Http404
from django.test import RequestFactory
from django.urls import reverse

from bots import views
from bots.models import Bot
from bots.tests.factories import BotFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "next_url",
    [
        "javascript:alert(document.cookie)",
        "https://evil.example.com/phish",
        "//evil.example.com/phish",
        "http://testserver.evil.example.com/",
        "bots:list",  # a URL name is not a URL
        "",
    ],
)
def test_next_outside_this_site_falls_back_to_the_bots_page(user_client, next_url):
    bot = BotFactory(status=Bot.Status.RUNNING)

    response = user_client.post(reverse("bots:pause", args=[bot.pk]), {"next": next_url})

    assert response.status_code == 302
    assert response["Location"] == reverse("bots:detail", args=[bot.pk])
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED


@pytest.mark.parametrize("next_url", ["/bots/", "/trading/positions/?page=2", "http://testserver/"])
def test_next_within_this_site_is_followed(user_client, next_url):
    bot = BotFactory(status=Bot.Status.RUNNING)

    response = user_client.post(reverse("bots:pause", args=[bot.pk]), {"next": next_url})

    assert (response.status_code, response["Location"]) == (302, next_url)


def test_an_unknown_action_is_not_found(user):
    bot = BotFactory(status=Bot.Status.RUNNING)
    request = RequestFactory().post(f"/bots/{bot.pk}/explode/")
    request.user, request.htmx = user, False

    with pytest.raises(Http404):
        views.bot_action(request, pk=bot.pk, action="explode")
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING
