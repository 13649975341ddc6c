"""Parameter grids: every combination of some indicator parameters and stop-loss / take-profit
backtested on the first part of the range (in sample), ranked by a chosen figure, and the best
re-run on the rest (out of sample) so that over-fitting shows as the gap between the two.

The combinations are split into chunks, one Celery task each, so they run in parallel on however
many workers there are; each worker keeps the bars it loaded and the votes of the indicators it
computed, so a grid that varies one indicator computes the others once. The chunk that completes
the grid ranks it and runs the out-of-sample part (no chord: no task waits on another).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.template.loader import render_to_string
from django.utils import timezone

from bots.schema import IndicatorSet
from bots.strategy import warmup_bars
from tradebots import live

from . import bars as bar_data
from . import metrics
from .models import Backtest, Optimisation
from .schema import BacktestInvalid, BacktestSettings, validate_backtest
from .services import BacktestRefused, check_request, new_backtest, params_of, store_figures
from .simulation import Bars, NotEnoughBars, simulate

logger = logging.getLogger(__name__)

CHUNK_SIZE = 10
OUT_OF_SAMPLE_BEST = 5
PROGRESS_TEMPLATE = "backtests/optimisation.html#progress"
# Figures a grid can be ranked by: (key in the metrics, label, larger is better).
RANKINGS = {
    "sharpe": ("Sharpe ratio", True),
    "sortino": ("Sortino ratio", True),
    "calmar": ("Calmar ratio", True),
    "total_return_pct": ("Total return", True),
    "cagr_pct": ("CAGR", True),
    "profit_factor": ("Profit factor", True),
    "sqn": ("SQN", True),
    "win_rate_pct": ("Win rate", True),
    # Drawdowns are negative percents: the largest is the shallowest.
    "max_drawdown_pct": ("Max drawdown (shallowest)", True),
}
SETTING_PARAMETERS = {"stop_loss_pct": "Stop-loss %", "take_profit_pct": "Take-profit %"}


class GridInvalid(ValueError):
    pass


def parameter_names() -> dict[str, str]:
    """Every parameter a grid may vary, by its short name ("rsi.period") -> label."""
    names = {}
    for key, field in IndicatorSet.model_fields.items():
        config = field.annotation
        for param in config.model_fields:
            if param != "enabled":
                names[f"{key}.{param}"] = config.field_label(param)
    names.update(SETTING_PARAMETERS)
    return names


def _path(name: str) -> list[str]:
    if name in SETTING_PARAMETERS:
        return [name]
    key, param = name.split(".")
    return ["strategy", "indicators", key, param]


MAX_VALUE_LENGTH = 20  # "0.0001" or "1000": a value longer than this is no parameter


def _number(name: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except (ValueError, ArithmeticError):
        raise GridInvalid(f"{name}: {text.strip()[:MAX_VALUE_LENGTH]!r} is not a number.") from None
    # Finite and of a parameter's size: no NaN, infinity or 1e999999 to compute with.
    if not value.is_finite() or abs(value.adjusted()) > 6:
        raise GridInvalid(f"{name}: {text.strip()[:MAX_VALUE_LENGTH]!r} is not a parameter value.")
    return value


def _values(name: str, text: str) -> list[str]:
    """ "10, 14, 20" or a range "10:20:2" (from, to inclusive, step) -> the values as text."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise GridInvalid(f"{name}: a range is from:to:step, e.g. 10:20:2.")
        start, stop, step = (_number(name, part) for part in parts)
        if step <= 0 or stop < start:
            raise GridInvalid(f"{name}: a range needs a positive step and to ≥ from.")
        count = int((stop - start) / step) + 1
        if count > settings.OPTIMISATION_MAX_COMBINATIONS:
            raise GridInvalid(f"{name}: the range has {count:,} values; too many.")
        return [f"{(start + step * index).normalize():f}" for index in range(count)]
    values = [value.strip() for value in text.split(",") if value.strip()]
    if not values:
        raise GridInvalid(f"{name}: give values, e.g. 10, 14, 20, or a range 10:20:2.")
    if len(values) > settings.OPTIMISATION_MAX_COMBINATIONS:
        raise GridInvalid(f"{name}: {len(values):,} values; too many.")
    return [f"{_number(name, value).normalize():f}" for value in values]


