"""Historical bars for backtests: what is stored, fetching what is not, loading it fast, and
importing a trader's own file.

A bar is stored once per (symbol, timeframe, timestamp); BarCoverage says which spans are
complete, so a night or a holiday (no bars) is not mistaken for a range never fetched.
"""

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import numpy as np
from django.db import connection, transaction
from django.db.models import BigIntegerField, FloatField, Func
from django.db.models.functions import Cast
from django.utils import timezone

from tradebots.broker import BrokerError, NotFound, TimeFrame, get_broker
from tradebots.money import PRICE_PLACES

from .models import BarCoverage, HistoricalBar
from .simulation import Bars

# Alpaca's largest page: each request asks for at most this many bars' worth of time, so
# progress can be reported between requests.
BARS_PER_REQUEST = 10_000
INSERT_BATCH_SIZE = 2_000
LOAD_BATCH_SIZE = 2_000
PRICE_COLUMNS = ("open", "high", "low", "close")
CSV_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
OPTIONAL_CSV_COLUMNS = {"volume"}
# HistoricalBar's price columns: 20 digits, 4 of them decimal places.
MAX_PRICE = Decimal(10) ** 16
MAX_VOLUME = Decimal(10) ** 20

Span = tuple[datetime, datetime]


class BarDataError(Exception):
    """Bars could not be had: unknown symbol, the broker failed, or a file is not valid. The
    message is written for the trader."""


@dataclass(frozen=True)
class ImportedBars:
    count: int
    first: datetime  # when the first bar opened
    last: datetime  # when the last bar opened


# The newest minutes are not fetched: a data feed may not have published them yet (SIP on a
# free plan does not serve them at all), and a covered span must really be complete.
RECENT_MARGIN = timedelta(minutes=15)


def historical_bars(symbol: str, timeframe: TimeFrame, bars) -> Iterator[HistoricalBar]:
    """The gateway's bars as rows to store."""
    for bar in bars:
        yield HistoricalBar(
            symbol=symbol, timeframe=timeframe.value, timestamp=bar.timestamp, open=bar.open,
            high=bar.high, low=bar.low, close=bar.close, volume=bar.volume,
        )  # fmt: skip


