import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")

app = Celery("tradebots")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _import_before_forking(**kwargs):
    """Every worker imports, once before it forks its pool processes, what they all import
    anyway, so they share its pages instead of each holding its own copy: empyrical (and
    scipy.stats, ~60 MB), which the web process never imports (backtests.metrics imports it
    where figures are computed), and the channel layer's Redis backend, which brings
    cryptography (~6 MB, and ~5 MB of its library each process would otherwise touch)."""
    import channels_redis.core  # noqa: F401
    import empyrical  # noqa: F401
