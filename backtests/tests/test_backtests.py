"""Backtests end to end: asked for on a page, through the API or the command, run on the paper
exchange's bars, shown, compared and turned into a bot."""

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from backtests import bars, services
from backtests.models import Backtest, BacktestTrade, HistoricalBar
from backtests.schema import BacktestInvalid, validate_backtest
from backtests.tests.conftest import START, backtest_form_data, backtest_input
from bots.models import Bot
from bots.tests.factories import BotFactory

pytestmark = pytest.mark.django_db


# --- running -----------------------------------------------------------------------------------


def test_a_run_stores_its_trades_figures_and_curve(finished_backtest):
    backtest = finished_backtest()

    assert backtest.status == Backtest.Status.DONE and backtest.progress == 100
    assert backtest.bar_count == 3 * 24 * 12  # the paper exchange trades around the clock
    trades = list(backtest.trades.order_by("number"))
    assert trades, "RSI 14 on three days of 5-minute bars trades"
    assert backtest.metrics["trades"] == len(trades)
    assert [trade.number for trade in trades] == list(range(1, len(trades) + 1))
    assert sum(trade.pnl for trade in trades) == Decimal(backtest.metrics["net_profit"])
    assert 0 < len(backtest.equity) <= services.EQUITY_POINTS
    reasons = {trade.exit_reason.split(" (")[0] for trade in trades}
    assert reasons <= {"RSI sell signal", "Stop-loss triggered", "Take-profit triggered",
                       "End of backtest"}  # fmt: skip
    assert {row["reason"] for row in backtest.metrics["exit_reasons"]}
    assert backtest.metrics["monthly_returns"]


def test_bars_are_fetched_once_and_reused(finished_backtest, django_assert_max_num_queries):
    finished_backtest()
    stored = HistoricalBar.objects.count()

    again = finished_backtest(name="Again")

    assert HistoricalBar.objects.count() == stored
    assert again.metrics == Backtest.objects.exclude(pk=again.pk).get().metrics


def test_a_range_too_short_for_the_indicators_is_refused_before_anything_runs(db):
    with pytest.raises(
        BacktestInvalid, match="spans at most 5 bars of 1Day; the strategy's indicators need 16"
    ):
        validate_backtest(backtest_input(timeframe="1Day", end="2026-10-09"))


def test_fewer_bars_than_the_indicators_need_ends_as_failed_with_the_reason(
    finished_backtest, monkeypatch
):
    """The range could hold enough bars, but the market had fewer (nights, holidays, a
    thinly traded symbol): the run ends as failed and says why."""
    load = bars.load_bars
    monkeypatch.setattr(bars, "load_bars", lambda *args: load(*args).slice(0, 10))

    backtest = finished_backtest()

    assert backtest.status == Backtest.Status.FAILED
    assert "The range holds 10 bars; the strategy's indicators need 15" in backtest.message
    assert not backtest.trades.exists()


def test_an_unknown_symbol_runs_nothing(db):
    with pytest.raises(services.BacktestRefused, match="Unknown symbol ZZZZ"):
        services.request_backtest(validate_backtest(backtest_input(symbol="ZZZZ")), enqueue=False)
    assert not Backtest.objects.exists()


# --- pages -------------------------------------------------------------------------------------


def test_backtest_this_bot_fills_the_form_with_the_bots_settings(user_client):
    bot = BotFactory(name="Apple swing", symbol="MSFT", capital=Decimal("2500"))

    bot_page = user_client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    html = user_client.get(reverse("backtests:new") + f"?bot={bot.pk}").content.decode()

    assert f"{reverse('backtests:new')}?bot={bot.pk}" in bot_page
    assert 'value="Apple swing backtest"' in html
    assert 'value="MSFT"' in html and 'value="2500.00"' in html


