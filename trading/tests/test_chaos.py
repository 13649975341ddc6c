"""Chaos: engine ticks and manual sells interleaved with hundreds of broker faults drawn from a
fixed seed, against AlpacaBroker (real alpaca-py) and the fake Alpaca server. Afterwards the books
must agree with the broker to the share.

    make chaos      # this test alone (also part of make test)
"""

import random
from collections import Counter, defaultdict
from decimal import ROUND_DOWN, Decimal

import pytest
from django.utils import timezone

from bots.models import Bot
from bots.tests.factories import BotFactory
from reconciliation.services import reconcile
from tradebots.broker import BrokerError
from tradebots.broker.paper import exchange
from tradebots.broker.paper.models import PaperOrder, PaperPosition
from trading import emergency, engine, orders
from trading.models import Position, Trade
from trading.tests.strategies import ALWAYS_BUY, ALWAYS_SELL

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

SEED = 20261130
ROUNDS = 80
MIN_FAULTS = 200
# Slippage and the synthetic price moving between decision and fill; the bug this guards
# against bought two to three times the capital.
CAPITAL_TOLERANCE = Decimal("1.01")


class Chaos:
    """Draws and injects the faults of one round; counts them."""

    KINDS = (
        "hang_after_create", "5xx_before_create", "5xx_after_create", "429_burst",
        "accepted_unfilled", "partial_fill", "worker_killed", "reads_down", "fill_resting",
    )  # fmt: skip

    def __init__(self, fake, monkeypatch):
        self.fake, self.rng = fake, random.Random(SEED)  # noqa: S311 - a seeded, repeatable draw
        self.injected = Counter()
        self.fill_ratio: Decimal | None = None
        self.kill_next_submit = False
        real_submit_order, real_submit = exchange.submit_order, orders.submit

        def submit_order(**order):
            if self.fill_ratio is not None and order.get("fill_qty") is None:
                order["fill_qty"] = (order["qty"] * self.fill_ratio).to_integral_value(ROUND_DOWN)
            return real_submit_order(**order)

        def submit(trade):
            if self.kill_next_submit:  # the worker died after the write-ahead commit
                self.kill_next_submit = False
                return trade
            return real_submit(trade)

        monkeypatch.setattr(exchange, "submit_order", submit_order)
        monkeypatch.setattr(orders, "submit", submit)

    def inject(self) -> None:
        self.clear()
        for kind in self.rng.sample(self.KINDS, self.rng.randint(2, 4)):
            self.injected[kind] += 1
            faults = self.fake.faults
            if kind == "hang_after_create":
                faults.accept_then_timeout += 1
            elif kind == "5xx_before_create":
                self.fake.fail(500, times=self.rng.randint(1, 4), method="POST", path="/v2/orders")
            elif kind == "5xx_after_create":
                faults.accept_then_504 += 1
            elif kind == "429_burst":
                self.fake.fail(429, times=self.rng.randint(2, 6))
            elif kind == "accepted_unfilled":
                self.fill_ratio = Decimal(0)
            elif kind == "partial_fill":
                self.fill_ratio = Decimal("0.5")
            elif kind == "worker_killed":
                self.kill_next_submit = True
            elif kind == "reads_down":
                self.fake.fail(503, times=self.rng.randint(1, 5), method="GET")
            elif kind == "fill_resting":  # the market fills what was resting
                for order in PaperOrder.objects.filter(status__in=exchange.OPEN_STATUSES):
                    exchange.fill_remaining(order)

    def clear(self) -> None:
        self.fake.faults.failures.clear()
        self.fake.faults.accept_then_timeout = self.fake.faults.accept_then_504 = 0
        self.fill_ratio, self.kill_next_submit = None, False


@pytest.fixture
def chaos(alpaca_fake, settings, monkeypatch):
    # Sub-second everything: a hang outlasts the timeout without the test waiting it out.
    settings.ALPACA_READ_TIMEOUT_SECONDS = 0.3
    settings.ALPACA_INTERACTIVE_TIMEOUT_SECONDS = 0.3
    settings.BROKER_BUDGET_REQUESTS = 100_000
    settings.ORDER_VERIFY_DELAY_SECONDS = 0
    settings.PAPER_STARTING_CASH = Decimal("100000")
    alpaca_fake.faults.stall_seconds = 0.5
    # Verification tasks are replaced by the sync each round runs.
    monkeypatch.setattr(orders, "follow_later", lambda trade, attempt=1: None)
    monkeypatch.setattr(emergency, "follow_later", lambda trade, attempt=1: None)
    return Chaos(alpaca_fake, monkeypatch)


