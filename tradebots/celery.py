import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")

app = Celery("tradebots")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _import_before_forking(**kwargs):
    """Every worker imports empyrical (and scipy.stats, ~60 MB) once before it forks its pool
    processes, so they share its pages instead of each importing it at its first backtest; the
    web process never does (backtests.metrics imports it where figures are computed)."""
    import empyrical  # noqa: F401