def test_the_form_queues_a_backtest_and_opens_its_page(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr("backtests.tasks.run_backtest.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(reverse("backtests:new"), backtest_form_data())

    backtest = Backtest.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("backtests:detail", args=[backtest.pk])
    assert queued == [str(backtest.pk)]
    assert backtest.end == START.replace(day=START.day + 3)  # "To" is inclusive of its day
    page = user_client.get(response.url).content.decode()
    assert 'id="backtest-progress-bar"' in page
    assert f'value="backtest.{backtest.pk}"' in page  # the page watches its progress


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"end": "2026-10-01"}, "end", "End must be after the start"),
        ({"symbol": "ZZZZ"}, "symbol", "Unknown symbol ZZZZ."),
        ({"rsi_period": "1"}, "rsi_period", "RSI period must be at least 2."),
        ({"start": "2020-01-01", "timeframe": "1Min"}, None, "at most 1,000,000 are allowed"),
        ({"commission_bps": "-1"}, "commission_bps", "must be at least 0"),
    ],
)
def test_bad_input_is_shown_inline_and_runs_nothing(user_client, change, field, message):
    response = user_client.post(reverse("backtests:new"), backtest_form_data(**change))

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    if field:
        assert f'id="error-{field}"' in html
    assert not Backtest.objects.exists()


def test_the_result_page_shows_every_figure_and_table(
    user_client, finished_backtest, django_assert_max_num_queries
):
    backtest = finished_backtest()

    with django_assert_max_num_queries(20):
        html = user_client.get(reverse("backtests:detail", args=[backtest.pk])).content.decode()

    for label in ("Total return", "CAGR", "Buy &amp; hold return", "Sharpe ratio", "Sortino ratio",
                  "Calmar ratio", "Max drawdown", "Max drawdown duration", "Exposure time",
                  "Win rate", "Profit factor", "Expectancy", "Best trade", "Worst trade",
                  "Average holding time", "SQN"):  # fmt: skip
        assert f"<dt>{label}" in html, label
    assert 'data-equity-chart="backtest-equity-data"' in html
    assert 'id="backtest-equity-data"' in html and 'id="bot-chart-data"' in html
    assert "Exits by reason" in html and "Monthly returns" in html
    assert "Create a bot with this configuration" in html


def test_trades_page_by_number_and_the_chart_around_a_trade(user_client, finished_backtest):
    backtest = finished_backtest(timeframe="1Min", start=START.isoformat(),
                                 end=START.replace(day=START.day + 2).isoformat())  # fmt: skip
    url = reverse("backtests:detail", args=[backtest.pk])
    count = backtest.trades.count()
    assert count > 50, "needs more than one page of trades"

    second = user_client.get(url + "?after=50", HTTP_HX_REQUEST="true",
                             HTTP_HX_TARGET="backtest-trades").content.decode()  # fmt: skip
    chart = user_client.get(url + "?trade=51", HTTP_HX_REQUEST="true",
                            HTTP_HX_TARGET="backtest-price-chart").content.decode()  # fmt: skip

    assert second.startswith('<div id="backtest-trades">')
    assert ">51</td>" in second and ">50</td>" not in second
    assert "around trade #51" in chart
    data = json.loads(chart.split('id="bot-chart-data" type="application/json">')[1].split("<")[0])
    trade = backtest.trades.get(number=51)
    assert {fill["price"] for fill in data["fills"]} >= {str(trade.entry_price.normalize())}


def test_compare_shows_runs_side_by_side(user_client, finished_backtest):
    first = finished_backtest(name="Tight stop", stop_loss_pct="1")
    second = finished_backtest(name="Loose stop", stop_loss_pct="5")

    html = user_client.get(
        reverse("backtests:compare") + f"?id={first.pk}&id={second.pk}&id=not-a-uuid"
    ).content.decode()

    assert "Tight stop" in html and "Loose stop" in html
    assert 'data-compare-chart="compare-curves"' in html
    curves = json.loads(html.split('id="compare-curves" type="application/json">')[1].split("<")[0])
    assert [curve["name"] for curve in curves] == ["Tight stop", "Loose stop"]


def test_compare_needs_two_finished_runs(user_client, finished_backtest):
    only = finished_backtest()
    html = user_client.get(reverse("backtests:compare") + f"?id={only.pk}").content.decode()
    assert "Choose at least two finished backtests" in html


