"""The scheduled run: beat's entry, the Celery task, and the warning toast on new drift."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from bots.tests.factories import BotFactory
from reconciliation import services, tasks
from reconciliation.models import ReconciliationRun
from tradebots import live
from tradebots.asgi import application
from tradebots.broker import OrderSide, get_broker
from tradebots.tests.live_pages import declare
from trading import orders
from trading.tests.factories import TradeFactory

from .helpers import ListBroker, make_order, unreachable

SCHEDULE = ReconciliationRun.Trigger.SCHEDULE


@pytest.fixture
def toasts(monkeypatch):
    sent = []
    monkeypatch.setattr(
        live, "toast", lambda message, level="info", **options: sent.append((level, message))
    )
    return sent


def scheduled(broker):
    return services.reconcile(trigger=SCHEDULE, started_by="schedule", broker=broker)


def test_beat_runs_it_every_reconcile_every_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile"]

    assert entry["task"] == tasks.reconcile.name == "reconciliation.tasks.reconcile"
    assert entry["schedule"] == settings.RECONCILE_EVERY_MINUTES * 60


@pytest.mark.django_db
def test_only_new_discrepancies_are_toasted(toasts):
    bot = BotFactory()
    first = make_order(orders.generate_client_order_id(bot))
    second = make_order(orders.generate_client_order_id(bot))

    scheduled(ListBroker([first]))
    assert toasts == [
        (
            "warning",
            "Reconciliation found 1 new discrepancy between our books and the broker's orders "
            "or holdings (1 in all).",
        )
    ]

    scheduled(ListBroker([first]))  # the same one again: already reported
    assert len(toasts) == 1

    scheduled(ListBroker([first, second]))
    assert len(toasts) == 2
    assert "1 new discrepancy" in toasts[1][1] and "(2 in all)" in toasts[1][1]


@pytest.mark.django_db
def test_a_clean_or_failed_run_and_manual_runs_do_not_toast(toasts):
    bot = BotFactory()
    drift = make_order(orders.generate_client_order_id(bot))

    scheduled(ListBroker([]))
    scheduled(unreachable())
    services.reconcile(trigger=ReconciliationRun.Trigger.MANUAL, broker=ListBroker([drift]))
    assert toasts == []

    # The failed run in between is no reference: the last completed scheduled run found nothing.
    scheduled(ListBroker([drift]))
    assert len(toasts) == 1


@pytest.mark.django_db
def test_drift_that_went_away_and_came_back_is_new_again(toasts):
    drift = make_order(orders.generate_client_order_id(BotFactory()))
    scheduled(ListBroker([drift]))
    scheduled(ListBroker([]))
    scheduled(ListBroker([drift]))

    assert len(toasts) == 2


def test_the_worker_runs_the_task_and_open_pages_get_the_run_and_the_warning(
    transactional_db, client, user, celery_worker
):
    bot = BotFactory()
    TradeFactory(bot=bot)  # claims an order the broker does not have
    get_broker().submit_market_order(
        "AAPL", Decimal("1"), OrderSide.BUY, orders.generate_client_order_id(bot)
    )
    client.force_login(user)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"origin", b"http://127.0.0.1"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await declare(communicator, "dashboard")
        await declare(communicator, "reconciliation", rows=[], newest=True)
        result = await sync_to_async(tasks.reconcile.delay)()
        summary = await sync_to_async(result.get)(timeout=30)
        messages = []
        while not any("toast-warning" in message for message in messages) or not any(
            'id="run-' in message for message in messages
        ):
            messages.append(await communicator.receive_from(timeout=10))
        await communicator.disconnect()
        return summary, messages

    summary, messages = async_to_sync(scenario)()

    assert summary == "0 orders synced, 2 discrepancies found"
    last_run = next(m for m in messages if 'id="sync-last-run"' in m)
    assert 'hx-swap-oob="true"' in last_run and "0 orders synced, 2 discrepancies found" in last_run
    assert any("Reconciliation found 2 new discrepancies" in m for m in messages)
    run = ReconciliationRun.objects.get()
    run_row = next(m for m in messages if f'id="run-{run.pk}"' in m)
    assert run_row.startswith('<tbody hx-swap-oob="afterbegin:#run-rows">')
    assert (run.trigger, run.started_by) == ("schedule", "schedule")


def test_old_runs_are_pruned_but_the_latest_always_stays(db, settings):
    from datetime import timedelta

    from django.utils import timezone

    from reconciliation.models import ReconciliationRun
    from reconciliation.services import prune_runs

    settings.RECONCILE_KEEP_DAYS = 30
    now = timezone.now()

    def run_at(days_ago):
        started = now - timedelta(days=days_ago)
        return ReconciliationRun.objects.create(
            started_at=started, finished_at=started, trigger="schedule", outcome="in_sync"
        )

    old, recent = run_at(45), run_at(10)

    assert prune_runs(now) == 1
    assert list(ReconciliationRun.objects.all()) == [recent]

    recent.delete()
    lone = run_at(60)  # stale, but the only one: the dashboard still shows it
    assert prune_runs(now) == 0
    assert list(ReconciliationRun.objects.all()) == [lone]
    assert not ReconciliationRun.objects.filter(pk=old.pk).exists()
