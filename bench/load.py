"""Benchmark: concurrent clients against daphne on PostgreSQL with a trader's volume of data.

    make bench-load
    make bench-load BENCH_ARGS="--clients 20 --seconds 30 --database-url postgres://postgres@127.0.0.1/test"

Builds a throwaway ``test_`` database on the given PostgreSQL server with 200 bots, 1,000 open
positions (one per bot; the rest from bots deleted since), 5,000 closed positions and 100,000
trades, starts a real daphne on it (the production ASGI stack, embedded defaults otherwise), logs
a trader in, and has N client threads request the dashboard and ``/api/positions`` in turn for
the given time. Prints per path: requests, errors, requests per second, p50 / p95 / p99, and the
most connections the server held to the database at any moment (sampled from pg_stat_activity
every 50 ms). Targets on this machine (issue 13): 0 errors, p95 <= 300 ms for both paths with 20
clients, connections bounded by the pool.
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PATHS = ("/", "/api/positions")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/test",
        help="the PostgreSQL server to run on (a test_ database is created and dropped there)",
    )  # fmt: skip
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--web-processes", type=int, default=1, help="daphne processes sharing the socket"
    )
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--bots", type=int, default=200)
    parser.add_argument("--open-positions", type=int, default=1000)
    parser.add_argument("--closed-positions", type=int, default=5000)
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), help="paths requested in turn")
    return parser.parse_args()


def seed(args) -> None:
    """The data set, written in bulk: what a busy account accumulates over months."""
    from django.utils import timezone

    from bots.models import Bot
    from tradebots.broker.paper.market import PAPER_SYMBOLS
    from tradebots.broker.paper.models import PaperPosition
    from trading.models import Position, Trade

    symbols = sorted(PAPER_SYMBOLS)[:50]
    now = timezone.now()
    bots = Bot.objects.bulk_create(
        Bot(
            name=f"Load {n}",
            symbol=symbols[n % len(symbols)],
            capital=Decimal(1000),
            timeframe="5Min",
            status=Bot.Status.PAUSED,
        )  # fmt: skip
        for n in range(args.bots)
    )
    open_positions = [
        Position(
            bot=bots[n] if n < len(bots) else None,
            symbol=symbols[n % len(symbols)],
            qty=Decimal(10),
            avg_entry_price=Decimal("100.5"),
            entry_reason="load",
            opened_at=now - timezone.timedelta(minutes=n),
        )  # fmt: skip
        for n in range(args.open_positions)
    ]
    closed = [
        Position(
            bot=bots[n % len(bots)],
            symbol=symbols[n % len(symbols)],
            qty=Decimal(5),
            avg_entry_price=Decimal("99"),
            is_open=False,
            exit_price=Decimal("101"),
            realized_pnl=Decimal(10),
            opened_at=now - timezone.timedelta(days=2, minutes=n),
            closed_at=now - timezone.timedelta(days=1, minutes=n),
        )  # fmt: skip
        for n in range(args.closed_positions)
    ]
    Position.objects.bulk_create(open_positions + closed, batch_size=2000)
    batch = []
    for n in range(args.trades):
        batch.append(
            Trade(
                bot=bots[n % len(bots)],
                symbol=symbols[n % len(symbols)],
                side=Trade.Side.BUY if n % 2 else Trade.Side.SELL,
                qty=Decimal(5),
                filled_qty=Decimal(5),
                price=Decimal("100.25"),
                status=Trade.Status.FILLED,
                client_order_id=f"load-{n}",
                order_id=f"order-{n}",
                reason="load",
            )  # fmt: skip
        )
        if len(batch) == 5000:
            Trade.objects.bulk_create(batch)
            batch = []
    Trade.objects.bulk_create(batch)
    held = defaultdict(Decimal)
    for position in open_positions:
        held[position.symbol] += position.qty
    PaperPosition.objects.bulk_create(
        PaperPosition(symbol=symbol, qty=qty, avg_entry_price=Decimal("100.5"))
        for symbol, qty in held.items()
    )


def trader_session_cookie() -> tuple[str, str]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("load", password=secrets.token_urlsafe())
    client = Client()
    client.force_login(user)
    return settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value


def start_daphne(database_url: str, processes: int) -> tuple[list[subprocess.Popen], int]:
    """``processes`` daphne processes on one port, each with its own listening socket
    (SO_REUSEPORT, so the kernel spreads connections evenly instead of whichever process
    accepts first taking a burst of them), passed in with ``--fd`` as Channels' deployment guide
    does under a process manager; returns them and the port."""
    port, listeners = 0, []
    for _ in range(processes):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(512)
        port = listener.getsockname()[1]
        listeners.append(listener)
    env = dict(os.environ, DATABASE_URL=database_url, DEBUG="false")
    servers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "daphne",
                "--fd",
                str(listener.fileno()),
                "tradebots.asgi:application",
            ],
            env=env,
            cwd=ROOT,
            pass_fds=(listener.fileno(),),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for listener in listeners
    ]
    for listener in listeners:
        listener.close()  # the servers hold them now
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for server in servers:
            if server.poll() is not None:
                sys.exit(f"daphne exited: {server.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
                probe.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if probe.recv(12).startswith(b"HTTP/1."):
                    time.sleep(2)  # the other processes finish starting too
                    return servers, port
        except OSError:
            time.sleep(0.2)
    for server in servers:
        server.kill()
    sys.exit("daphne did not start within 60 s")


class ConnectionSampler(threading.Thread):
    """The most backends connected to the test database at any sampled moment."""

    def __init__(self, conninfo: str, database: str):
        super().__init__(daemon=True)
        self.conninfo, self.database = conninfo, database
        self.peak, self.stopped = 0, threading.Event()

    def run(self):
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            while not self.stopped.is_set():
                (count,) = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                self.peak = max(self.peak, count)
                time.sleep(0.05)


WRK_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
    .. '"p50": %d, "p95": %d, "p99": %d}\\n',
    summary.requests, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def drive(base_url: str, cookie, paths: list[str], clients: int, seconds: float) -> dict:
    """One wrk per path, all at once, the clients shared between them: a load generator in C, so
    the numbers are the server's and not a Python client's own queueing on its GIL."""
    import requests

    session_cookie = f"{cookie[0]}={cookie[1]}"
    for path in paths:  # a redirect to the login page would count as a success in wrk
        answer = requests.get(base_url + path, headers={"Cookie": session_cookie}, timeout=30)
        if answer.status_code != 200 or answer.history:
            sys.exit(f"{path} answers {answer.status_code} before the load: check the set-up")
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench-load does)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_REPORT)
    connections = [clients // len(paths) + (n < clients % len(paths)) for n in range(len(paths))]
    runs = {
        path: subprocess.Popen(  # noqa: S603 - wrk with our own arguments
            [
                wrk,
                "-t1",
                f"-c{count}",
                f"-d{seconds:g}s",
                "--timeout",
                "30s",
                "-H",
                f"Cookie: {session_cookie}",
                "-s",
                script.name,
                base_url + path,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for path, count in zip(paths, connections, strict=True)
    }
    outcome = {}
    for path, run in runs.items():
        output = run.communicate()[0]
        report = [line for line in output.splitlines() if line.startswith("{")]
        if run.returncode or not report:
            sys.exit(f"wrk failed on {path}: {output[-1000:]}")
        outcome[path] = json.loads(report[-1])
    os.unlink(script.name)
    return outcome


def redis_connections_received() -> int:
    from tradebots.redis_client import redis_client

    return redis_client().info("stats")["total_connections_received"]


def main() -> None:
    args = parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")
    os.environ["ALPACA_API_KEY"] = os.environ["ALPACA_SECRET_KEY"] = ""
    import django

    django.setup()
    from django.db import connection

    test_database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    servers, sampler = [], None
    try:
        started = time.perf_counter()
        seed(args)
        cookie = trader_session_cookie()
        print(
            f"seeded {args.bots} bots, {args.open_positions} open and {args.closed_positions} "
            f"closed positions, {args.trades} trades in {time.perf_counter() - started:.0f} s"
        )
        url = urlparse(args.database_url)
        test_url = url._replace(path="/" + test_database).geturl()
        connection.close()
        servers, port = start_daphne(test_url, args.web_processes)
        sampler = ConnectionSampler(url._replace(path="/postgres").geturl(), test_database)
        sampler.start()
        redis_connections_before = redis_connections_received()
        outcome = drive(f"http://127.0.0.1:{port}", cookie, args.paths, args.clients, args.seconds)
        print(
            f"{args.clients} clients for {args.seconds:g} s against {args.web_processes} daphne "
            f"process(es) (PostgreSQL)"
        )
        for path, report in outcome.items():
            errors = {
                kind: report[kind]
                for kind in ("connect", "read", "write", "status", "timeout")
                if report[kind]
            }
            print(
                f"{path:16} requests {report['requests']:5} "
                f"({report['requests'] / args.seconds:.1f}/s) | errors {sum(errors.values())} "
                f"{errors or ''}| p50 {report['p50'] / 1000:.0f} ms | "
                f"p95 {report['p95'] / 1000:.0f} ms | p99 {report['p99'] / 1000:.0f} ms"
            )
        print(
            f"peak database connections: {sampler.peak} | Redis connections opened: "
            f"{redis_connections_received() - redis_connections_before}"
        )
    finally:
        if sampler:
            sampler.stopped.set()
            sampler.join(timeout=2)
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:  # threads stuck on a starved database
                server.kill()
                server.wait()
        connection.close()
        connection.creation.destroy_test_db(test_database, verbosity=0)


if __name__ == "__main__":
    main()