def exposure_within_capital(bots: list[Bot]) -> None:
    """Filled plus open, per bot, never above its capital."""
    for bot in bots:
        held = sum(
            (p.qty * p.avg_entry_price for p in Position.objects.filter(bot=bot, is_open=True)),
            Decimal(0),
        )
        pending = sum(
            ((t.qty - t.filled_qty) * (t.expected_price or 0)
             for t in orders.open_trades().filter(bot=bot, side="buy")),
            Decimal(0),
        )  # fmt: skip
        assert held + pending <= bot.capital * CAPITAL_TOLERANCE, (bot.name, held, pending)


def test_books_agree_with_the_broker_after_hundreds_of_faults(chaos, settings):
    bots = [
        BotFactory(name="Apple one", symbol="AAPL", capital=Decimal("2000")),
        BotFactory(name="Apple two", symbol="AAPL", capital=Decimal("1500")),
        BotFactory(name="Microsoft", symbol="MSFT", capital=Decimal("3000")),
        BotFactory(name="Coke", symbol="KO", capital=Decimal("1000")),
    ]
    Bot.objects.update(status=Bot.Status.RUNNING)
    rng = random.Random(SEED + 1)  # noqa: S311
    manual_sells = 0
    started = timezone.now()

    for round_number in range(ROUNDS):
        chaos.inject()
        # Bots flip between buying and selling so that every round has orders in play.
        for bot in bots:
            strategy = ALWAYS_BUY if (round_number + bots.index(bot)) % 4 < 2 else ALWAYS_SELL
            Bot.objects.filter(pk=bot.pk).update(strategy=strategy, status=Bot.Status.RUNNING)
        try:
            engine.run_tick(dispatch=engine.evaluate_batch)
        except BrokerError:
            pass  # the clock could not be read: this tick is skipped, as on a worker
        if rng.random() < 0.3:
            open_positions = list(Position.objects.filter(is_open=True))
            if open_positions:
                manual_sells += 1
                try:
                    emergency.close_position(rng.choice(open_positions), "chaos", pause_bot=False)
                except emergency.CloseRefused:
                    pass  # already closed, or a buy still open: both are answers, not errors
        settings.ORDER_STALE_SECONDS = rng.choice((0, 300))
        orders.sync_open_orders()
        exposure_within_capital(bots)

    assert sum(chaos.injected.values()) >= MIN_FAULTS, chaos.injected
    assert manual_sells > 10

    # The broker is back: the sync settles everything, canceling whatever still rests.
    chaos.clear()
    settings.ORDER_STALE_SECONDS = 0
    for _ in range(3):
        orders.sync_open_orders()

    assert list(orders.open_trades()) == []
    # 0 intents sent twice: one broker order per intent at most, none we did not record.
    broker_ids = list(PaperOrder.objects.values_list("client_order_id", flat=True))
    assert len(broker_ids) == len(set(broker_ids))
    assert set(broker_ids) <= set(Trade.objects.values_list("client_order_id", flat=True))
    for trade in Trade.objects.exclude(order_id=None):
        assert PaperOrder.objects.get(client_order_id=trade.client_order_id).filled_qty == (
            trade.filled_qty
        )
    exposure_within_capital(bots)
    # Every share at the broker is owned by exactly one bot.
    ours = defaultdict(Decimal)
    for position in Position.objects.filter(is_open=True):
        ours[position.symbol] += position.qty
    broker = {p.symbol: p.qty for p in PaperPosition.objects.all()}
    assert {s: q for s, q in ours.items() if q} == broker
    run = reconcile(trigger="manual", since=started)
    assert not run.failed, run.error
    assert run.discrepancies == [], run.discrepancies
    assert Trade.objects.filter(status=Trade.Status.FILLED).count() > 50
