from celery import shared_task

from . import health, live


@shared_task
def record_heartbeat():
    """Beat's pulse: proves beat schedules and a worker runs; refreshes every dashboard's status."""
    health.record_heartbeat()
    live.broadcast(
        live.DASHBOARD_GROUP, "partials/system_status.html", {"status": health.system_status()}
    )


@shared_task
def ping_worker(requested_by: str) -> str:
    """Round trip page → Redis → worker → WebSocket, started from the dashboard."""
    message = f"Worker answered the ping from {requested_by}."
    live.toast(message, "success")
    return message
