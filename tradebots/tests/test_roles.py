"""Two roles: traders change things, viewers only look. Every page action that changes something
refuses viewers (403, readable; an htmx request gets a toast), and viewers' pages do not show
those buttons and forms."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.template.loader import render_to_string
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.bootstrap import ensure_admin_user
from accounts.tests.factories import UserFactory
from bots import views as bot_views
from bots.models import Bot
from bots.tests.conftest import bot_form_data
from bots.tests.factories import BotFactory
from reconciliation import views as reconciliation_views
from reconciliation.models import ReconciliationRun
from tradebots.permissions import REFUSED_MESSAGE, TRADERS_GROUP, VIEWERS_GROUP, can_trade
from trading import live_updates
from trading import views as trading_views
from trading.models import Trade
from trading.positions import OpenPositionRow
from trading.tests.factories import PositionFactory

# Pages that only show things: everything else under these apps must require the trade role.
READ_ONLY_VIEWS = {
    bot_views.bot_list,
    bot_views.bot_detail,
    trading_views.trade_list,
    trading_views.trade_detail,
    trading_views.bot_name_options,
    trading_views.position_list,
    reconciliation_views.run_list,
    reconciliation_views.run_detail,
}
GUARDED_APPS = ("bots", "trading", "reconciliation")


def _views_of(resolver: URLResolver):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _views_of(pattern)
        elif isinstance(pattern, URLPattern):
            yield pattern.name, pattern.callback


def test_every_page_action_that_is_not_read_only_requires_the_trade_role():
    resolvers = [
        pattern
        for pattern in get_resolver().url_patterns
        if isinstance(pattern, URLResolver) and pattern.namespace in GUARDED_APPS
    ]
    assert {resolver.namespace for resolver in resolvers} == set(GUARDED_APPS)
    unguarded = [
        name
        for resolver in resolvers
        for name, view in _views_of(resolver)
        if view not in READ_ONLY_VIEWS and not getattr(view, "requires_trade", False)
    ]

    assert unguarded == []


@pytest.fixture
def books(db, buying_power):
    buying_power("100000")
    bot = BotFactory(name="Apple RSI", status=Bot.Status.RUNNING)
    position = PositionFactory(bot=bot)
    return bot, position


ACTIONS = {
    "new bot form": lambda bot, position: ("get", reverse("bots:create"), {}),
    "create bot": lambda bot, position: ("post", reverse("bots:create"), bot_form_data()),
    "validate new field": lambda bot, position: (
        "post",
        reverse("bots:validate"),
        {"_field": "capital", "capital": "10"},
    ),
    "edit form": lambda bot, position: ("get", reverse("bots:edit", args=[bot.pk]), {}),
    "edit bot": lambda bot, position: (
        "post",
        reverse("bots:edit", args=[bot.pk]),
        bot_form_data(name="Renamed"),
    ),
    "validate existing field": lambda bot, position: (
        "post",
        reverse("bots:validate-existing", args=[bot.pk]),
        {"_field": "capital", "capital": "10"},
    ),
    "delete form": lambda bot, position: ("get", reverse("bots:delete", args=[bot.pk]), {}),
    "delete bot": lambda bot, position: ("post", reverse("bots:delete", args=[bot.pk]), {}),
    "start": lambda bot, position: ("post", reverse("bots:start", args=[bot.pk]), {}),
    "pause": lambda bot, position: ("post", reverse("bots:pause", args=[bot.pk]), {}),
    "stop": lambda bot, position: ("post", reverse("bots:stop", args=[bot.pk]), {}),
    "sell": lambda bot, position: (
        "post",
        reverse("trading:close-position", args=[position.pk]),
        {"pause_bot": "true"},
    ),
    "sell unmanaged": lambda bot, position: (
        "post",
        reverse("trading:close-unmanaged", args=["AAPL"]),
        {},
    ),
    "emergency stop": lambda bot, position: ("post", reverse("trading:emergency-stop"), {}),
    "check sync": lambda bot, position: ("post", reverse("reconciliation:check"), {}),
}


def _nothing_changed(bot, position):
    bot.refresh_from_db()
    position.refresh_from_db()
    assert (bot.name, bot.status) == ("Apple RSI", Bot.Status.RUNNING)
    assert Bot.objects.count() == 1
    assert position.is_open
    assert not Trade.objects.exists()
    assert not ReconciliationRun.objects.exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_viewers_get_a_403_page_and_nothing_changes(viewer_client, books, action):
    method, url, data = ACTIONS[action](*books)

    response = getattr(viewer_client, method)(url, data)

    assert response.status_code == 403
    assert REFUSED_MESSAGE in response.content.decode()
    assert "<h1>Not allowed</h1>" in response.content.decode()
    _nothing_changed(*books)


@pytest.mark.parametrize("action", ACTIONS)
def test_htmx_requests_of_viewers_get_an_error_toast(viewer_client, books, action):
    method, url, data = ACTIONS[action](*books)

    response = getattr(viewer_client, method)(url, data, headers={"HX-Request": "true"})

    assert response.status_code == 403
    assert response["HX-Reswap"] == "none"  # the toast arrives out of band; the target stays
    html = response.content.decode()
    assert 'class="toast toast-error"' in html and REFUSED_MESSAGE in html
    _nothing_changed(*books)


def test_a_trader_may_act(user_client, books):
    bot, _ = books

    response = user_client.post(reverse("bots:pause", args=[bot.pk]), {})

    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED


PAGES_WITH_ACTIONS = {
    # page: (url, what only a trader sees)
    "bots": (
        lambda bot: reverse("bots:list"),
        lambda bot: ["New bot", reverse("bots:pause", args=[bot.pk])],
    ),
    "bot": (
        lambda bot: reverse("bots:detail", args=[bot.pk]),
        # The bot holds a position: a trader sees Delete disabled with the reason.
        lambda bot: [reverse("bots:edit", args=[bot.pk]), 'data-testid="deletion-refusal"',
                     reverse("bots:stop", args=[bot.pk])],
    ),
    "positions": (
        lambda bot: reverse("trading:positions"),
        lambda bot: ["data-confirm-sell", "Sell all &amp; pause all", 'id="sell-dialog"'],
    ),
    "dashboard": (lambda bot: reverse("dashboard"), lambda bot: [reverse("reconciliation:check")]),
    "reconciliation": (
        lambda bot: reverse("reconciliation:runs"),
        lambda bot: [reverse("reconciliation:check"), "Check Sync now</button>"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("page", PAGES_WITH_ACTIONS)
def test_viewers_pages_show_no_action(client, books, viewer, user, page):
    bot, _ = books
    url, trader_only = (part(bot) for part in PAGES_WITH_ACTIONS[page])

    client.force_login(user)
    trader_html = client.get(url).content.decode()
    client.force_login(viewer)
    viewer_html = client.get(url).content.decode()

    assert [text for text in trader_only if text not in trader_html] == []
    assert [text for text in trader_only if text in viewer_html] == []
    assert '<body class="viewer"' in viewer_html
    assert '<body class="viewer"' not in trader_html


def test_pushed_fragments_carry_their_actions_for_viewers_pages_to_hide(books):
    """Pushes go to every open page at once, rendered without a request."""
    bot, position = books

    card = render_to_string("bots/list.html#bot-card", {"bot": bot, "oob": True})
    row = live_updates.position_rows(OpenPositionRow(position))[0].replace

    assert 'class="actions trade-only"' in card and reverse("bots:pause", args=[bot.pk]) in card
    assert "trade-only" in row and "data-confirm-sell" in row


# --- giving roles ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_creates_the_two_groups():
    call_command("migrate", "accounts", "0001", verbosity=0)
    assert not Group.objects.filter(name__in=[TRADERS_GROUP, VIEWERS_GROUP]).exists()

    call_command("migrate", "accounts", verbosity=0)

    traders = Group.objects.get(name=TRADERS_GROUP)
    assert [p.natural_key() for p in traders.permissions.all()] == [("trade", "bots", "bot")]
    assert not Group.objects.get(name=VIEWERS_GROUP).permissions.exists()


@pytest.mark.django_db
def test_set_role_makes_a_user_a_viewer_or_a_trader(capsys):
    alice = UserFactory(username="alice")

    call_command("set_role", "alice", "trader")
    alice = type(alice).objects.get(pk=alice.pk)  # permissions are cached per instance
    assert can_trade(alice)
    assert list(alice.groups.values_list("name", flat=True)) == [TRADERS_GROUP]

    call_command("set_role", "alice", "viewer")
    alice = type(alice).objects.get(pk=alice.pk)
    assert not can_trade(alice)
    assert list(alice.groups.values_list("name", flat=True)) == [VIEWERS_GROUP]
    assert "alice is now a viewer." in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "trader"], "No user named 'nobody'"),
        (["alice", "admin"], "argument role: invalid choice: 'admin'"),
    ],
)
def test_set_role_refuses_unknown_users_and_roles(args, message):
    UserFactory(username="alice")

    with pytest.raises(CommandError, match=message):
        call_command("set_role", *args)


@pytest.mark.django_db
def test_the_bootstrapped_admin_is_a_trader():
    ensure_admin_user("a-long-admin-password")

    assert can_trade(type(UserFactory()).objects.get(username="admin"))


@pytest.mark.django_db
def test_a_user_in_no_group_cannot_trade():
    assert not can_trade(UserFactory())
