"""Benchmark: engine ticks with N running bots over M symbols.

    make bench-engine                                   # 1,000 bots over 100 symbols, 5 ticks
    make bench-engine BENCH_ARGS="--all-trade"          # every bot trades in the same tick
    make bench-engine BENCH_ARGS="--all-trade --database-url postgres://postgres@127.0.0.1/test"
    make bench-engine BENCH_ARGS="--alpaca --bots 60 --symbols 20 --budget 40 --window 10"

Modes:
- default: bots with ten distinct strategies, most of them holding; prints per tick wall time,
  broker calls by method and database queries. Target: 1,000 bots over 100 symbols in under 1 s
  per tick, one market-data call per 100 symbols, no per-bot broker calls except orders.
- ``--all-trade``: every bot gets a buy signal in the same tick, then a sell signal in the next
  (1,000 bots, 100 symbols by default). Prints tick time, orders per second, queries per order
  (ours, and the paper exchange's own, which stand in for the broker's work) and WebSocket pushes
  per order. Targets on the paper exchange: >= 100 orders/s, <= 10 queries and <= 1 push per
  order, 1,000 simultaneous signals in <= 10 s.
- ``--alpaca``: the same against AlpacaBroker and the tests' fake Alpaca server with 50 ms of
  latency per request and the request budget set by ``--budget`` per ``--window`` seconds; prints
  the most requests the fake received in any window (must not exceed the budget) and the 429s.

The database is a throwaway one: a temporary SQLite file, or with ``--database-url`` a test_
database created on that server and dropped afterwards.
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

STRATEGY_ALWAYS_BUY = {
    "indicators": {"rsi": {"enabled": True, "oversold": 98, "overbought": 99}},
    "buy_rule": "rsi",
    "sell_rule": "rsi",
}
STRATEGY_ALWAYS_SELL = {
    "indicators": {"rsi": {"enabled": True, "oversold": 1, "overbought": 2}},
    "buy_rule": "rsi",
    "sell_rule": "rsi",
}


# SQLite runs these through the cursor (so they are counted); PostgreSQL's driver does not.
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--strategies", type=int, default=10, help="distinct strategies")
    parser.add_argument("--all-trade", action="store_true", help="every bot trades each tick")
    parser.add_argument("--alpaca", action="store_true", help="AlpacaBroker + fake Alpaca")
    parser.add_argument("--latency", type=float, default=0.05, help="fake Alpaca latency (s)")
    parser.add_argument("--budget", type=int, default=190, help="requests per window")
    parser.add_argument("--window", type=float, default=60, help="budget window (s)")
    parser.add_argument("--database-url", help="a PostgreSQL server to run on (test_ database)")
    parser.add_argument(
        "--workers", type=int, default=0,
        help="--all-trade on N Celery worker processes, as in production (0: in this process)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-symbols", type=int, help="symbols per batch task (default: ENGINE_BATCH_SYMBOLS)"
    )
    return parser.parse_args()


def configure_environment(args) -> None:
    workdir = tempfile.mkdtemp(prefix="tradebots-bench-")
    os.environ["SQLITE_PATH"] = os.path.join(workdir, "bench.sqlite3")
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["ALPACA_API_KEY"] = os.environ["ALPACA_SECRET_KEY"] = ""
    os.environ["PAPER_STARTING_CASH"] = "1000000000"
    os.environ["ORDER_VERIFY_DELAY_SECONDS"] = "0"
    os.environ["BROKER_BUDGET_REQUESTS"] = str(args.budget)
    os.environ["BROKER_BUDGET_WINDOW_SECONDS"] = str(args.window)
    os.environ["BROKER_BUDGET_EXIT_RESERVE"] = str(max(1, args.budget // 10))
    if args.batch_symbols:
        os.environ["ENGINE_BATCH_SYMBOLS"] = str(args.batch_symbols)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")


def main() -> None:
    args = parse_args()
    configure_environment(args)

    import django

    django.setup()
    from bench.throwaway import throwaway_database

    with throwaway_database():
        if args.alpaca:
            run_against_fake_alpaca(args)
        elif args.all_trade and args.workers:
            run_all_trade_on_workers(args)
        elif args.all_trade:
            run_all_trade(args)
        else:
            run_mixed(args)


def create_bots(args, strategies: list[dict]) -> list[str]:
    from bots.models import Bot
    from tradebots.broker.paper.market import PAPER_SYMBOLS

    symbols = sorted(PAPER_SYMBOLS)[: args.symbols]
    if len(symbols) < args.symbols:
        sys.exit(f"The paper exchange lists {len(symbols)} symbols; ask for at most that many.")
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
    return symbols


def signal_everyone(tick_number: int) -> None:
    """Odd ticks: every bot gets a buy signal; even ticks: a sell signal."""
    from bots.models import Bot

    side_strategy = STRATEGY_ALWAYS_BUY if tick_number % 2 else STRATEGY_ALWAYS_SELL
    Bot.objects.update(strategy=side_strategy)


def count_broker_calls(broker_class) -> Counter:
    calls = Counter()
    counted_methods = (
        "get_clock", "get_bars", "get_latest_prices", "submit_market_order", "get_order",
        "get_order_by_client_order_id", "get_account", "get_asset",
    )  # fmt: skip
    for name in counted_methods:
        original = getattr(broker_class, name)

        def counted(self, *a, _name=name, _original=original, **kw):
            calls[_name] += 1
            return _original(self, *a, **kw)

        setattr(broker_class, name, counted)
    return calls


def run_mixed(args) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bots.schema import StrategyConfig
    from tradebots.broker.paper.broker import PaperBroker
    from trading import engine

    strategies = [
        StrategyConfig.model_validate(
            {"indicators": {"rsi": {"enabled": True, "period": 10 + n},
                            "sma_cross": {"enabled": n % 2 == 0, "fast": 5 + n, "slow": 30 + n}},
             "buy_rule": "majority" if n % 2 == 0 else "rsi", "sell_rule": "rsi"}
        ).model_dump(mode="json")
        for n in range(args.strategies)
    ]  # fmt: skip
    symbols = create_bots(args, strategies)
    calls = count_broker_calls(PaperBroker)
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


def run_all_trade(args) -> None:
    from django.db import connection

    from tradebots import live
    from tradebots.broker.paper.broker import PaperBroker
    from trading import engine

    symbols = create_bots(args, [STRATEGY_ALWAYS_BUY])
    calls = count_broker_calls(PaperBroker)
    print(
        f"{args.bots} running bots over {len(symbols)} symbols, every bot trading each tick "
        f"({connection.vendor}, paper exchange)"
    )
    for number in range(1, args.ticks + 1):
        signal_everyone(number)
        calls.clear()
        pushes_before = live.pushes_sent()
        statements = Counter()

        def count(execute, sql, params, many, context, statements=statements):
            kind = "exchange" if '"paper_exchange_' in sql else "ours"
            if sql.split(None, 1)[0].upper() in TRANSACTION_CONTROL:
                kind = "transaction"
            statements[kind] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            report = engine.run_tick(dispatch=engine.evaluate_batch)
            elapsed = time.perf_counter() - started
        order_count = calls["submit_market_order"]
        exchange_queries, ours = statements["exchange"], statements["ours"]
        pushes = live.pushes_sent() - pushes_before
        actions = Counter(str(outcome.action) for outcome in report.outcomes)
        per_order = max(order_count, 1)
        print(
            f"tick {number}: {elapsed:.2f} s | {dict(actions)} | orders {order_count} "
            f"({order_count / elapsed:.0f}/s) | queries per order: ours {ours / per_order:.1f}, "
            f"paper exchange {exchange_queries / per_order:.1f}, BEGIN/COMMIT "
            f"{statements['transaction'] / per_order:.1f} | pushes {pushes} "
            f"({pushes / per_order:.3f} per order) | broker account calls {calls['get_account']}"
        )


def worker_environment() -> dict[str, str]:
    """The worker processes use this run's database (the test_ one on PostgreSQL)."""
    from django.db import connection

    env = dict(os.environ)
    if connection.vendor == "postgresql":
        from urllib.parse import urlparse

        url = urlparse(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = url._replace(path="/" + connection.settings_dict["NAME"]).geturl()
    return env


def run_all_trade_on_workers(args) -> None:
    import subprocess

    from django.conf import settings
    from django.db import connection

    from tradebots.celery import app
    from trading import engine, tasks
    from trading.models import Trade

    symbols = create_bots(args, [STRATEGY_ALWAYS_BUY])
    connection.close()  # the workers fork their own connections
    app.control.purge()
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "celery", "-A", "tradebots", "worker", "-P", "prefork",
         "-c", str(args.workers), "--loglevel", "WARNING", "-n", f"bench-{os.getpid()}@%h"],
        env=worker_environment(), cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:
        for _ in range(120):
            if app.control.ping(timeout=0.5):
                break
        print(
            f"{args.bots} running bots over {len(symbols)} symbols, every bot trading each tick, "
            f"{args.workers} Celery worker processes, {settings.ENGINE_BATCH_SYMBOLS} symbols "
            f"per batch task ({connection.vendor}, paper exchange)"
        )
        for number in range(1, args.ticks + 1):
            signal_everyone(number)
            before = Trade.objects.count()
            results = []
            started = time.perf_counter()
            report = engine.run_tick(
                dispatch=lambda batch, results=results: results.append(
                    tasks.evaluate_batch.delay(batch.timeframe, list(batch.symbols))
                )
            )
            for result in results:
                result.get(timeout=600)
            elapsed = time.perf_counter() - started
            orders = Trade.objects.count() - before
            print(
                f"tick {number}: {elapsed:.2f} s | {len(report.batches)} batch tasks | "
                f"orders {orders} ({orders / elapsed:.0f}/s)"
            )
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def run_against_fake_alpaca(args) -> None:
    from django.conf import settings

    from trading import engine
    from trading.tests.fake_alpaca import API_KEY, SECRET_KEY, FakeAlpaca

    symbols = create_bots(args, [STRATEGY_ALWAYS_BUY])
    with FakeAlpaca() as fake:
        fake.faults.latency = args.latency
        # The fake answers 429 past the same limit, as Alpaca does past its 200 a minute.
        fake.faults.rate_limit = (args.budget, args.window)
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = API_KEY, SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.url
        print(
            f"{args.bots} bots over {len(symbols)} symbols against the fake Alpaca "
            f"({args.latency * 1000:.0f} ms latency), budget {args.budget} per {args.window:g} s"
        )
        for number in range(1, args.ticks + 1):
            signal_everyone(number)
            started = time.perf_counter()
            report = engine.run_tick(dispatch=engine.evaluate_batch)
            elapsed = time.perf_counter() - started
            actions = Counter(str(outcome.action) for outcome in report.outcomes)
            print(f"tick {number}: {elapsed:.1f} s | {dict(actions)}")
        moments = sorted(request.at for request in fake.received)
        busiest, start = 0, 0
        for end, moment in enumerate(moments):
            while moment - moments[start] >= args.window:
                start += 1
            busiest = max(busiest, end - start + 1)
        print(
            f"requests {len(moments)}, most in any {args.window:g} s window: {busiest} "
            f"(budget {args.budget}); 429 answers: {fake.rate_limited}"
        )


if __name__ == "__main__":
    main()
