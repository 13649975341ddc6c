"""Parameter grids: parsing, counting, the cap, running in chunks, ranking, out of sample."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backtests import optimisation
from backtests.models import Backtest, Optimisation
from backtests.schema import validate_backtest
from backtests.tests.conftest import backtest_form_data, backtest_input

pytestmark = pytest.mark.django_db


def test_a_grid_is_one_parameter_per_line_with_lists_or_ranges():
    grid = optimisation.parse_grid(
        "rsi.period = 10, 14, 20\n# a comment\n\nstop_loss_pct = 1:2:0.5\n"
    )
    assert grid == {"rsi.period": ["10", "14", "20"], "stop_loss_pct": ["1", "1.5", "2"]}
    assert optimisation.combination_count(grid) == 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one parameter"),
        ("rsi.peroid = 10", "unknown parameter 'rsi.peroid'"),
        ("rsi.period 10", "Line 1: write it as name = values"),
        ("rsi.period = 10\nrsi.period = 12", "Line 2: rsi.period is given twice"),
        ("rsi.period = 20:10:1", "positive step and to ≥ from"),
        ("rsi.period = a:b:c", "'a' is not a number"),
        ("rsi.period = 1:2", "a range is from:to:step"),
        ("rsi.period = nan:nan:1", "'nan' is not a parameter value"),
        ("rsi.period = 1:inf:1", "'inf' is not a parameter value"),
        ("rsi.period = 1e999999:1e999999:1", "is not a parameter value"),
        ("rsi.period = 10, snan", "'snan' is not a parameter value"),
    ],
)
def test_bad_grids_say_what_is_wrong(text, message):
    with pytest.raises(optimisation.GridInvalid, match=message):
        optimisation.parse_grid(text)


def test_combinations_the_schema_refuses_are_left_out():
    base = validate_backtest(backtest_input()).model_dump(mode="json")
    grid = {"ema_cross.fast": ["5", "30"], "ema_cross.slow": ["20", "40"]}
    found = optimisation.combinations(base, grid)
    # fast 30 / slow 20 is not a crossover: three remain, each with EMA enabled.
    assert [chosen for chosen, _ in found] == [
        {"ema_cross.fast": "5", "ema_cross.slow": "20"},
        {"ema_cross.fast": "5", "ema_cross.slow": "40"},
        {"ema_cross.fast": "30", "ema_cross.slow": "40"},
    ]
    assert all(request.strategy.indicators.ema_cross.enabled for _, request in found)


def test_a_grid_larger_than_the_cap_is_refused(settings):
    settings.OPTIMISATION_MAX_COMBINATIONS = 8
    base = validate_backtest(backtest_input()).model_dump(mode="json")
    with pytest.raises(optimisation.GridInvalid, match="9 combinations; at most 8"):
        optimisation.combinations(base, {"rsi.period": ["10", "14", "20"],
                                         "stop_loss_pct": ["1", "2", "3"]})  # fmt: skip


def test_the_form_counts_the_combinations_as_the_grid_is_typed(user_client):
    html = user_client.post(
        reverse("backtests:optimise-count"),
        backtest_form_data(
            grid="rsi.period = 10, 14\nstop_loss_pct = 1, 2, 3", metric="sharpe", in_sample_pct="70"
        ),  # fmt: skip
    ).content.decode()
    assert "<strong>6</strong> combinations will run." in html


def test_a_grid_over_the_cap_runs_nothing(user_client, settings):
    settings.OPTIMISATION_MAX_COMBINATIONS = 4
    grid = "rsi.period = 10, 14, 20\nstop_loss_pct = 1, 2"
    response = user_client.post(
        reverse("backtests:optimise"),
        backtest_form_data(grid=grid, metric="sharpe", in_sample_pct="70"),
    )
    assert response.status_code == 400
    assert "6 combinations; at most 4" in response.content.decode()
    assert not Optimisation.objects.exists()


def test_a_grid_runs_in_chunks_ranks_and_tests_the_best_out_of_sample(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    chunks = []

    def run_now(optimisation_id):
        def dispatch(opt_id, ids):
            chunks.append(len(ids))
            optimisation.run_chunk(opt_id, ids)

        optimisation.start(optimisation_id, dispatch)

    monkeypatch.setattr("backtests.tasks.run_optimisation.delay", run_now)
    data = backtest_form_data(
        grid="rsi.period = 8:20:1", metric="total_return_pct", in_sample_pct="60"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(reverse("backtests:optimise"), data)

    run = Optimisation.objects.get()
    assert response.url == reverse("backtests:optimisation", args=[run.pk])
    run.refresh_from_db()
    assert run.combinations == run.completed == 13
    assert chunks == [10, 3]
    assert run.status == Optimisation.Status.DONE and run.finished_at
    best = optimisation.ranked(run)
    # Ranking reads the figures, not the curves (a hundred of them weigh on the finishing worker).
    assert all("equity" in backtest.get_deferred_fields() for backtest in best)
    returns = [float(backtest.metrics["total_return_pct"]) for backtest in best]
    assert returns == sorted(returns, reverse=True)
    for backtest in best[:5]:
        assert backtest.end == run.split_at
        assert "total_return_pct" in backtest.out_of_sample_metrics
    assert all(not backtest.out_of_sample_metrics for backtest in best[5:])
    html = user_client.get(response.url).content.decode()
    assert "Ranked by Total return" in html and "rsi.period 8" in html
    assert "only the best five" in html
    # A grid's runs are not listed among the backtests, but each opens as one.
    assert Backtest.objects.filter(optimisation=run).count() == 13
    listed = user_client.get(reverse("backtests:list")).content.decode()
    assert "rsi.period 8" not in listed


def run_grid_now(monkeypatch, dispatch_twice=False):
    """Queue grids to run here: each chunk at once (twice, as a redelivered task would be)."""

    def run_now(optimisation_id):
        def dispatch(opt_id, ids):
            optimisation.run_chunk(opt_id, ids)
            if dispatch_twice:
                optimisation.run_chunk(opt_id, ids)

        optimisation.start(optimisation_id, dispatch)

    monkeypatch.setattr("backtests.tasks.run_optimisation.delay", run_now)


def start_grids_without_running_chunks(monkeypatch) -> list[list[str]]:
    """Queue grids to start here and hand out their chunks to nobody: the chunks (lists of run
    ids) are returned for the test to run, or not, as a worker would."""
    chunks = []

    def start_now(optimisation_id):
        optimisation.start(optimisation_id, lambda opt_id, ids: chunks.append(ids))

    monkeypatch.setattr("backtests.tasks.run_optimisation.delay", start_now)
    return chunks


def post_grid(user_client, django_capture_on_commit_callbacks, grid, metric="sharpe"):
    data = backtest_form_data(grid=grid, metric=metric, in_sample_pct="60")
    with django_capture_on_commit_callbacks(execute=True):
        user_client.post(reverse("backtests:optimise"), data)
    return Optimisation.objects.get()


def test_a_failing_combination_is_marked_failed_and_the_grid_still_finishes(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    run_grid_now(monkeypatch)
    store = optimisation.store_figures
    calls = []

    def fail_third(backtest, bars, result):
        calls.append(backtest.pk)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        store(backtest, bars, result)

    monkeypatch.setattr(optimisation, "store_figures", fail_third)
    run = post_grid(user_client, django_capture_on_commit_callbacks, "rsi.period = 8:12:1")

    assert run.completed == run.combinations == 5
    assert run.finished_at and run.status == Optimisation.Status.DONE
    failed = Backtest.objects.get(optimisation=run, status=Backtest.Status.FAILED)
    assert failed.message == "Failed: disk full"


def test_a_redelivered_chunk_neither_runs_twice_nor_finishes_the_grid_early(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    run_grid_now(monkeypatch, dispatch_twice=True)
    finished = []
    finish = optimisation.finish
    monkeypatch.setattr(optimisation, "finish", lambda pk: finished.append(pk) or finish(pk))

    run = post_grid(user_client, django_capture_on_commit_callbacks, "rsi.period = 8:20:1")

    assert run.completed == run.combinations == 13
    assert finished == [str(run.pk)]
    assert not Backtest.objects.filter(optimisation=run, status=Backtest.Status.QUEUED).exists()


def test_a_grid_whose_bars_cannot_be_read_fails_with_the_reason(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    run_grid_now(monkeypatch)

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(optimisation.bar_data, "count_bars", broken)
    with pytest.raises(RuntimeError):
        post_grid(user_client, django_capture_on_commit_callbacks, "rsi.period = 8, 9")
    run = Optimisation.objects.get()
    assert run.status == Optimisation.Status.FAILED and run.finished_at
    assert run.message == "Failed: database gone"


def test_ranking_by_drawdown_puts_the_shallowest_first(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    run_grid_now(monkeypatch)
    run = post_grid(user_client, django_capture_on_commit_callbacks, "rsi.period = 8:14:1",
                    metric="max_drawdown_pct")  # fmt: skip
    drawdowns = [float(b.metrics["max_drawdown_pct"]) for b in optimisation.ranked(run)]
    assert drawdowns == sorted(drawdowns, reverse=True) and drawdowns[0] > drawdowns[-1]


def test_the_grid_page_polls_its_progress_until_it_is_finished(user_client):
    run = Optimisation.objects.create(
        name="Waiting", base={}, grid={"rsi.period": ["10"]}, metric="sharpe", combinations=1
    )
    url = reverse("backtests:optimisation", args=[run.pk])
    html = user_client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in html
    polled = user_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="optimisation-progress")
    assert polled.content.decode().startswith('<div id="optimisation-progress"')


def test_runs_abandoned_by_a_dead_worker_end_as_failed_and_their_grid_finishes(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    """A worker killed mid-chunk leaves its runs running: the sweep ends them and the grid."""
    lost = start_grids_without_running_chunks(monkeypatch)
    run = post_grid(user_client, django_capture_on_commit_callbacks, "rsi.period = 8, 9, 10")
    Backtest.objects.filter(pk=lost[0][0]).update(
        status=Backtest.Status.RUNNING, started_at=timezone.now()
    )
    single = Backtest.objects.create(
        name="Alone", symbol="AAPL", timeframe="5Min", strategy={}, capital=1000,
        slippage_bps=5, start=run.created_at, end=run.created_at,
    )  # fmt: skip

    assert optimisation.fail_abandoned_runs(older_than=run.created_at) == 0
    ended = optimisation.fail_abandoned_runs(older_than=timezone.now() + timedelta(seconds=1))

    assert ended == 4
    single.refresh_from_db()
    assert single.status == Backtest.Status.FAILED and "worker stopped" in single.message
    run.refresh_from_db()
    assert run.completed == 3 and run.finished_at
    assert run.status == Optimisation.Status.FAILED
    assert run.message == "None of the 3 combinations ran."


def test_the_sweep_finishes_grids_whose_last_chunk_died_and_closes_stuck_ones(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    chunks = start_grids_without_running_chunks(monkeypatch)
    run = post_grid(user_client, django_capture_on_commit_callbacks, "rsi.period = 8, 9")
    # The chunk stored both runs, then its worker died before counting them.
    monkeypatch.setattr(optimisation, "_count_and_maybe_finish", lambda pk: None)
    optimisation.run_chunk(str(run.pk), chunks[0])
    monkeypatch.undo()
    stuck = Optimisation.objects.create(
        name="Stuck", base={}, grid={}, metric="sharpe", status=Optimisation.Status.DONE
    )

    optimisation.fail_abandoned_runs(older_than=timezone.now() + timedelta(seconds=1))

    run.refresh_from_db()
    assert run.status == Optimisation.Status.DONE and run.finished_at and run.completed == 2
    stuck.refresh_from_db()
    assert stuck.finished_at and stuck.message == "The out-of-sample test did not finish."


def test_a_run_the_sweep_ended_stays_ended_when_its_chunk_comes_back(finished_backtest):
    from backtests import services
    from backtests.simulation import simulate

    backtest = services.request_backtest(validate_backtest(backtest_input()), enqueue=False)
    Backtest.objects.filter(pk=backtest.pk).update(
        status=Backtest.Status.FAILED, message=optimisation.ABANDONED
    )
    bars = optimisation.bar_data
    bars.ensure_bars("AAPL", "5Min", backtest.start, backtest.end)
    loaded = bars.load_bars("AAPL", "5Min", backtest.start, backtest.end)
    assert (
        services.store_figures(backtest, loaded, simulate(services.params_of(backtest), loaded))
        is False
    )
    backtest.refresh_from_db()
    assert backtest.status == Backtest.Status.FAILED and backtest.metrics == {}
