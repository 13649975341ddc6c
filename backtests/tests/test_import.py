"""A trader's own bars from a CSV file: the service and manage.py import_bars."""

import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from backtests.bars import BarDataError, import_csv, load_bars, missing_spans
from backtests.models import BarCoverage, HistoricalBar
from tradebots.broker import TimeFrame

BASE_DIR = Path(__file__).resolve().parents[2]

GOOD_CSV = """timestamp,open,high,low,close,volume
2024-03-01T14:30:00Z,100.10,101.00,99.90,100.50,1200
2024-03-01T09:31:00-05:00,100.50,100.75,100.25,100.60,800
2024-03-01 14:32:00,100.60,100.70,100.00,100.123456,0

"""


def csv_file(text: str) -> io.StringIO:
    return io.StringIO(text)


def nothing_stored() -> bool:
    return not HistoricalBar.objects.exists() and not BarCoverage.objects.exists()


@pytest.mark.django_db
def test_a_good_file_is_stored_and_its_span_covered():
    imported = import_csv(csv_file(GOOD_CSV), "AAPL", TimeFrame.MIN_1)

    first = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
    assert (imported.count, imported.first, imported.last) == (
        3, first, first + timedelta(minutes=2)
    )  # fmt: skip
    rows = HistoricalBar.objects.order_by("timestamp").values_list(
        "timestamp", "open", "high", "low", "close", "volume"
    )
    assert list(rows) == [
        (first, Decimal("100.1"), Decimal("101"), Decimal("99.9"), Decimal("100.5"), 1200),
        (first + timedelta(minutes=1), Decimal("100.5"), Decimal("100.75"), Decimal("100.25"),
         Decimal("100.6"), 800),
        (first + timedelta(minutes=2), Decimal("100.6"), Decimal("100.7"), Decimal("100"),
         Decimal("100.1235"), 0),
    ]  # fmt: skip
    assert list(BarCoverage.objects.values_list("start", "end", "source")) == [
        (first, first + timedelta(minutes=3), "import")
    ]
    assert missing_spans("AAPL", "1Min", first, first + timedelta(minutes=3)) == []
    assert len(load_bars("AAPL", "1Min", first, first + timedelta(minutes=3))) == 3


@pytest.mark.django_db
def test_importing_again_replaces_the_bars_and_volume_is_optional():
    import_csv(csv_file(GOOD_CSV), "AAPL", TimeFrame.MIN_1)

    count = import_csv(
        csv_file("Timestamp, Open, High, Low, Close\n2024-03-01T14:31:00Z,1,3,0.5,2\n"
                 "2024-03-01T14:33:00Z,2,2,2,2\n"),
        "AAPL", "1Min",
    ).count  # fmt: skip

    assert count == 2
    assert HistoricalBar.objects.count() == 4
    replaced = HistoricalBar.objects.get(timestamp=datetime(2024, 3, 1, 14, 31, tzinfo=UTC))
    assert (replaced.open, replaced.close, replaced.volume) == (1, 2, 0)
    first = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
    assert list(BarCoverage.objects.values_list("start", "end")) == [
        (first, first + timedelta(minutes=4))
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text, message",
    [
        ("", "The file is empty."),
        ("timestamp,open,high,low,close\n", "The file has no bars"),
        ("time,open,high,low,close\n", "Line 1: unknown column 'time'; expected the header "
                                       "timestamp,open,high,low,close[,volume]."),
        ("timestamp,open,high,low\n", "Line 1: no 'close' column"),
        ("timestamp,open,high,low,close,close\n", "Line 1: the column 'close' appears twice"),
        ("timestamp,open,high,low,close\n2024-03-01T14:30Z,1,2,1,2\n2024-03-01T14:31Z,1,2,1\n",
         "Line 3: 4 values, expected 5."),
        ("timestamp,open,high,low,close\nyesterday,1,2,1,2\n",
         "Line 2: timestamp 'yesterday' is not an ISO 8601 date-time"),
        ("timestamp,open,high,low,close\n2024-03-01T14:30Z,1,two,1,2\n",
         "Line 2: high 'two' is not a number."),
        ("timestamp,open,high,low,close\n2024-03-01T14:30Z,1,NaN,1,2\n",
         "Line 2: high 'NaN' is not a number."),
        ("timestamp,open,high,low,close\n2024-03-01T14:30Z,0,2,0,2\n",
         "Line 2: open must be greater than 0, not 0."),
        ("timestamp,open,high,low,close\n2024-03-01T14:30Z,1,1.5,1,2\n",
         "Line 2: high 1.5 is below the open, close or low."),
        ("timestamp,open,high,low,close\n2024-03-01T14:30Z,1,2,1.5,2\n",
         "Line 2: low 1.5 is above the open or close."),
        ("timestamp,open,high,low,close,volume\n2024-03-01T14:30Z,1,2,1,2,-5\n",
         "Line 2: volume -5 is out of range."),
        ("timestamp,open,high,low,close\n2024-03-01T14:31Z,1,2,1,2\n2024-03-01T14:30Z,1,2,1,2\n"
         "2024-03-01T09:31-05:00,1,2,1,2\n", "Line 4: the same timestamp as line 2."),
        ("timestamp,open,high,low,close\n2024-03-01T14:00Z,1,2,1,2\n2024-03-01T14:01Z,1,2,1,2\n",
         "Line 3: 60 seconds from the bar on line 2, less than one 1Hour bar (3600 seconds): "
         "is the timeframe right?"),
    ],
)  # fmt: skip
def test_a_bad_file_names_its_line_and_stores_nothing(text, message):
    with pytest.raises(BarDataError) as error:
        import_csv(csv_file(text), "AAPL", TimeFrame.HOUR_1)

    assert str(error.value).startswith(message)
    assert nothing_stored()