def test_create_a_bot_from_a_result_goes_through_the_capital_check(
    user_client, finished_backtest, buying_power
):
    backtest = finished_backtest()
    buying_power("5000")

    refused = user_client.post(
        reverse("backtests:create-bot", args=[backtest.pk]), {"name": "Too big"}, follow=True
    )
    assert "No bot created" in refused.content.decode()
    assert not Bot.objects.exists()

    buying_power("50000")
    response = user_client.post(
        reverse("backtests:create-bot", args=[backtest.pk]), {"name": "From the backtest"}
    )
    bot = Bot.objects.get()
    assert response.url == reverse("bots:detail", args=[bot.pk])
    assert bot.name == "From the backtest" and bot.status == Bot.Status.STOPPED
    assert bot.strategy == backtest.strategy and bot.stop_loss_pct == Decimal("2")
    assert bot.timeframe == "5Min" and bot.capital == Decimal("10000")


def test_apply_a_result_to_a_bot(user_client, finished_backtest, buying_power):
    buying_power("50000")
    bot = BotFactory(name="Keeper", capital=Decimal("10000"))
    backtest = finished_backtest(take_profit_pct="7")

    user_client.post(reverse("backtests:apply", args=[backtest.pk]), {"bot": str(bot.pk)})

    bot.refresh_from_db()
    assert bot.name == "Keeper" and bot.take_profit_pct == Decimal("7")
    assert bot.strategy == backtest.strategy and bot.timeframe == "5Min"


def test_viewers_see_results_but_run_and_create_nothing(viewer_client, finished_backtest):
    backtest = finished_backtest()
    refused = viewer_client.post(reverse("backtests:new"), backtest_form_data())
    assert refused.status_code == 403 and Backtest.objects.count() == 1
    assert viewer_client.get(reverse("backtests:detail", args=[backtest.pk])).status_code == 200
    html = viewer_client.get(reverse("backtests:detail", args=[backtest.pk])).content.decode()
    assert "Create a bot with this configuration" not in html
    response = viewer_client.post(reverse("backtests:create-bot", args=[backtest.pk]))
    assert response.status_code == 403 and not Bot.objects.exists()


def test_the_list_pages_by_keyset(user_client, finished_backtest):
    backtest = finished_backtest()
    html = user_client.get(reverse("backtests:list")).content.decode()
    assert reverse("backtests:detail", args=[backtest.pk]) in html
    assert "Compare selected" in html


# --- API ---------------------------------------------------------------------------------------


def test_api_queues_and_reports_a_backtest(
    user_client, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("backtests.tasks.run_backtest.delay", services.run_backtest)
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(
            "/api/backtests", backtest_input(), content_type="application/json"
        )

    assert response.status_code == 202, response.content
    created = response.json()
    assert created["status"] == "queued"
    document = user_client.get(f"/api/backtests/{created['id']}").json()
    assert document["status"] == "done"
    assert document["metrics"]["trades"] == len(document["trades"]) > 0
    assert document["trades"][0]["entry_reason"] == "RSI buy signal"
    assert len(document["equity_curve"]) > 0
    assert document["strategy"]["indicators"]["rsi"]["enabled"] is True
    listed = user_client.get("/api/backtests").json()
    assert [item["id"] for item in listed["results"]] == [created["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end": "2020-01-01"}, "end"),
        ({"symbol": "ZZZZ"}, "symbol"),
        ({"strategy": {"indicators": {}}}, "strategy"),
        ({"bot_id": "00000000-0000-0000-0000-000000000000"}, "bot_id"),
    ],
)
def test_api_refuses_bad_input_with_fields(user_client, change, field):
    response = user_client.post(
        "/api/backtests", backtest_input(**change), content_type="application/json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] and field in body["fields"]
    assert not Backtest.objects.exists()


def test_api_needs_a_login(client):
    assert client.get("/api/backtests").status_code == 401


# --- the command -------------------------------------------------------------------------------


def test_command_backtests_a_bot_and_prints_its_figures(capsys):
    bot = BotFactory(name="Cmd", symbol="AAPL", stop_loss_pct=Decimal("2"))
    call_command("backtest", "--bot", str(bot.pk), "--start", "2026-10-05", "--end", "2026-10-07")
    out = capsys.readouterr().out
    assert "Cmd backtest: AAPL 5Min, 864 bars" in out
    assert "Total return" in out and "Sharpe ratio" in out
    assert Backtest.objects.get().bot == bot


def test_command_prints_the_api_document_with_json(capsys):
    strategy = json.dumps(backtest_input()["strategy"])
    call_command("backtest", "--strategy", strategy, "--symbol", "AAPL", "--timeframe", "5Min",
                 "--start", "2026-10-05", "--end", "2026-10-07", "--json")  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "done" and document["metrics"]["trades"] == len(document["trades"])


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--strategy", "{", "--symbol", "AAPL", "--timeframe", "5Min"], 2, "not valid JSON"),
        (["--strategy", "{}", "--symbol", "AAPL", "--timeframe", "2Min"], 2, "Timeframe must be"),
        (["--bot", "nope"], 2, "no bot 'nope'"),
        (["--strategy", '{"indicators": {"rsi": {"enabled": true}}, "buy_rule": "rsi", '
          '"sell_rule": "rsi"}', "--symbol", "AAPL", "--timeframe", "1Day"], 2, "need 16"),
    ],
)  # fmt: skip
def test_command_bad_input_exits_non_zero_with_one_line(arguments, code, message):
    with pytest.raises(CommandError) as refused:
        call_command("backtest", *arguments, "--start", "2026-10-05", "--end", "2026-10-07")
    assert refused.value.returncode == code
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not BacktestTrade.objects.exists()


