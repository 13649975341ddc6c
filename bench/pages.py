"""Benchmark: server time of every page and API list with a trader's volume of data.

    make bench-pages
    make bench-pages BENCH_ARGS="--scale 0.1 --repeat 21"
    make bench-pages BENCH_ARGS="--database-url postgres://postgres@127.0.0.1:5432/bench"

Builds a throwaway ``test_`` database on the given PostgreSQL server (created and dropped here,
as bench/load.py does) with, at ``--scale 1``, 200 bots, 1,000 open positions, 5,000 closed
positions, 100,000 trades (the data set of bench/load.py) and reconciliation runs, the newest
with 1,500 discrepancies; ``--scale 0.1`` builds a tenth of it, so two runs show whether a page's
time grows with the data. Then it requests every page and API list in-process through Django's
test Client (the whole middleware stack and template rendering, no HTTP server) as a logged-in
superuser, ``--repeat`` times each after one warm-up, and prints per path the median and best
time, the queries one request makes and the response size. Target (issue 15): every page <= 100
ms median at scale 1 on this machine, and roughly flat from scale 0.1 to 1.

The broker is the built-in paper exchange (no Alpaca keys): its books are tables in the same
database and its prices a pure function of time, so its work is counted in the time (and its
queries in the count) but there is no network latency to leave out. The dashboard's account
figures are cached for ``ACCOUNT_REFRESH_SECONDS`` as in production.
"""

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/test",
        help="the PostgreSQL server to run on (a test_ database is created and dropped there)",
    )  # fmt: skip
    parser.add_argument("--scale", type=float, default=1.0, help="share of the full data set")
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per path")
    parser.add_argument("--only", nargs="*", help="only the paths whose label contains these")
    args = parser.parse_args()
    # bench/load.py's seed() reads these.
    args.bots = max(2, round(200 * args.scale))
    args.open_positions = round(1000 * args.scale)
    args.closed_positions = round(5000 * args.scale)
    args.trades = round(100_000 * args.scale)
    args.discrepancies = round(1500 * args.scale)
    return args


def seed_runs(args) -> None:
    """50 runs (a few hours of the 15-minute schedule), the newest with ``discrepancies``
    discrepancies (a broker that lost track of a batch of orders), as the service stores them."""
    from django.utils import timezone

    from bots.models import Bot
    from reconciliation.models import ReconciliationRun
    from reconciliation.services import KIND_LABELS, Kind

    bots = list(Bot.objects.values_list("id", "name")[:50])
    now = timezone.now()
    discrepancies = [
        {
            "kind": str(Kind.MISSING_IN_BROKER),
            "label": KIND_LABELS[Kind.MISSING_IN_BROKER],
            "bot": {"id": str(bots[n % len(bots)][0]), "name": bots[n % len(bots)][1]},
            "trade_id": n + 1,
            "order_id": f"order-{n}",
            "client_order_id": f"load-{n}",
            "symbol": "AAPL",
            "side": "buy",
            "ours": "filled",
            "broker": None,
            "detail": f"Our books say filled (order order-{n}); the broker has no such order.",
            "submitted_at": (now - timedelta(minutes=n)).isoformat(),
        }
        for n in range(args.discrepancies)
    ]
    runs = []
    for n in range(50):
        found = discrepancies if n == 0 else discrepancies[:3]
        started = now - timedelta(minutes=15 * n)
        runs.append(
            ReconciliationRun(
                started_at=started,
                finished_at=started + timedelta(seconds=2),
                trigger=ReconciliationRun.Trigger.SCHEDULE,
                outcome=ReconciliationRun.Outcome.DISCREPANCIES,
                limit=10_000,
                window_end=started,
                orders_checked=10_000,
                synced_count=10_000 - len(found),
                discrepancy_count=len(found),
                discrepancies=found,
                holdings_checked=50,
            )  # fmt: skip
        )
    ReconciliationRun.objects.bulk_create(runs)


def deep_trades_query() -> str:
    """The query string of the trades page halfway down the list: a keyset cursor."""
    from tradebots.pagination import encode_cursor
    from trading.models import Trade

    middle = Trade.objects.count() // 2
    trade = Trade.objects.order_by("-created_at", "-id")[middle]
    return "cursor=" + encode_cursor(trade, ("created_at", "id"))