def missing_spans(
    symbol: str, timeframe: TimeFrame | str, start: datetime, end: datetime
) -> list[Span]:
    """The parts of [start, end) that no BarCoverage row covers, oldest first."""
    _require_aware(start, end)
    covered = (
        BarCoverage.objects.filter(
            symbol=symbol, timeframe=TimeFrame(timeframe).value, start__lt=end, end__gt=start
        )
        .order_by("start")
        .values_list("start", "end")
    )
    gaps = []
    cursor = start
    for span_start, span_end in covered:
        if span_start > cursor:
            gaps.append((cursor, min(span_start, end)))
        cursor = max(cursor, span_end)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def ensure_bars(
    symbol: str,
    timeframe: TimeFrame | str,
    start: datetime,
    end: datetime,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Fetch and store the bars of [start, end) not stored yet; return how many were fetched.

    Only bars that have closed are fetched (the range ends one bar and RECENT_MARGIN before
    now), so a stored bar never changes. Each missing span is fetched in requests of at most
    BARS_PER_REQUEST bars' worth of time; ``progress(fraction done)`` is called after each.
    Every request's bars are stored with their coverage in one transaction: when the broker
    fails, what came before stays stored and covered, and BarDataError carries the broker's
    message."""
    timeframe = TimeFrame(timeframe)
    _require_aware(start, end)
    end = min(end, timezone.now() - timedelta(seconds=timeframe.seconds) - RECENT_MARGIN)
    if start >= end:
        return 0
    gaps = missing_spans(symbol, timeframe, start, end)
    if not gaps:
        return 0
    broker = get_broker()
    try:
        broker.get_asset(symbol)
    except NotFound as error:
        raise BarDataError(f"Unknown symbol '{symbol}'.") from error
    except BrokerError as error:
        raise BarDataError(f"Could not check the symbol {symbol}: {error}") from error
    total = sum((gap_end - gap_start).total_seconds() for gap_start, gap_end in gaps)
    chunk = timedelta(seconds=timeframe.seconds * BARS_PER_REQUEST)
    done = 0.0
    fetched = 0
    for gap_start, gap_end in gaps:
        chunk_start = gap_start
        while chunk_start < gap_end:
            chunk_end = min(chunk_start + chunk, gap_end)
            try:
                bars = broker.get_bars_between(symbol, timeframe, chunk_start, chunk_end)
            except BrokerError as error:
                raise BarDataError(
                    f"Could not fetch {symbol} {timeframe.value} bars from "
                    f"{chunk_start:%Y-%m-%d %H:%M} UTC: {error}"
                ) from error
            with transaction.atomic():
                HistoricalBar.objects.bulk_create(
                    historical_bars(symbol, timeframe, bars),
                    batch_size=INSERT_BATCH_SIZE,
                    ignore_conflicts=True,
                )
                _record_coverage(
                    symbol, timeframe, chunk_start, chunk_end, BarCoverage.Source.BROKER
                )
            fetched += len(bars)
            done += (chunk_end - chunk_start).total_seconds()
            chunk_start = chunk_end
            if progress is not None:
                progress(done / total)
    return fetched


def load_bars(symbol: str, timeframe: TimeFrame | str, start: datetime, end: datetime) -> Bars:
    """The stored bars of [start, end), oldest first, as the simulation reads them. The database
    hands over epoch seconds and floats, so no datetime or Decimal is built per bar
    (make bench-bars)."""
    rows = _stored(symbol, timeframe, start, end).values_list(
        EpochSeconds("timestamp"), *(Cast(price, FloatField()) for price in PRICE_COLUMNS)
    )
    # Straight from the cursor (Django's per-row handling of a values_list would double the
    # time), a batch at a time through a server-side cursor: a year of minute bars fetched at
    # once held ~40 MB of rows and Python floats on the way to 4 MB of arrays, in every grid
    # worker (make bench-backtest).
    sql, params = rows.query.sql_with_params()
    batches = [np.empty((0, 5))]
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(LOAD_BATCH_SIZE):
            batches.append(np.array(batch, dtype=float))
    table = np.concatenate(batches)
    return Bars(
        time=table[:, 0].astype(np.int64),
        open=table[:, 1].copy(),
        high=table[:, 2].copy(),
        low=table[:, 3].copy(),
        close=table[:, 4].copy(),
    )


def count_bars(symbol: str, timeframe: TimeFrame | str, start: datetime, end: datetime) -> int:
    """How many bars of [start, end) are stored."""
    return _stored(symbol, timeframe, start, end).count()


def time_of_bar(
    symbol: str, timeframe: TimeFrame | str, start: datetime, end: datetime, index: int
) -> datetime:
    """When the ``index``-th stored bar of [start, end) (0 the first) opened, without loading
    the bars before it."""
    return _stored(symbol, timeframe, start, end).values_list("timestamp", flat=True)[index]


def _stored(symbol: str, timeframe: TimeFrame | str, start: datetime, end: datetime):
    _require_aware(start, end)
    return HistoricalBar.objects.filter(
        symbol=symbol,
        timeframe=TimeFrame(timeframe).value,
        timestamp__gte=start,
        timestamp__lt=end,
    ).order_by("timestamp")


class EpochSeconds(Func):
    """A datetime column as whole seconds since the epoch (UTC), computed by the database."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores SQLite datetimes as UTC text, which strftime reads. '%s' is escaped
        # twice: once for this template, once for the cursor's own parameter style.
        return self.as_sql(
            compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)",
            **extra_context,
        )  # fmt: skip

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler, connection, template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)",
            **extra_context,
        )  # fmt: skip