@pytest.mark.django_db
def test_a_bad_row_after_thousands_of_good_ones_stores_nothing():
    start = datetime(2024, 3, 1, tzinfo=UTC)
    good = [f"{(start + timedelta(minutes=i)).isoformat()},1,2,0.5,1.5" for i in range(4_500)]
    text = "\n".join(["timestamp,open,high,low,close", *good, "2024-04-01T00:00Z,1,2,3,1"])

    with pytest.raises(BarDataError, match="^Line 4502: high 2 is below the open, close or low.$"):
        import_csv(csv_file(text), "AAPL", TimeFrame.MIN_1)

    assert nothing_stored()


# --- manage.py import_bars ---------------------------------------------------------------------


@pytest.fixture
def good_file(tmp_path) -> Path:
    path = tmp_path / "aapl.csv"
    path.write_text("\ufeff" + GOOD_CSV, encoding="utf-8")  # as a spreadsheet saves it
    return path


@pytest.mark.django_db
def test_the_command_imports_and_says_what(good_file):
    out = StringIO()

    call_command("import_bars", str(good_file), "--symbol", " aapl ", "--timeframe", "1Min",
                 stdout=out)  # fmt: skip

    assert out.getvalue().strip() == (
        "Imported 3 AAPL 1Min bars, the first at 2024-03-01 14:30 UTC, the last at "
        "2024-03-01 14:32 UTC."
    )
    assert set(HistoricalBar.objects.values_list("symbol", "timeframe")) == {("AAPL", "1Min")}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.csv", "--symbol", "AAPL", "--timeframe", "1Min"],
         "missing.csv: No such file or directory"),
        (["GOOD", "--symbol", "AAPL", "--timeframe", "2Min"],
         "--timeframe must be one of '1Min', '5Min', '15Min', '1Hour' or '1Day'."),
        (["GOOD", "--symbol", "AA$PL", "--timeframe", "1Min"],
         "--symbol must be a ticker symbol such as AAPL or BRK.B."),
        (["GOOD", "--symbol", "AAPL", "--timeframe", "1Hour"],
         "GOOD: Line 3: 60 seconds from the bar on line 2, less than one 1Hour bar"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(good_file, args, message):
    args = [str(good_file) if arg == "GOOD" else arg for arg in args]
    message = message.replace("GOOD", str(good_file))

    with pytest.raises(CommandError) as error:
        call_command("import_bars", *args, stdout=StringIO())

    assert error.value.returncode == 2
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
    assert nothing_stored()


def test_the_real_process_exit_codes(test_database_env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close\n2024-03-01T14:30Z,1,2,1,x\n")
    env = {**os.environ, **test_database_env, "LOG_LEVEL": "WARNING"}

    def manage(*args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "import_bars", *args],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    result = manage(str(bad), "--symbol", "AAPL", "--timeframe", "1Min")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {bad}: Line 2: close 'x' is not a number."
    ]
    assert result.stdout == ""
