from celery import shared_task

from . import services
from .models import ReconciliationRun


@shared_task
def reconcile() -> str:
    """Beat's scheduled check (every RECONCILE_EVERY_MINUTES); warns open pages of new drift."""
    run = services.reconcile(trigger=ReconciliationRun.Trigger.SCHEDULE, started_by="schedule")
    services.prune_runs()
    return run.summary
