"""The dashboard's sync panel and Check Sync, the history page, a run's report, the admin."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import UserFactory
from bots.tests.factories import BotFactory
from reconciliation import services
from reconciliation.models import ReconciliationRun
from tradebots.broker import OrderSide, get_broker
from trading import orders

from .helpers import ListBroker, held, make_order, unreachable

pytestmark = pytest.mark.django_db

CHECK = reverse("reconciliation:check")
RUNS = reverse("reconciliation:runs")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def drift(transactional_db):
    """One order that agrees, one of ours without a Trade, one placed by hand."""
    bot = BotFactory(name="Apple RSI")
    orders.place_order(bot, "buy", Decimal("2"), "RSI buy signal")
    missing = orders.generate_client_order_id(bot)
    get_broker().submit_market_order("AAPL", Decimal("1"), OrderSide.BUY, missing)
    get_broker().submit_market_order("MSFT", Decimal("3"), OrderSide.BUY, "placed-by-hand")
    return missing


def a_run(**options) -> ReconciliationRun:
    return services.reconcile(trigger=ReconciliationRun.Trigger.COMMAND, **options)


def test_the_dashboard_panel_before_any_run(user_client):
    html = user_client.get(reverse("dashboard")).content.decode()

    panel = re.search(r'<section id="sync-panel".*?</section>', html, re.S).group(0)
    assert "Not checked yet." in panel
    assert f'hx-post="{CHECK}"' in panel and 'hx-target="#sync-result"' in panel
    assert ">Check Sync</button>" in panel


def test_the_panel_shows_the_last_run_by_itself():
    a_run(broker=ListBroker([make_order("bot-0badc0de-12345678")]))
    newest = a_run(broker=ListBroker([]))

    # No view context at all: the tag fetches what it shows.
    html = Template("{% load reconciliation %}{% sync_panel %}").render(Context({}))

    assert "0 orders synced, 0 discrepancies found" in html
    assert reverse("reconciliation:run", args=[newest.pk]) in html
    assert "In sync" in html


def test_check_sync_runs_it_and_shows_the_list(user_client, user, drift):
    response = user_client.post(CHECK, headers=HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    summary = re.search(r'data-testid="sync-summary"><strong>(.*?)</strong>', html).group(1)
    assert summary == "1 order synced, 1 discrepancy found"
    assert "3 broker orders checked, 1 of them external" in html
    row = re.search(r'<tr class="discrepancy" data-kind="missing_in_db">.*?</tr>', html, re.S)
    assert drift in row.group(0) and "Apple RSI" in row.group(0)
    assert "Missing in our books" in row.group(0) and "we have no Trade for it" in row.group(0)
    assert '<div id="sync-last-run" class="sync-last-run" hx-swap-oob="true">' in html
    run = ReconciliationRun.objects.get()
    assert (run.trigger, run.started_by) == ("manual", user.username)


def test_check_sync_without_javascript_lands_on_the_report(user_client, drift):
    response = user_client.post(CHECK)

    run = ReconciliationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("reconciliation:run", args=[run.pk])


def test_check_sync_is_post_only_and_needs_the_csrf_token(user, client):
    client.force_login(user)
    assert client.get(CHECK).status_code == 405

    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(CHECK, headers=HTMX).status_code == 403
    assert not ReconciliationRun.objects.exists()


def test_check_sync_says_when_the_broker_is_unreachable(user_client, monkeypatch):
    monkeypatch.setattr("reconciliation.services.get_broker", unreachable)

    html = user_client.post(CHECK, headers=HTMX).content.decode()

    assert 'role="alert"' in html and "The broker could not be reached" in html
    assert "Failed" in html


def test_the_history_lists_every_run(user_client):
    a_run(broker=ListBroker([]))
    a_run(broker=unreachable())
    a_run(broker=ListBroker([make_order("bot-0badc0de-12345678")]))

    html = user_client.get(RUNS).content.decode()

    rows = re.findall(r'<tr id="run-\d+" data-live-row="\d+">.*?</tr>', html, re.S)
    assert len(rows) == 3
    assert "Discrepancies" in rows[0] and "Failed" in rows[1] and "In sync" in rows[2]
    assert f'<a href="{RUNS}" aria-current="page">Reconciliation</a>' in html


def test_a_runs_report(user_client, drift):
    run = a_run()

    html = user_client.get(reverse("reconciliation:run", args=[run.pk])).content.decode()

    assert "1 order synced, 1 discrepancy found" in html
    assert "Discrepancies (1)" in html and drift in html
    assert "External orders (1)" in html and "placed-by-hand" in html
    assert "the last 100 closed orders" in html


def test_the_admin_shows_runs_read_only(client, drift):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    run = a_run()

    changelist = client.get(reverse("admin:reconciliation_reconciliationrun_changelist"))
    change = client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]))

    assert changelist.status_code == 200 and change.status_code == 200
    assert drift in change.content.decode() and "placed-by-hand" in change.content.decode()
    assert client.get(reverse("admin:reconciliation_reconciliationrun_add")).status_code == 403


def test_anonymous_users_are_sent_to_log_in(client):
    for url in (RUNS, reverse("dashboard")):
        assert client.get(url).status_code == 302
    assert client.post(CHECK).status_code == 302
    assert not ReconciliationRun.objects.exists()


def test_the_history_page_can_check_a_narrower_window(user_client):
    response = user_client.post(CHECK, {"since": "2024-06-01T14:00Z", "limit": "20"})

    run = ReconciliationRun.objects.get()
    assert response["Location"] == reverse("reconciliation:run", args=[run.pk])
    assert (run.since.isoformat(), run.limit) == ("2024-06-01T14:00:00+00:00", 20)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"since": "0001-01-01"}, "since", "Must be on or after 1970-01-01"),
        ({"since": "9999-12-31T23:59-05:00"}, "since", "Must be in the past."),
        ({"since": "last week"}, "since", "Enter an ISO 8601 date or date-time"),
        ({"limit": "0"}, "limit", "Ensure this value is greater than or equal to 1."),
    ],
)
def test_a_bad_window_is_shown_inline_and_nothing_runs(user_client, data, field, message):
    response = user_client.post(CHECK, data)

    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(rf'<div id="error-{field}" class="field-error"[^>]*>(.*?)</div>', html)
    assert message in error.group(1)
    assert f'value="{data[field]}"' in html  # what was typed stays in the field
    assert not ReconciliationRun.objects.exists()


def test_a_bad_window_from_htmx_answers_with_the_errors(user_client):
    html = user_client.post(CHECK, {"since": "0001-01-01"}, headers=HTMX).content.decode()

    assert 'data-testid="check-invalid"' in html and "Must be on or after 1970-01-01" in html
    assert not ReconciliationRun.objects.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31", "2025-01-31T00:00:00+00:00"),
        ("2025-01-31T14:00Z", "2025-01-31T14:00:00+00:00"),
        ("2025-01-31T14:00:00-05:00", "2025-01-31T14:00:00-05:00"),
        ("1970-01-01T00:00Z", "1970-01-01T00:00:00+00:00"),
    ],
)
def test_parse_since_reads_iso_dates_and_times(text, expected):
    assert services.parse_since(text).isoformat() == expected
    assert services.parse_since("  ") is None


def test_the_service_itself_refuses_an_impossible_window():
    with pytest.raises(ValidationError, match="on or after 1970-01-01"):
        a_run(since=datetime(1, 1, 1, tzinfo=UTC), broker=ListBroker([]))
    assert not ReconciliationRun.objects.exists()


def _stored_run(discrepancies: int, unmanaged: int = 0) -> ReconciliationRun:
    """A run as the service stores it, with ``discrepancies`` missing-at-the-broker trades."""
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    found = [
        {
            "kind": "missing_in_broker",
            "label": "Missing at the broker",
            "bot": {"id": None, "name": "Gone"},
            "trade_id": n,
            "order_id": f"order-{n}",
            "client_order_id": f"bot-0badc0de-{n:08}",
            "symbol": "AAPL",
            "side": "buy",
            "ours": "filled",
            "broker": None,
            "detail": f"Trade number {n} is not at the broker.",
            "submitted_at": now.isoformat(),
        }
        for n in range(discrepancies)
    ]
    holdings = [
        {"symbol": f"S{n}", "broker_qty": "5", "ours": "0", "qty": "5", "market_value": "50"}
        for n in range(unmanaged)
    ]
    return ReconciliationRun.objects.create(
        started_at=now,
        finished_at=now,
        trigger=ReconciliationRun.Trigger.SCHEDULE,
        outcome=ReconciliationRun.Outcome.DISCREPANCIES,
        discrepancies=found,
        discrepancy_count=len(found),
        unmanaged_holdings=holdings,
        unmanaged_count=len(holdings),
    )


def _discrepancy_numbers(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"Trade number (\d+) is not at the broker", html)]


def test_a_runs_discrepancies_are_paged(user_client, django_assert_max_num_queries):
    run = _stored_run(150)
    url = reverse("reconciliation:run", args=[run.pk])

    first = user_client.get(url).content.decode()
    with django_assert_max_num_queries(10):
        second = user_client.get(
            url, {"page": "2"}, headers={**HTMX, "HX-Target": "discrepancies"}
        ).content.decode()

    assert _discrepancy_numbers(first) == list(range(100))
    assert "Discrepancies (150)" in first and "Page 1 of 2" in first
    assert 'href="?page=2" hx-get="?page=2" hx-target="#discrepancies"' in first
    assert _discrepancy_numbers(second) == list(range(100, 150))
    assert "<html" not in second and "Page 2 of 2" in second


def test_the_dashboard_reads_the_last_runs_summary_without_its_lists(user_client):
    run = _stored_run(300, unmanaged=2)

    with CaptureQueriesContext(connection) as queries:
        html = user_client.get(reverse("dashboard")).content.decode()

    run_queries = [q["sql"] for q in queries if "reconciliation_reconciliationrun" in q["sql"]]
    assert len(run_queries) == 1
    for column in ReconciliationRun.LISTS:
        assert f'"{column}"' not in run_queries[0]
    assert "0 orders synced, 300 discrepancies found" in html
    assert "2 unmanaged holdings" in html
    assert reverse("reconciliation:run", args=[run.pk]) in html


def test_a_run_stores_how_many_holdings_are_unmanaged():
    run = a_run(broker=ListBroker([], positions=[held("TSLA", "4")]))

    assert run.unmanaged_count == 1 == len(run.unmanaged_holdings)
