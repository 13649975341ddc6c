"""Tell the dashboards that the brokerage account changed (a fill, a bot's capital), throttled:
at most one refresh, so one broker account call, per ACCOUNT_REFRESH_SECONDS however many
changes. The services that change the account call ``account_changed()`` themselves.

The refresh is the Celery task ``accounts.tasks.refresh_account_summary``, sent by name: the
apps that change the account (``trading``, ``bots``) sit below ``accounts`` and must not import
it, and a task name is the contract Celery already has for work owned by another module."""

import logging
import time

from django.conf import settings
from django.db import transaction

from .celery import app
from .redis_client import redis_client

logger = logging.getLogger(__name__)

REFRESH_TASK = "accounts.tasks.refresh_account_summary"
REFRESH_SCHEDULED_KEY = "tradebots:account-summary-refresh"

_refresh_known_until = 0.0  # this process knows a refresh is scheduled until then (monotonic)


def account_changed() -> None:
    """Refresh every dashboard's account summary after the current transaction commits: the
    first change in a window schedules one refresh for the end of it, later ones join it."""
    transaction.on_commit(_schedule_refresh, robust=True)


def _schedule_refresh() -> None:
    global _refresh_known_until
    refresh = app.signature(REFRESH_TASK)
    window = settings.ACCOUNT_REFRESH_SECONDS
    if window <= 0:  # unthrottled (the tests): refresh here, now
        refresh.apply()
        return
    if time.monotonic() < _refresh_known_until:
        return  # the refresh scheduled for this window covers this change: no Redis call
    try:
        first = redis_client().set(
            REFRESH_SCHEDULED_KEY, "1", nx=True, px=max(1, int(window * 1000))
        )
        # The key lives a whole window; half of it is safely inside, whoever set it.
        _refresh_known_until = time.monotonic() + window / 2
        if first:
            refresh.apply_async(countdown=window)
    except Exception:  # noqa: BLE001 - the next page load shows the figures anyway
        logger.warning("Could not schedule the account summary refresh", exc_info=True)