def parse_grid(text: str) -> dict[str, list[str]]:
    """One parameter per line: ``rsi.period = 10, 14, 20`` or ``stop_loss_pct = 1:3:0.5``."""
    known = parameter_names()
    grid: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        name, sep, values = line.partition("=")
        name = name.strip()
        if not sep:
            raise GridInvalid(
                f"Line {number}: write it as name = values, e.g. rsi.period = 10, 14."
            )
        if name not in known:
            raise GridInvalid(
                f"Line {number}: unknown parameter {name[:40]!r}; use e.g. rsi.period, "
                f"macd.fast, stop_loss_pct."
            )
        if name in grid:
            raise GridInvalid(f"Line {number}: {name} is given twice.")
        grid[name] = _values(name, values)
    if not grid:
        raise GridInvalid("Give at least one parameter to vary, e.g. rsi.period = 10, 14, 20.")
    return grid


def combination_count(grid: dict[str, list]) -> int:
    return math.prod(len(values) for values in grid.values())


def combinations(base: dict, grid: dict[str, list]) -> list[tuple[dict, BacktestSettings]]:
    """Each combination of the grid applied to the base request, validated: (the values set,
    the request). Combinations the schema refuses (a fast period not below the slow one) are
    left out."""
    if combination_count(grid) > settings.OPTIMISATION_MAX_COMBINATIONS:
        raise GridInvalid(
            f"The grid has {combination_count(grid):,} combinations; at most "
            f"{settings.OPTIMISATION_MAX_COMBINATIONS:,} are allowed."
        )
    names = list(grid)
    valid = []
    for values in itertools.product(*(grid[name] for name in names)):
        document = _deep_copy(base)
        chosen = dict(zip(names, values, strict=True))
        for name, value in chosen.items():
            *parents, last = _path(name)
            node = document
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
            if name not in SETTING_PARAMETERS:  # varying an indicator means using it
                node["enabled"] = True
        try:
            valid.append((chosen, validate_backtest(document)))
        except BacktestInvalid:
            continue
    return valid


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


# --- asking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridRequest:
    base: BacktestSettings
    grid: dict[str, list[str]]
    metric: str
    in_sample_pct: int


def request_optimisation(request: GridRequest, user=None, bot=None) -> Optimisation:
    if request.metric not in RANKINGS:
        raise GridInvalid(f"Rank by one of: {', '.join(RANKINGS)}.")
    if not 10 <= request.in_sample_pct <= 95:
        raise GridInvalid("The in-sample part must be 10 to 95 percent of the range.")
    found = combinations(request.base.model_dump(mode="json"), request.grid)
    if not found:
        raise GridInvalid("No combination of the grid is a valid strategy.")
    try:
        base = check_request(request.base).model_dump(mode="json")
    except BacktestRefused as refused:
        raise GridInvalid(refused.message) from None
    optimisation = Optimisation.objects.create(
        name=request.base.name,
        bot=bot,
        created_by=user if user is not None and user.is_authenticated else None,
        base=base,
        grid=request.grid,
        metric=request.metric,
        in_sample_pct=request.in_sample_pct,
        combinations=len(found),
    )
    from .tasks import run_optimisation

    transaction.on_commit(lambda: run_optimisation.delay(str(optimisation.pk)))
    return optimisation


# --- running ------------------------------------------------------------------------------


def optimisation_group(optimisation_id) -> str:
    return f"optimisation.{optimisation_id}"