def paths() -> list[tuple[str, str, dict]]:
    """(label, path, extra request headers) of every page and API list."""
    from bots.models import Bot
    from reconciliation.models import ReconciliationRun
    from trading.models import Position
    from trading.views import CLOSED_POSITIONS_ID, CLOSED_POSITIONS_PER_PAGE, OPEN_POSITIONS_ID

    bot = Bot.objects.order_by("name").first()
    newest_run = ReconciliationRun.objects.order_by("-started_at").first()
    closed = Position.objects.filter(is_open=False).count()
    closed_middle_page = max(1, closed // 2 // CLOSED_POSITIONS_PER_PAGE)
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("dashboard", "/", {}),
        ("bots list", "/bots/", {}),
        ("a bot's page", f"/bots/{bot.pk}/", {}),
        ("positions", "/trading/positions/", {}),
        (
            "positions: older open (htmx)",
            "/trading/positions/?" + older_open_positions_query(),
            {**htmx, "HTTP_HX_TARGET": OPEN_POSITIONS_ID},
        ),
        (
            "positions: closed, halfway down (htmx)",
            f"/trading/positions/?page={closed_middle_page}",
            {**htmx, "HTTP_HX_TARGET": CLOSED_POSITIONS_ID},
        ),
        ("trades", "/trading/trades/", {}),
        ("trades, halfway down", "/trading/trades/?" + deep_trades_query(), {}),
        ("trades of a bot, sells", f"/trading/trades/?bot={bot.pk}&side=sell", {}),
        ("trades: bot search (htmx)", "/trading/trades/bots/?bot_name=Load+1", htmx),
        ("reconciliation runs", "/reconciliation/", {}),
        ("run with the discrepancies", f"/reconciliation/runs/{newest_run.pk}/", {}),
        ("admin: trades", "/admin/trading/trade/", {}),
        ("admin: positions", "/admin/trading/position/", {}),
        ("admin: bots", "/admin/bots/bot/", {}),
        ("admin: runs", "/admin/reconciliation/reconciliationrun/", {}),
        ("GET /api/bots", "/api/bots", {}),
        ("GET /api/trades", "/api/trades", {}),
        ("GET /api/trades?bot=", f"/api/trades?bot={bot.pk}", {}),
        ("GET /api/positions", "/api/positions", {}),
        ("GET /api/positions/closed", "/api/positions/closed", {}),
        ("GET /api/positions/unmanaged", "/api/positions/unmanaged", {}),
        ("GET /api/bots/{id}/status-changes", f"/api/bots/{bot.pk}/status-changes", {}),
        ("GET /api/reconciliation/runs", "/api/reconciliation/runs", {}),
    ]


def older_open_positions_query() -> str:
    """The open positions table's second page, as its "Older" link asks for it."""
    from tradebots.pagination import encode_cursor
    from trading.models import Position
    from trading.views import OPEN_POSITIONS_PER_PAGE

    last_of_first = (
        Position.objects.filter(is_open=True)
        .order_by("-opened_at", "-id")[OPEN_POSITIONS_PER_PAGE - 1 : OPEN_POSITIONS_PER_PAGE]
        .first()
    )
    if last_of_first is None:
        return ""
    return "open=" + encode_cursor(last_of_first, ("opened_at", "id"))


def measure(client, label: str, path: str, headers: dict, repeat: int) -> dict:
    from django.db import connection

    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):  # also the warm-up
        response = client.get(path, **headers)
    if response.status_code != 200:
        sys.exit(f"{label}: {path} answered {response.status_code}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(path, **headers)
        times.append(time.perf_counter() - started)
    return {
        "median": statistics.median(times) * 1000,
        "best": min(times) * 1000,
        "queries": len(queries),
        "bytes": len(response.content),
    }


def main() -> None:
    args = parse_args()
    from bench.throwaway import setup_django

    setup_django(args.database_url)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from bench.load import seed
    from bench.throwaway import throwaway_database

    with throwaway_database():
        started = time.perf_counter()
        seed(args)
        seed_runs(args)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(
            f"scale {args.scale:g}: {args.bots} bots, {args.open_positions} open and "
            f"{args.closed_positions} closed positions, {args.trades} trades, a run with "
            f"{args.discrepancies} discrepancies; seeded in {time.perf_counter() - started:.0f} s"
        )
        user = get_user_model().objects.create_superuser("bench", password=None)
        client = Client(SERVER_NAME="127.0.0.1")
        client.force_login(user)
        print(f"median of {args.repeat} requests each (in-process, PostgreSQL)\n")
        print(f"| {'page':38} | median ms | best ms | queries | KB |")
        print(f"| {'-' * 38} | --: | --: | --: | --: |")
        for label, path, headers in paths():
            if args.only and not any(word in label for word in args.only):
                continue
            result = measure(client, label, path, headers, args.repeat)
            print(
                f"| {label:38} | {result['median']:9.1f} | {result['best']:7.1f} | "
                f"{result['queries']:7} | {result['bytes'] / 1024:.0f} |"
            )


if __name__ == "__main__":
    main()
