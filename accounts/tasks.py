from celery import shared_task

from . import services


@shared_task
def refresh_account_summary() -> None:
    """The throttled account summary push (scheduled by tradebots.account_refresh)."""
    services.push_account_summary()