def test_command_exits_1_when_the_backtest_cannot_run(monkeypatch):
    load = bars.load_bars
    monkeypatch.setattr(bars, "load_bars", lambda *args: load(*args).slice(0, 10))
    bot = BotFactory(name="Short")
    with pytest.raises(CommandError) as refused:
        call_command(
            "backtest", "--bot", str(bot.pk), "--start", "2026-10-05", "--end", "2026-10-07"
        )
    assert refused.value.returncode == 1
    assert str(refused.value).startswith("Not run: The range holds 10 bars")


def test_fractions_only_where_the_asset_trades_in_them(db, monkeypatch):
    """As the engine: a bot that allows fractions buys whole shares of an asset that has none."""
    from tradebots.broker import Asset
    from tradebots.broker.paper.broker import PaperBroker

    monkeypatch.setattr(
        PaperBroker, "get_asset",
        lambda self, symbol: Asset(symbol=symbol, name="Whole", tradable=True, fractionable=False),
    )  # fmt: skip
    backtest = services.request_backtest(
        validate_backtest(backtest_input(allow_fractional=True)), enqueue=False
    )
    assert backtest.allow_fractional is False


def test_a_bot_name_the_schema_refuses_is_said_not_a_server_error(
    user_client, finished_backtest, buying_power
):
    buying_power("50000")
    backtest = finished_backtest()
    response = user_client.post(
        reverse("backtests:create-bot", args=[backtest.pk]), {"name": "x" * 150}, follow=True
    )
    assert "No bot created: Name must be at most 100 characters long." in response.content.decode()
    assert not Bot.objects.exists()


@pytest.mark.parametrize("value", ["²", "-1", "1e9", "99999999999999999999", "abc"])
def test_odd_trade_numbers_in_the_query_are_ignored(user_client, finished_backtest, value):
    backtest = finished_backtest()
    url = reverse("backtests:detail", args=[backtest.pk])
    assert user_client.get(url, {"trade": value, "after": value}).status_code == 200


def test_the_progress_bar_polls_until_the_run_ends_then_loads_the_result(
    user_client, finished_backtest
):
    waiting = services.request_backtest(validate_backtest(backtest_input()), enqueue=False)
    url = reverse("backtests:detail", args=[waiting.pk])
    assert 'hx-trigger="every 2s"' in user_client.get(url).content.decode()

    services.run_backtest(waiting.pk)
    polled = user_client.get(
        url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="backtest-progress"
    ).content.decode()
    assert 'data-status="done"' in polled
    assert 'hx-target="#backtest-results"' in polled and "every 2s" not in polled
    # A finished run's page has its results already and asks for nothing.
    page = user_client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' not in page and 'hx-trigger="load"' not in page


def test_the_drawdown_pane_is_as_deep_as_the_max_drawdown(finished_backtest):
    backtest = finished_backtest(timeframe="1Min")
    deepest = min(value for _, value in backtest.drawdown)
    assert deepest == pytest.approx(backtest.metrics["max_drawdown_pct"], abs=1e-9)