def bar_datetime(seconds: int | np.integer) -> datetime:
    """A bar's ``Bars.time`` value as the UTC datetime it was stored with."""
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def bar_datetimes(bars: Bars) -> list[datetime]:
    """Every bar's opening time as a UTC datetime, for storing trades and charts."""
    return [bar_datetime(seconds) for seconds in bars.time.tolist()]


def import_csv(file: Iterable[str], symbol: str, timeframe: TimeFrame | str) -> ImportedBars:
    """Store the bars of a CSV file (header ``timestamp,open,high,low,close[,volume]``, ISO 8601
    timestamps, naive ones UTC), replacing stored bars at the same timestamps, and record the
    span from the first bar to one bar after the last as covered.

    Every row is checked; the first bad one raises BarDataError naming its line, and nothing is
    stored. Prices are rounded to four decimal places, as they are stored."""
    timeframe = TimeFrame(timeframe)
    reader = csv.reader(file)
    line_of: dict[int, int] = {}  # each bar's epoch seconds: its line
    try:
        with transaction.atomic():
            columns = _csv_columns(reader)
            batch: list[HistoricalBar] = []
            for row in reader:
                if not any(value.strip() for value in row):
                    continue
                bar = _bar_from_row(row, columns, reader.line_num, symbol, timeframe)
                seconds = int(bar.timestamp.timestamp())
                if seconds in line_of:
                    raise BarDataError(
                        f"Line {reader.line_num}: the same timestamp as line {line_of[seconds]}."
                    )
                line_of[seconds] = reader.line_num
                batch.append(bar)
                if len(batch) >= INSERT_BATCH_SIZE:
                    _upsert(batch)
                    batch = []
            _upsert(batch)
            if not line_of:
                raise BarDataError("The file has no bars: only a header, or nothing at all.")
            _check_spacing(line_of, timeframe)
            first, last = bar_datetime(min(line_of)), bar_datetime(max(line_of))
            after_last = last + timedelta(seconds=timeframe.seconds)
            _record_coverage(symbol, timeframe, first, after_last, BarCoverage.Source.IMPORT)
    except UnicodeDecodeError as error:
        raise BarDataError("The file is not UTF-8 text.") from error
    except csv.Error as error:
        raise BarDataError(f"Line {reader.line_num}: not valid CSV ({error}).") from error
    return ImportedBars(count=len(line_of), first=first, last=last)


# --- helpers -----------------------------------------------------------------------------------


def _require_aware(*moments: datetime) -> None:
    if any(timezone.is_naive(moment) for moment in moments):
        raise ValueError("Bar ranges are timezone-aware datetimes.")


def _record_coverage(
    symbol: str, timeframe: TimeFrame, start: datetime, end: datetime, source: str
) -> None:
    """Record [start, end) as covered, merged with the spans of the same source that it touches
    or overlaps, so that a range fetched piece by piece ends up as one row."""
    with transaction.atomic():
        touching = list(
            BarCoverage.objects.select_for_update()
            .filter(
                symbol=symbol,
                timeframe=timeframe.value,
                source=source,
                start__lte=end,
                end__gte=start,
            )
            .order_by("start")
        )
        if not touching:
            BarCoverage.objects.create(
                symbol=symbol, timeframe=timeframe.value, start=start, end=end, source=source
            )
            return
        kept, *merged = touching
        kept.start = min(start, kept.start)
        kept.end = max(end, *(span.end for span in touching))
        kept.save(update_fields=["start", "end"])
        BarCoverage.objects.filter(pk__in=[span.pk for span in merged]).delete()