def push_progress(optimisation: Optimisation) -> None:
    live.send_html(
        optimisation_group(optimisation.pk),
        render_to_string(
            PROGRESS_TEMPLATE, {"optimisation": optimisation, "oob": True, "swapped": True}
        ),
    )


def _set(optimisation: Optimisation, **fields) -> None:
    for name, value in fields.items():
        setattr(optimisation, name, value)
    Optimisation.objects.filter(pk=optimisation.pk).update(**fields)
    push_progress(optimisation)


def start(optimisation_id, dispatch) -> None:
    """Fetch the bars, split the range, create a run per combination and hand the chunks to
    ``dispatch(optimisation_id, [backtest ids])`` (a Celery task's delay, or a direct call).
    Whatever goes wrong on the way ends the grid as failed with the reason, never half-started."""
    optimisation = Optimisation.objects.get(pk=optimisation_id)
    claimed = Optimisation.objects.filter(
        pk=optimisation_id, status=Optimisation.Status.QUEUED
    ).update(status=Optimisation.Status.FETCHING, message="Fetching bars")
    if not claimed:
        return  # a redelivered task: another one started it
    optimisation.status = Optimisation.Status.FETCHING
    try:
        base = validate_backtest(optimisation.base)
        push_progress(optimisation)
        bar_data.ensure_bars(
            base.symbol, base.timeframe, base.start, base.end,
            progress=lambda done: _set(optimisation, message=f"Fetching bars ({done:.0%})"),
        )  # fmt: skip
        count = bar_data.count_bars(base.symbol, base.timeframe, base.start, base.end)
        if count < 2:
            raise NotEnoughBars("The range holds too few bars to split.")
        split_index = max(1, min(count - 1, count * optimisation.in_sample_pct // 100))
        split_at = bar_data.time_of_bar(
            base.symbol, base.timeframe, base.start, base.end, split_index
        )
        with transaction.atomic():
            runs = [
                new_backtest(
                    requested.model_copy(update={"end": split_at, "name": _label(chosen)}),
                    optimisation=optimisation,
                )
                for chosen, requested in combinations(optimisation.base, optimisation.grid)
            ]
    except (bar_data.BarDataError, NotEnoughBars) as refusal:
        _fail(optimisation, str(refusal))
        return
    except Exception as error:
        logger.exception("Grid %s failed to start", optimisation.pk)
        _fail(optimisation, f"Failed: {error}")
        raise
    if not runs:
        _fail(optimisation, "No combination of the grid is a valid strategy.")
        return
    # Only from FETCHING: the sweep may have ended a grid that waited too long meanwhile.
    if not Optimisation.objects.filter(
        pk=optimisation.pk, status=Optimisation.Status.FETCHING
    ).update(status=Optimisation.Status.RUNNING, split_at=split_at, combinations=len(runs),
             message=""):  # fmt: skip
        return
    optimisation.status, optimisation.split_at = Optimisation.Status.RUNNING, split_at
    optimisation.combinations, optimisation.message = len(runs), ""
    push_progress(optimisation)
    ids = [str(run.pk) for run in runs]
    for first in range(0, len(ids), CHUNK_SIZE):
        dispatch(str(optimisation.pk), ids[first : first + CHUNK_SIZE])


def _fail(optimisation: Optimisation, message: str) -> None:
    _set(
        optimisation,
        status=Optimisation.Status.FAILED,
        message=message[:300],
        finished_at=timezone.now(),
    )


def _label(chosen: dict) -> str:
    return ", ".join(f"{name} {value}" for name, value in chosen.items())[:100]


@functools.lru_cache(maxsize=1)
def _bars(symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
    """A worker keeps the range it loaded last: every chunk of a grid reads the same."""
    return bar_data.load_bars(symbol, timeframe, start, end)


FINISHED_RUNS = (Backtest.Status.DONE, Backtest.Status.FAILED)


def run_chunk(optimisation_id, backtest_ids: list[str]) -> None:
    """Run these combinations (in sample) and store their figures; a combination that fails is
    marked failed with the reason, never left queued. The chunk that sees every run of the grid
    finished moves it on, once, whichever chunk that is and however often one is redelivered."""
    # Indicators computed for one combination serve the others of the chunk (a grid's
    # neighbouring combinations share most settings); dropped with the chunk, so a worker's
    # memory does not grow with the grid.
    indicators: dict = {}
    for backtest in Backtest.objects.filter(pk__in=backtest_ids, status=Backtest.Status.QUEUED):
        # Claimed first: a redelivered chunk running alongside skips what this one runs.
        if not Backtest.objects.filter(pk=backtest.pk, status=Backtest.Status.QUEUED).update(
            status=Backtest.Status.RUNNING, started_at=timezone.now()
        ):
            continue
        backtest.status = Backtest.Status.RUNNING
        try:
            bars = _bars(backtest.symbol, backtest.timeframe, backtest.start, backtest.end)
            result = simulate(params_of(backtest), bars, indicators)
            store_figures(backtest, bars, result)
        except NotEnoughBars as refusal:
            _fail_run(backtest, str(refusal))
        except SoftTimeLimitExceeded:
            # Out of time: this run and the chunk's others end failed now, not at the sweep.
            late = Backtest.objects.filter(
                pk__in=backtest_ids, status__in=(Backtest.Status.QUEUED, Backtest.Status.RUNNING)
            )
            late.update(status=Backtest.Status.FAILED, message=TOO_LONG, finished_at=timezone.now())
            _count_and_maybe_finish(optimisation_id)
            raise
        except Exception as error:  # noqa: BLE001 - one combination must not stall the grid
            logger.exception("Grid run %s failed", backtest.pk)
            _fail_run(backtest, f"Failed: {error}")
    _count_and_maybe_finish(optimisation_id)


TOO_LONG = "Its chunk ran out of time."


def _fail_run(backtest: Backtest, message: str) -> None:
    Backtest.objects.filter(pk=backtest.pk).update(
        status=Backtest.Status.FAILED, message=message[:300], finished_at=timezone.now()
    )


def _count_and_maybe_finish(optimisation_id) -> None:
    finished = Backtest.objects.filter(
        optimisation_id=optimisation_id, status__in=FINISHED_RUNS
    ).count()
    # Greatest: a chunk counting before another's last runs never writes a smaller count after.
    Optimisation.objects.filter(pk=optimisation_id).update(
        completed=Greatest(F("completed"), finished)
    )
    optimisation = Optimisation.objects.get(pk=optimisation_id)
    push_progress(optimisation)
    if finished < optimisation.combinations or optimisation.combinations == 0:
        return
    # Exactly one chunk moves the grid on: the one whose conditional update takes it.
    if Optimisation.objects.filter(pk=optimisation_id, status=Optimisation.Status.RUNNING).update(
        status=Optimisation.Status.DONE, message="Testing the best out of sample"
    ):
        finish(optimisation_id)


def _ranking_value(run: Backtest, metric: str) -> float | None:
    value = run.metrics.get(metric)
    if value is None and metric == "profit_factor" and run.metrics.get("trades"):
        # No losing trade: a profit factor beyond any number, if there was a profit.
        return math.inf if float(run.metrics.get("net_profit") or 0) > 0 else None
    return None if value is None else float(value)


def ranked(optimisation: Optimisation) -> list[Backtest]:
    """The grid's runs, best first by the chosen figure; runs without it last."""
    _, larger_is_better = RANKINGS[optimisation.metric]
    # Not the equity curves: nobody ranking reads them, and a grid's hundred curves of 2,000
    # points each, parsed into Python lists, were ~25 MB at the peak of the worker that finishes
    # the grid (make bench-backtest).
    runs = list(
        optimisation.backtests.filter(status=Backtest.Status.DONE).defer("equity", "drawdown")
    )

    def key(run: Backtest):
        value = _ranking_value(run, optimisation.metric)
        if value is None:
            return (1, 0.0)
        return (0, -value if larger_is_better else value)

    return sorted(runs, key=key)


def finish(optimisation_id) -> None:
    """The best combinations re-run on the out-of-sample part, next to their in-sample figures.
    Each starts from the bars before the split that its indicators need to warm up, so it can
    trade from the split on; its figures are measured from there."""
    optimisation = Optimisation.objects.get(pk=optimisation_id)
    try:
        base = validate_backtest(optimisation.base)
        best = ranked(optimisation)[:OUT_OF_SAMPLE_BEST]
        if not best:
            _fail(optimisation, f"None of the {optimisation.combinations} combinations ran.")
            return
        warmup = max((warmup_bars(params_of(run).strategy) for run in best), default=1)
        # Only the out-of-sample part and the warm-up before it, not the whole range again.
        since = bar_data.time_of_bar_before(
            base.symbol, base.timeframe, optimisation.split_at, warmup - 1
        )
        bars = bar_data.load_bars(base.symbol, base.timeframe, since, base.end)
        split = int(np.searchsorted(bars.time, int(optimisation.split_at.timestamp())))
        for run in best:
            params = params_of(run)
            window = bars.slice(max(0, split - warmup_bars(params.strategy) + 1), len(bars))
            try:
                outside = metrics.compute(simulate(params, window), window, run.capital)
            except NotEnoughBars as refusal:
                outside = {"error": str(refusal)}
            Backtest.objects.filter(pk=run.pk).update(out_of_sample_metrics=outside)
    except Exception as error:
        logger.exception("Grid %s failed out of sample", optimisation.pk)
        _set(optimisation, message=f"The out-of-sample test failed: {error}"[:300],
             finished_at=timezone.now())  # fmt: skip
        raise
    _set(optimisation, finished_at=timezone.now(), message="")


ACTIVE = (Backtest.Status.QUEUED, Backtest.Status.FETCHING, Backtest.Status.RUNNING)
ABANDONED = "Its worker stopped before it finished (or none ran it); run it again."


def fail_abandoned_runs(older_than) -> int:
    """Runs and grids left behind by a killed worker, or never run, end: a backtest queued since
    before ``older_than`` (well past the tasks' time limits), or claimed before it and still
    fetching or running, ends as failed, saying so; a grid still queued or fetching then, too.
    A running grid whose runs are all over is finished (its last chunk died before it could),
    and one whose out-of-sample test never ended is closed. Returns how many runs and grids
    were ended. One grid failing here does not keep the others from being finished."""
    now = timezone.now()
    stale = Backtest.objects.filter(
        Q(status=Backtest.Status.QUEUED, created_at__lt=older_than)
        | Q(status__in=(Backtest.Status.FETCHING, Backtest.Status.RUNNING),
            started_at__lt=older_than)
    )  # fmt: skip
    ended = stale.update(status=Backtest.Status.FAILED, message=ABANDONED, finished_at=now)
    ended += Optimisation.objects.filter(
        status__in=(Optimisation.Status.QUEUED, Optimisation.Status.FETCHING),
        created_at__lt=older_than,
    ).update(status=Optimisation.Status.FAILED, message=ABANDONED, finished_at=now)
    ended += Optimisation.objects.filter(
        status=Optimisation.Status.DONE, finished_at=None, created_at__lt=older_than
    ).update(message="The out-of-sample test did not finish.", finished_at=now)
    settled = Optimisation.objects.filter(status=Optimisation.Status.RUNNING).exclude(
        backtests__status__in=ACTIVE
    )
    for grid in settled.values_list("pk", flat=True):
        try:
            _count_and_maybe_finish(grid)
        except Exception:  # noqa: BLE001 - logged; the next grid is finished all the same
            logger.exception("Could not finish grid %s", grid)
    return ended
