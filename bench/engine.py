"""Benchmark: engine ticks with N running bots over M symbols on the paper exchange.

    make bench-engine                      # 1,000 bots over 100 symbols, 5 ticks
    .venv/bin/python -m tradebots.run_with_redis .venv/bin/python bench/engine.py --bots 200

Uses a throwaway SQLite database (or DATABASE_URL's, with a test_ prefix via --database-url) and
prints, per tick: wall time, broker calls by method, and database queries. Target: 1,000 bots over
100 symbols in under 1 s per tick, at most one market-data call per 100 symbols, and no per-bot
broker calls except orders.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--strategies", type=int, default=10, help="distinct strategies")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="tradebots-bench-")
    os.environ["SQLITE_PATH"] = os.path.join(workdir, "bench.sqlite3")
    os.environ.pop("DATABASE_URL", None)
    os.environ["ALPACA_API_KEY"] = os.environ["ALPACA_SECRET_KEY"] = ""
    os.environ["PAPER_STARTING_CASH"] = "1000000000"
    os.environ["ORDER_VERIFY_DELAY_SECONDS"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bots.models import Bot
    from bots.strategy import Strategy
    from trading import engine
    from trading.broker.paper.broker import PaperBroker
    from trading.broker.paper.market import PAPER_SYMBOLS

    call_command("migrate", verbosity=0)
    symbols = sorted(PAPER_SYMBOLS)[: args.symbols]
    if len(symbols) < args.symbols:
        sys.exit(f"The paper exchange lists {len(symbols)} symbols; ask for at most that many.")
    strategies = [
        Strategy.from_dict(
            {"indicators": {"rsi": {"enabled": True, "period": 10 + n},
                            "sma_cross": {"enabled": n % 2 == 0, "fast": 5 + n, "slow": 30 + n}},
             "buy_rule": "majority" if n % 2 == 0 else "rsi", "sell_rule": "rsi"}
        ).to_dict()
        for n in range(args.strategies)
    ]  # fmt: skip
    Bot.objects.bulk_create(
        Bot(
            name=f"Bench {n}",
            symbol=symbols[n % len(symbols)],
            capital=1000,
            timeframe="5Min",
            status=Bot.Status.RUNNING,
            strategy=strategies[n % len(strategies)],
        )
        for n in range(args.bots)
    )

    calls = Counter()
    counted_methods = (
        "get_clock", "get_bars", "get_latest_prices", "submit_market_order", "get_order",
        "get_order_by_client_order_id", "get_account", "get_asset",
    )  # fmt: skip
    for name in counted_methods:
        original = getattr(PaperBroker, name)

        def counted(self, *a, _name=name, _original=original, **kw):
            calls[_name] += 1
            return _original(self, *a, **kw)

        setattr(PaperBroker, name, counted)

    print(f"{args.bots} running bots over {len(symbols)} symbols, {args.strategies} strategies")
    times = []
    for number in range(1, args.ticks + 1):
        calls.clear()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            report = engine.run_tick(dispatch=engine.evaluate_batch)
            elapsed = time.perf_counter() - started
        times.append(elapsed)
        actions = Counter(outcome.action for outcome in report.outcomes)
        order_calls = calls["submit_market_order"] + calls["get_order"]
        print(
            f"tick {number}: {elapsed:.3f} s | bots {len(report.outcomes)} {dict(actions)} | "
            f"broker calls {sum(calls.values())} (market data {calls['get_bars']} bars + "
            f"{calls['get_latest_prices']} prices, clock {calls['get_clock']}, "
            f"order-related {order_calls}) | queries {len(queries)}"
        )
    print(f"median tick {statistics.median(times):.3f} s, best {min(times):.3f} s")


if __name__ == "__main__":
    main()
