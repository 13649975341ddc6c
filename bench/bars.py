"""Benchmark: loading stored bars for a backtest (backtests.bars.load_bars).

    make bench-bars                                     # 100,000 1-minute bars on SQLite
    make bench-bars BENCH_ARGS="--database-url postgres://postgres@127.0.0.1/postgres"

Stores ``--bars`` synthetic bars of one symbol, then loads them ``--repeat`` times and prints the
best and median wall time and bars per second. Target: 100,000 bars in well under a second.

The database is a throwaway one: a temporary SQLite file, or with ``--database-url`` a test_
database created on that server and dropped afterwards.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="a PostgreSQL server to run on (test_ database)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workdir = tempfile.mkdtemp(prefix="tradebots-bench-")
    os.environ["SQLITE_PATH"] = os.path.join(workdir, "bench.sqlite3")
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["ALPACA_API_KEY"] = os.environ["ALPACA_SECRET_KEY"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")

    import django

    django.setup()
    from bench.throwaway import throwaway_database

    with throwaway_database():
        run(args)


def run(args) -> None:
    from datetime import UTC, datetime, timedelta

    from backtests.bars import historical_bars, load_bars
    from backtests.models import HistoricalBar
    from tradebots.broker import TimeFrame
    from tradebots.broker.paper import market

    start = datetime(2025, 1, 6, tzinfo=UTC)
    end = start + timedelta(minutes=args.bars)
    began = time.perf_counter()
    bars = market.bars_between("AAPL", TimeFrame.MIN_1, start, end)
    HistoricalBar.objects.bulk_create(
        historical_bars("AAPL", TimeFrame.MIN_1, bars), batch_size=2000
    )
    print(f"stored {len(bars):,} bars in {time.perf_counter() - began:.1f} s")

    timings = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        loaded = load_bars("AAPL", TimeFrame.MIN_1, start, end)
        timings.append(time.perf_counter() - began)
    assert loaded.time.tolist() == [int(bar.timestamp.timestamp()) for bar in bars]
    assert loaded.close.tolist() == [float(bar.close) for bar in bars]
    best, median = min(timings), statistics.median(timings)
    print(
        f"{connection_vendor()}: load_bars of {len(loaded):,} bars: best {best:.3f} s, "
        f"median {median:.3f} s ({len(loaded) / best:,.0f} bars/s)"
    )


def connection_vendor() -> str:
    from django.db import connection

    return connection.vendor


if __name__ == "__main__":
    main()
