from celery import shared_task

from . import services


@shared_task
def refresh_account_summary() -> None:
    """The throttled account summary push (scheduled by refresh_account_summary_on_commit)."""
    services.push_account_summary()
