"""The bar cache: which spans are missing, fetching them from the broker (Alpaca through the fake
server and real alpaca-py, or the paper exchange), loading them for the simulation."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from backtests import bars as bar_service
from backtests.bars import (
    BarDataError,
    bar_datetimes,
    ensure_bars,
    load_bars,
    missing_spans,
)
from backtests.models import BarCoverage, HistoricalBar
from tradebots.broker import TimeFrame
from tradebots.broker.paper import market
from tradebots.broker.paper.broker import PaperBroker

BARS = "/v2/stocks/bars"
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def cover(start, end, symbol="AAPL", timeframe="1Hour", source=BarCoverage.Source.BROKER):
    return BarCoverage.objects.create(
        symbol=symbol, timeframe=timeframe, start=start, end=end, source=source
    )


def spans() -> list[tuple[datetime, datetime, str]]:
    return list(BarCoverage.objects.order_by("start").values_list("start", "end", "source"))


@pytest.fixture
def paper_calls(monkeypatch):
    """Every range the paper exchange is asked for."""
    calls = []
    real = PaperBroker.get_bars_between

    def counting(self, symbol, timeframe, start, end):
        calls.append((start, end))
        return real(self, symbol, timeframe, start, end)

    monkeypatch.setattr(PaperBroker, "get_bars_between", counting)
    return calls


# --- missing spans -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_stored_means_the_whole_range_is_missing():
    assert missing_spans("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 10 * HOUR) == [
        (MONDAY, MONDAY + 10 * HOUR)
    ]


@pytest.mark.django_db
def test_missing_spans_are_the_gaps_between_covered_ones():
    cover(MONDAY - 5 * HOUR, MONDAY + 2 * HOUR)
    cover(MONDAY + 4 * HOUR, MONDAY + 5 * HOUR)
    cover(MONDAY + 4 * HOUR, MONDAY + 6 * HOUR, source=BarCoverage.Source.IMPORT)  # overlaps
    cover(MONDAY + 8 * HOUR, MONDAY + 20 * HOUR)
    cover(MONDAY, MONDAY + 10 * HOUR, symbol="MSFT")  # other symbol
    cover(MONDAY, MONDAY + 10 * HOUR, timeframe="1Min")  # other timeframe

    assert missing_spans("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 10 * HOUR) == [
        (MONDAY + 2 * HOUR, MONDAY + 4 * HOUR),
        (MONDAY + 6 * HOUR, MONDAY + 8 * HOUR),
    ]
    assert missing_spans("AAPL", "1Hour", MONDAY + 8 * HOUR, MONDAY + 9 * HOUR) == []
    assert missing_spans("AAPL", "1Hour", MONDAY + HOUR, MONDAY + 3 * HOUR) == [
        (MONDAY + 2 * HOUR, MONDAY + 3 * HOUR)
    ]


@pytest.mark.django_db
def test_ranges_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        missing_spans("AAPL", TimeFrame.HOUR_1, datetime(2026, 3, 2), MONDAY)


# --- fetching from Alpaca ----------------------------------------------------------------------


def test_missing_bars_are_fetched_in_chunks_of_paged_requests(market_data, monkeypatch):
    monkeypatch.setattr(bar_service, "BARS_PER_REQUEST", 50)
    market_data.bars_page_size = 20
    progress = []

    fetched = ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 120 * HOUR, progress.append)

    assert fetched == 120
    expected = market.bars_between("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 120 * HOUR)
    stored = HistoricalBar.objects.filter(symbol="AAPL", timeframe="1Hour").order_by("timestamp")
    assert [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in stored] == [
        (b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in expected
    ]
    assert progress == pytest.approx([50 / 120, 100 / 120, 1.0])
    # Chunks of 50, 50 and 20 hours; Alpaca's end is inclusive, so each chunk's answer carries
    # the next chunk's first bar too (left out): 51, 51 and 21 bars in pages of 20.
    requests = market_data.requests_to("GET", BARS)
    assert len(requests) == 3 + 3 + 2
    assert all(r.query["limit"] == "10000" and r.query["feed"] == "iex" for r in requests)
    assert len(market_data.requests_to("GET", "/v2/assets/AAPL")) == 1
    assert spans() == [(MONDAY, MONDAY + 120 * HOUR, "broker")]


def test_a_rerun_fetches_nothing_and_a_wider_range_only_what_is_missing(market_data):
    ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 48 * HOUR)
    received = len(market_data.received)

    assert ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY + HOUR, MONDAY + 47 * HOUR) == 0
    assert len(market_data.received) == received  # not even the asset check

    ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY - 24 * HOUR, MONDAY + 72 * HOUR)

    asked = [(r.query["start"][:19], r.query["end"][:19]) for r in market_data.received[received:]
             if r.path == BARS]  # fmt: skip
    assert asked == [
        ("2026-03-01T00:00:00", "2026-03-02T00:00:00"),
        ("2026-03-04T00:00:00", "2026-03-05T00:00:00"),
    ]
    assert HistoricalBar.objects.count() == 96
    assert spans() == [(MONDAY - 24 * HOUR, MONDAY + 72 * HOUR, "broker")]


@pytest.mark.parametrize("broker", ["paper", "alpaca"])
def test_an_unknown_symbol_is_refused_by_name(broker, request, db):
    if broker == "alpaca":
        request.getfixturevalue("market_data")

    with pytest.raises(BarDataError) as error:
        ensure_bars("XYZ", TimeFrame.HOUR_1, MONDAY, MONDAY + 24 * HOUR)

    assert str(error.value) == "Unknown symbol 'XYZ'."
    assert not HistoricalBar.objects.exists() and not BarCoverage.objects.exists()


def test_a_symbol_that_cannot_be_checked_fetches_nothing(market_data):
    market_data.fail(500, times=3, path="/v2/assets")

    with pytest.raises(BarDataError) as error:
        ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 24 * HOUR)

    assert str(error.value) == (
        "Could not check the symbol AAPL: Alpaca error 500: internal server error occurred"
    )
    assert market_data.requests_to("GET", BARS) == []
    assert not HistoricalBar.objects.exists() and not BarCoverage.objects.exists()


def test_a_broker_failure_midway_keeps_the_chunks_before_it(market_data, monkeypatch):
    monkeypatch.setattr(bar_service, "BARS_PER_REQUEST", 50)

    def fail_after_first_chunk(fraction):
        market_data.fail(500, times=3, path=BARS)  # as many as the gateway's read attempts

    with pytest.raises(BarDataError) as error:
        ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 120 * HOUR, fail_after_first_chunk)

    assert str(error.value) == (
        "Could not fetch AAPL 1Hour bars from 2026-03-04 02:00 UTC: "
        "Alpaca error 500: internal server error occurred"
    )
    assert HistoricalBar.objects.count() == 50
    assert spans() == [(MONDAY, MONDAY + 50 * HOUR, "broker")]

    assert ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 120 * HOUR) == 70
    assert spans() == [(MONDAY, MONDAY + 120 * HOUR, "broker")]


# --- fetching from the paper exchange ----------------------------------------------------------


@pytest.mark.django_db
def test_a_chunk_is_at_most_ten_thousand_bars_of_time(paper_calls):
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    end = start + timedelta(minutes=10_060)

    assert ensure_bars("MSFT", TimeFrame.MIN_1, start, end) == 10_060

    middle = start + timedelta(minutes=10_000)
    assert paper_calls == [(start, middle), (middle, end)]


@pytest.mark.django_db
def test_only_bars_that_have_closed_are_fetched(paper_calls):
    now = timezone.now()

    ensure_bars("AAPL", TimeFrame.HOUR_1, now - 5 * HOUR, now + 48 * HOUR)

    ((start, end),) = paper_calls
    assert now - HOUR - bar_service.RECENT_MARGIN <= end
    assert end < now - HOUR - bar_service.RECENT_MARGIN + timedelta(seconds=5)
    assert HistoricalBar.objects.latest("timestamp").timestamp + HOUR <= now
    assert ensure_bars("AAPL", TimeFrame.HOUR_1, now + HOUR, now + 48 * HOUR) == 0
    assert len(paper_calls) == 1


@pytest.mark.django_db
def test_coverage_fetched_piece_by_piece_becomes_one_span():
    cover(MONDAY, MONDAY + 2 * HOUR, source=BarCoverage.Source.IMPORT)

    ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY + 10 * HOUR, MONDAY + 20 * HOUR)
    ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY + 30 * HOUR, MONDAY + 40 * HOUR)
    assert len(spans()) == 3
    ensure_bars("AAPL", TimeFrame.HOUR_1, MONDAY, MONDAY + 35 * HOUR)

    # The imported span keeps its own row: it says where those bars came from.
    assert spans() == [
        (MONDAY, MONDAY + 2 * HOUR, "import"),
        (MONDAY + 2 * HOUR, MONDAY + 40 * HOUR, "broker"),
    ]
    assert HistoricalBar.objects.count() == 38


# --- loading -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_loaded_bars_are_the_stored_ones_as_numbers():
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    ensure_bars("AAPL", TimeFrame.MIN_5, start, start + 100 * timedelta(minutes=5))
    ensure_bars("MSFT", TimeFrame.MIN_5, start, start + 100 * timedelta(minutes=5))

    bars = load_bars("AAPL", TimeFrame.MIN_5, start + timedelta(minutes=5), start + HOUR)

    expected = market.bars_between(
        "AAPL", TimeFrame.MIN_5, start + timedelta(minutes=5), start + HOUR
    )
    assert len(bars) == len(expected) == 11
    assert bars.time.dtype == np.int64
    assert bars.time.tolist() == [int(bar.timestamp.timestamp()) for bar in expected]
    assert bar_datetimes(bars) == [bar.timestamp for bar in expected]
    for name in ("open", "high", "low", "close"):
        assert getattr(bars, name).dtype == np.float64
        assert getattr(bars, name).tolist() == [float(getattr(bar, name)) for bar in expected]


@pytest.mark.django_db
def test_loading_keeps_four_decimal_places_and_an_empty_range_is_empty():
    HistoricalBar.objects.create(
        symbol="AAPL", timeframe="1Day", timestamp=MONDAY, open=Decimal("1.2345"),
        high=Decimal("2"), low=Decimal("1"), close=Decimal("1.5"), volume=Decimal(10),
    )  # fmt: skip

    bars = load_bars("AAPL", "1Day", MONDAY, MONDAY + timedelta(days=1))

    assert bars.open.tolist() == [1.2345]
    assert (
        len(load_bars("AAPL", "1Day", MONDAY + timedelta(days=1), MONDAY + timedelta(days=9))) == 0
    )


def store_hourly_aapl_bars(count: int) -> list[datetime]:
    """``count`` hourly AAPL bars from MONDAY on; their times."""
    times = [MONDAY + index * HOUR for index in range(count)]
    HistoricalBar.objects.bulk_create(
        HistoricalBar(symbol="AAPL", timeframe="1Hour", timestamp=time, open=1, high=1, low=1,
                      close=1)
        for time in times
    )  # fmt: skip
    return times


def test_the_time_of_the_bar_some_bars_before_a_moment(db):
    times = store_hourly_aapl_bars(5)
    before = bar_service.time_of_bar_before
    assert before("AAPL", TimeFrame.HOUR_1, times[4], 0) == times[4]
    assert before("AAPL", TimeFrame.HOUR_1, times[4], 1) == times[3]
    assert before("AAPL", TimeFrame.HOUR_1, times[4], 3) == times[1]
    assert before("AAPL", TimeFrame.HOUR_1, times[4], 9) == times[0]  # fewer: the first


@pytest.mark.django_db
def test_bars_load_a_batch_at_a_time_with_the_same_result(monkeypatch):
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    end = start + 103 * timedelta(minutes=5)
    ensure_bars("AAPL", TimeFrame.MIN_5, start, end)
    whole = load_bars("AAPL", TimeFrame.MIN_5, start, end)

    monkeypatch.setattr(bar_service, "LOAD_BATCH_SIZE", 10)
    batched = load_bars("AAPL", TimeFrame.MIN_5, start, end)

    assert len(whole) == 103
    for name in ("time", "open", "high", "low", "close"):
        assert np.array_equal(getattr(batched, name), getattr(whole, name))
        assert getattr(batched, name).dtype == getattr(whole, name).dtype


def test_counting_stored_bars_and_finding_the_nth_without_loading_them(db):
    times = store_hourly_aapl_bars(5)
    after_first = times[1]
    assert bar_service.count_bars("AAPL", TimeFrame.HOUR_1, after_first, times[4]) == 3
    assert bar_service.count_bars("MSFT", TimeFrame.HOUR_1, times[0], times[4]) == 0
    assert bar_service.time_of_bar("AAPL", TimeFrame.HOUR_1, after_first, times[4], 0) == times[1]
    assert bar_service.time_of_bar("AAPL", TimeFrame.HOUR_1, after_first, times[4], 2) == times[3]
