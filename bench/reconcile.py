"""Benchmark: reconciliation of N broker orders against N trades (plus older history).

    make bench-reconcile                           # 1,000 / 5,000 / 10,000 orders, 5 runs each
    .venv/bin/python -m tradebots.run_with_redis .venv/bin/python bench/reconcile.py --sizes 10000

Uses a throwaway SQLite database. The broker's orders are built up front as the gateway's
``Order`` dataclasses and handed over by a stub broker, so the broker's own response time is
excluded, as the target says: 10,000 orders against 10,000 trades in under 1 s of
reconciliation work, with a database query count that does not grow with the number of orders.
About 1% of the orders are made to disagree (a price, a status, a missing trade) and 1% are
external, so the report has something to say.
"""

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated order counts")
    parser.add_argument("--runs", type=int, default=5, help="runs per size")
    parser.add_argument("--history", type=int, default=10000, help="older trades, not compared")
    parser.add_argument("--bots", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    workdir = tempfile.mkdtemp(prefix="tradebots-bench-reconcile-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    os.environ["SQLITE_PATH"] = os.path.join(workdir, "bench.sqlite3")
    os.environ.pop("DATABASE_URL", None)
    os.environ["ALPACA_API_KEY"] = os.environ["ALPACA_SECRET_KEY"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bots.models import Bot
    from reconciliation import services
    from reconciliation.models import ReconciliationRun
    from reconciliation.services import MAX_LIMIT
    from tradebots.broker import Order, OrderSide, OrderType
    from trading.models import Trade

    if max(sizes) > MAX_LIMIT:
        sys.exit(f"At most {MAX_LIMIT} orders per run (the service's limit).")

    call_command("migrate", verbosity=0)
    bots = Bot.objects.bulk_create(
        Bot(name=f"Bench {n}", symbol="AAPL", capital=1000) for n in range(args.bots)
    )

    class ListBroker:
        """Hands over ready-made orders: no broker time in the measurement."""

        def __init__(self, orders):
            self.orders = orders

        def iter_orders(self, status=None, after=None, until=None):
            return iter(self.orders)

        def list_positions(self):
            return []

    def populate(count: int) -> list:
        Trade.objects.all().delete()
        now = timezone.now()
        old = now - timedelta(days=30)
        # Older history first: outside every window, it must not slow the comparison down.
        Trade.objects.bulk_create(
            Trade(
                bot=bots[n % len(bots)], symbol="AAPL", side="buy", qty=1, filled_qty=1,
                price=Decimal("100.00"), status="filled", order_id=str(uuid.uuid4()),
                client_order_id=f"bot-{bots[n % len(bots)].id.hex[:8]}-{n:08x}",
                submitted_at=old - timedelta(seconds=n),
            )
            for n in range(args.history)
        )  # fmt: skip
        orders, trades = [], []
        for n in range(count):
            bot = bots[n % len(bots)]
            submitted = now - timedelta(seconds=5 * (n + 1))  # newest first
            client_order_id = f"bot-{bot.id.hex[:8]}-{0x80000000 + n:08x}"  # not a history id
            external = n % 100 == 50
            order = Order(
                id=str(uuid.uuid4()),
                client_order_id=str(uuid.uuid4()) if external else client_order_id,
                symbol="AAPL", side=OrderSide.BUY, type=OrderType.MARKET,
                qty=Decimal("10"), filled_qty=Decimal("10"),
                filled_avg_price=Decimal("187.4312"), status="filled",
                submitted_at=submitted, filled_at=submitted,
            )  # fmt: skip
            orders.append(order)
            if external or n % 100 == 10:  # 10: a crash before the Trade was written
                continue
            trades.append(
                Trade(
                    bot=bot, symbol="AAPL", side="buy", qty=Decimal("10"),
                    filled_qty=Decimal("10"),
                    price=Decimal("187.55") if n % 100 == 20 else Decimal("187.4312"),
                    status="accepted" if n % 100 == 30 else "filled",
                    order_id=order.id, client_order_id=client_order_id,
                    submitted_at=submitted, filled_at=submitted,
                )
            )  # fmt: skip
        Trade.objects.bulk_create(trades, batch_size=1000)
        # As the order path writes them: the Trade shortly before the order left.
        Trade.objects.update(created_at=F("submitted_at") - timedelta(milliseconds=50))
        Trade.objects.filter(status="accepted").update(updated_at=now - timedelta(hours=1))
        return orders

    print(
        f"Reconciliation: N broker orders vs ~N trades (+{args.history} older trades), "
        f"{args.bots} bots, SQLite, {args.runs} runs per size; broker time excluded"
    )
    for size in sizes:
        orders = populate(size)
        broker = ListBroker(orders)
        times, query_counts = [], set()
        for _ in range(args.runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                run = services.reconcile(
                    trigger=ReconciliationRun.Trigger.COMMAND, limit=size, broker=broker
                )
                elapsed = time.perf_counter() - started
            times.append(elapsed)
            query_counts.add(len(queries))
        print(
            f"{size:>6} orders: median {statistics.median(times):.3f} s, best {min(times):.3f} s"
            f" | queries {'/'.join(str(q) for q in sorted(query_counts))}"
            f" | synced {run.synced_count}, discrepancies {run.discrepancy_count}, "
            f"external {run.external_count}"
        )


if __name__ == "__main__":
    main()