def _csv_columns(reader) -> dict[str, int]:
    """Each expected column's position, from the header."""
    header = next(reader, None)
    if header is None:
        raise BarDataError("The file is empty.")
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in CSV_COLUMNS]
    required = [name for name in CSV_COLUMNS if name not in OPTIONAL_CSV_COLUMNS]
    missing = [name for name in required if name not in names]
    expected = f"expected the header {','.join(CSV_COLUMNS[:-1])}[,volume]"
    if unknown or missing:
        problem = (
            f"unknown column {', '.join(repr(n) for n in unknown)}"
            if unknown
            else f"no {', '.join(repr(n) for n in missing)} column"
        )
        raise BarDataError(f"Line 1: {problem}; {expected}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BarDataError(f"Line 1: the column {repeated[0]!r} appears twice; {expected}.")
    return {name: names.index(name) for name in names}


def _bar_from_row(
    row: list[str], columns: dict[str, int], line: int, symbol: str, timeframe: TimeFrame
) -> HistoricalBar:
    if len(row) != len(columns):
        raise BarDataError(f"Line {line}: {len(row)} values, expected {len(columns)}.")
    timestamp = _parse_timestamp(row[columns["timestamp"]], line)
    prices = {name: _parse_number(row[columns[name]], name, line) for name in PRICE_COLUMNS}
    for name, value in prices.items():
        if value <= 0:
            raise BarDataError(f"Line {line}: {name} must be greater than 0, not {value}.")
        if value >= MAX_PRICE:
            raise BarDataError(f"Line {line}: {name} {value} is too large.")
    high, low = prices["high"], prices["low"]
    if high < max(prices["open"], prices["close"], low):
        raise BarDataError(f"Line {line}: high {high} is below the open, close or low.")
    if low > min(prices["open"], prices["close"]):
        raise BarDataError(f"Line {line}: low {low} is above the open or close.")
    volume = Decimal(0)
    if "volume" in columns:
        volume = _parse_number(row[columns["volume"]], "volume", line)
        if volume < 0 or volume >= MAX_VOLUME:
            raise BarDataError(f"Line {line}: volume {volume} is out of range.")
    return HistoricalBar(
        symbol=symbol,
        timeframe=timeframe.value,
        timestamp=timestamp,
        volume=volume,
        **{
            name: value.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)
            for name, value in prices.items()
        },
    )


def _parse_timestamp(text: str, line: int) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BarDataError(
            f"Line {line}: timestamp {text.strip()!r} is not an ISO 8601 date-time "
            "(such as 2024-03-01T14:30:00Z)."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_number(text: str, name: str, line: int) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise BarDataError(f"Line {line}: {name} {text.strip()!r} is not a number.")
    return value


def _check_spacing(line_of: dict[int, int], timeframe: TimeFrame) -> None:
    """Bars of one timeframe are at least one bar apart: bars closer than that (a file of
    another timeframe) are refused."""
    seconds = np.fromiter(line_of, dtype=np.int64, count=len(line_of))
    order = np.argsort(seconds)
    too_close = np.flatnonzero(np.diff(seconds[order]) < timeframe.seconds)
    if not len(too_close):
        return
    earlier, later = (int(seconds[order[i]]) for i in (too_close[0], too_close[0] + 1))
    first_line, second_line = sorted((line_of[earlier], line_of[later]))
    raise BarDataError(
        f"Line {second_line}: {later - earlier} seconds from the bar on line {first_line}, less "
        f"than one {timeframe.value} bar ({timeframe.seconds} seconds): is the timeframe right?"
    )


def _upsert(bars: list[HistoricalBar]) -> None:
    HistoricalBar.objects.bulk_create(
        bars,
        batch_size=INSERT_BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["symbol", "timeframe", "timestamp"],
        update_fields=["open", "high", "low", "close", "volume"],
    )


def time_of_bar_before(symbol: str, timeframe: str, moment: datetime, count: int) -> datetime:
    """When the ``count``-th stored bar before ``moment`` opened (``moment`` itself for 0, the
    first stored bar when there are fewer)."""
    if count <= 0:
        return moment
    earlier = HistoricalBar.objects.filter(
        symbol=symbol, timeframe=TimeFrame(timeframe).value, timestamp__lt=moment
    ).order_by("-timestamp")
    found = list(earlier.values_list("timestamp", flat=True)[count - 1 : count])
    if found:
        return found[0]
    first = earlier.order_by("timestamp").values_list("timestamp", flat=True).first()
    return first or moment
