"""Celery entry points of backtests and optimisation grids."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import optimisation, services

# A year of minute bars fetched from Alpaca is ~10 requests; the run itself takes seconds.
RUN_SOFT_LIMIT_SECONDS, RUN_HARD_LIMIT_SECONDS = 1800, 1860


@shared_task(soft_time_limit=RUN_SOFT_LIMIT_SECONDS, time_limit=RUN_HARD_LIMIT_SECONDS)
def run_backtest(backtest_id: str) -> str:
    return services.run_backtest(backtest_id).status


@shared_task(soft_time_limit=RUN_SOFT_LIMIT_SECONDS, time_limit=RUN_HARD_LIMIT_SECONDS)
def run_optimisation(optimisation_id: str) -> None:
    """Fetch, split and fan the grid out: one task per chunk, on whichever workers are free."""
    optimisation.start(optimisation_id, dispatch=run_optimisation_chunk.delay)


@shared_task(soft_time_limit=RUN_SOFT_LIMIT_SECONDS, time_limit=RUN_HARD_LIMIT_SECONDS)
def run_optimisation_chunk(optimisation_id: str, backtest_ids: list[str]) -> None:
    optimisation.run_chunk(optimisation_id, backtest_ids)


# Finishing a grid it finds settled runs its out-of-sample test (seconds per grid).
SWEEP_SOFT_LIMIT_SECONDS, SWEEP_HARD_LIMIT_SECONDS = 540, 570
# Twice the longest a run may take: anything older still queued or running was abandoned.
ABANDONED_AFTER = timedelta(seconds=2 * RUN_HARD_LIMIT_SECONDS)


@shared_task(soft_time_limit=SWEEP_SOFT_LIMIT_SECONDS, time_limit=SWEEP_HARD_LIMIT_SECONDS)
def fail_abandoned_runs() -> int:
    """Beat's sweep for runs whose worker died (a killed worker leaves them running)."""
    return optimisation.fail_abandoned_runs(older_than=timezone.now() - ABANDONED_AFTER)
