"""The shared broker request budget: a sliding-window log in the real Redis of the test run."""

import logging
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.conf import settings

from tradebots.broker import (
    BrokerUnavailable,
    BudgetExhausted,
    OrderSide,
    Priority,
    RequestBudget,
    get_broker,
    request_priority,
)
from tradebots.broker.paper.broker import PaperBroker
from tradebots.run_with_redis import _free_port


def new_budget(limit=10, window=1.0, exit_reserve=0, max_wait=30.0, url=None) -> RequestBudget:
    return RequestBudget(
        url or settings.REDIS_URL,
        key=f"test:broker-budget:{uuid.uuid4().hex}",
        limit=limit,
        window_seconds=window,
        exit_reserve=exit_reserve,
        max_wait=max_wait,
    )


def most_in_any_window(timestamps: list[float], window: float) -> int:
    """The largest number of timestamps inside one closed window of that length."""
    times = sorted(timestamps)
    return max(
        (sum(1 for other in times[i:] if other - start <= window) for i, start in enumerate(times)),
        default=0,
    )


def run_threads(count: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded():
        try:
            target()
        except BaseException as error:  # noqa: BLE001 (reported by the test, not lost)
            errors.append(error)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_most_in_any_window_counts_sliding_windows():
    assert most_in_any_window([0.0, 0.5, 1.0, 1.6, 2.1], 1.0) == 3
    assert most_in_any_window([0.0, 1.01, 2.02], 1.0) == 1


def test_no_window_holds_more_than_the_limit_across_threads():
    budget = new_budget(limit=10, window=1.0)
    sent: list[float] = []
    lock = threading.Lock()
    remaining = iter(range(25))

    def worker():
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            slot = budget.acquire(Priority.ENTRY)
            with lock:
                sent.append(time.time())  # "sending": between taking the slot and sent()
            budget.sent(slot)

    started = time.monotonic()
    assert run_threads(4, worker) == []
    elapsed = time.monotonic() - started

    assert len(sent) == 25
    assert most_in_any_window(sent, 1.0) <= 10
    # 25 requests at 10 per second need a third window: the limiter really made them wait.
    assert elapsed >= 2.0


def test_used_counts_the_current_window():
    budget = new_budget(limit=10, window=1.0)
    for _ in range(3):
        budget.sent(budget.acquire())
    assert budget.used() == 3
    time.sleep(1.1)
    assert budget.used() == 0


def test_exits_use_the_reserve_that_entries_must_leave():
    budget = new_budget(limit=10, window=1.0, exit_reserve=3)
    for _ in range(7):
        assert budget.acquire(Priority.ENTRY, max_wait=0) is not None

    # 3 slots are left: entries may not take them...
    with pytest.raises(BudgetExhausted, match="not sent"):
        budget.acquire(Priority.ENTRY, max_wait=0.1)
    # ...exits may, all of them, and no more.
    with request_priority(Priority.EXIT):
        for _ in range(3):
            assert budget.acquire(max_wait=0) is not None
        with pytest.raises(BudgetExhausted):
            budget.acquire(max_wait=0.1)
    assert budget.used() == 10


def test_an_entry_waits_while_exits_proceed():
    budget = new_budget(limit=10, window=1.0, exit_reserve=3)
    started = time.monotonic()
    for _ in range(7):
        budget.acquire(Priority.ENTRY)
    entry_done: list[float] = []

    def entry():
        budget.acquire(Priority.ENTRY, max_wait=5)
        entry_done.append(time.monotonic())

    waiting_entry = threading.Thread(target=entry)
    waiting_entry.start()
    time.sleep(0.2)
    exit_times = []
    for _ in range(3):
        budget.acquire(Priority.EXIT, max_wait=0)
        exit_times.append(time.monotonic())
    waiting_entry.join(timeout=10)

    assert len(entry_done) == 1
    assert entry_done[0] > max(exit_times)
    assert entry_done[0] - started >= 1.0  # its slot came when the first entries aged out
    assert all(moment - started < 0.5 for moment in exit_times)


def test_priority_is_entry_by_default_and_restored_after_the_block():
    from tradebots.broker import current_priority

    assert current_priority() is Priority.ENTRY
    with request_priority(Priority.EXIT):
        assert current_priority() is Priority.EXIT
        with request_priority(Priority.ENTRY):
            assert current_priority() is Priority.ENTRY
        assert current_priority() is Priority.EXIT
    assert current_priority() is Priority.ENTRY


def test_redis_down_lets_requests_through_with_a_warning(caplog):
    closed_port = _free_port()
    budget = new_budget(limit=1, window=60, url=f"redis://127.0.0.1:{closed_port}/0")
    caplog.set_level(logging.WARNING, logger="tradebots.broker.budget")
    started = time.monotonic()
    for _ in range(5):  # more than the limit of 1: nothing is counted, nothing waits
        budget.sent(budget.acquire(Priority.ENTRY, max_wait=0))
    assert time.monotonic() - started < 2
    assert "Redis unreachable" in caplog.text


# --- AlpacaBroker against the fake Alpaca ------------------------------------------------------


def test_many_threads_stay_inside_the_budget_without_a_429(fake_alpaca):
    fake_alpaca.faults.latency = 0.05
    fake_alpaca.faults.rate_limit = (20, 2.0)  # the fake answers 429 beyond 20 in 2 s
    broker = fake_alpaca.broker(budget=new_budget(limit=20, window=2.0, exit_reserve=5))
    jobs = [("account", None)] * 50 + [("buy", Priority.ENTRY)] * 5 + [("buy", Priority.EXIT)] * 5
    lock = threading.Lock()
    todo = iter(jobs)

    def worker():
        while True:
            with lock:
                job = next(todo, None)
            if job is None:
                return
            kind, priority = job
            if kind == "account":
                broker.get_account()
            else:
                with request_priority(priority):
                    order = broker.submit_market_order(
                        "AAPL", Decimal(1), OrderSide.BUY, f"bot-test-{uuid.uuid4().hex[:8]}"
                    )
                assert order.status == "filled"

    assert run_threads(6, worker) == []

    arrivals = [request.at for request in fake_alpaca.received]
    assert len(arrivals) == 60  # one request per call: nothing was retried
    assert most_in_any_window(arrivals, 2.0) <= 20
    assert fake_alpaca.rate_limited == 0


def test_submit_without_a_slot_raises_budget_exhausted_and_sends_nothing(fake_alpaca):
    budget = new_budget(limit=5, window=60, exit_reserve=0)
    for _ in range(5):
        budget.acquire(Priority.EXIT)
    broker = fake_alpaca.broker(budget=budget, budget_max_wait=0.05)

    started = time.monotonic()
    with request_priority(Priority.EXIT), pytest.raises(BudgetExhausted, match="not sent"):
        broker.submit_market_order("AAPL", Decimal(1), OrderSide.BUY, "bot-abcdef01-00000001")
    with pytest.raises(BudgetExhausted):  # a read is not retried after a wait for a slot
        broker.get_account()
    assert time.monotonic() - started < 1

    assert fake_alpaca.received == []  # neither the POST nor a look-up went out


def test_a_retry_that_finds_no_slot_leaves_the_order_unknown_not_unsent(fake_alpaca):
    """alpaca-py retries a 429 on its own; when that retry finds no slot the first POST has
    already gone out, so the order must not be reported as certainly not sent."""
    budget = new_budget(limit=1, window=60, exit_reserve=0)
    broker = fake_alpaca.broker(budget=budget, budget_max_wait=0.05)
    fake_alpaca.fail(429, times=1, method="POST", path="/v2/orders")

    with pytest.raises(BrokerUnavailable) as raised:
        broker.submit_market_order("AAPL", Decimal(1), OrderSide.BUY, "bot-abcdef01-00000002")

    assert not isinstance(raised.value, BudgetExhausted)
    assert "outcome unknown" in str(raised.value)
    assert len(fake_alpaca.requests_to("POST", "/v2/orders")) == 1


def test_the_paper_exchange_has_no_budget(db, settings, buying_power):
    settings.BROKER_BUDGET_REQUESTS, settings.BROKER_BUDGET_EXIT_RESERVE = 1, 0
    settings.BROKER_BUDGET_MAX_WAIT_SECONDS = 0
    buying_power("10000")
    broker = get_broker()
    assert isinstance(broker, PaperBroker)
    for number in range(3):
        order = broker.submit_market_order(
            "AAPL", Decimal(1), OrderSide.BUY, f"bot-abcdef01-0000001{number}"
        )
        assert order.status == "filled"
