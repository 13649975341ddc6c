from celery import shared_task

from . import services


@shared_task
def refresh_account_summary() -> None:
    """The throttled account summary push (scheduled by tradebots.account_refresh)."""
    services.push_account_summary()


@shared_task(soft_time_limit=30, time_limit=45)
def snapshot_equity() -> str | None:
    """Beat's reading of the account's value for the dashboard's chart."""
    snapshot = services.snapshot_equity()
    return str(snapshot) if snapshot else None
