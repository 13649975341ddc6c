"""Parameter grids: parsing, counting, the cap, running in chunks, ranking, out of sample."""

import pytest
from django.urls import reverse

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
        ("rsi.period = a:b:c", "a range is from:to:step"),
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
