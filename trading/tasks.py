"""Celery entry points of the engine and the order path. Each stays well inside the engine's
group lock (GROUP_LOCK_SECONDS): a task killed by its time limit releases nothing it should
not, and a lock outliving its holder only ever expires."""

import logging

from celery import shared_task

from tradebots import live
from tradebots.redis_client import redis_client

from . import engine, live_updates, orders

logger = logging.getLogger(__name__)

SYNC_LOCK_KEY = "tradebots:order-sync"
# Below the group lock's timeout, so a batch cannot outlive the lock that keeps it alone.
BATCH_SOFT_LIMIT_SECONDS = engine.GROUP_LOCK_SECONDS - 30
BATCH_HARD_LIMIT_SECONDS = engine.GROUP_LOCK_SECONDS - 15
SYNC_SOFT_LIMIT_SECONDS, SYNC_HARD_LIMIT_SECONDS = 240, 270
VERIFY_SOFT_LIMIT_SECONDS, VERIFY_HARD_LIMIT_SECONDS = 60, 75


@shared_task(soft_time_limit=30, time_limit=45)
def engine_tick() -> dict:
    """Beat's tick: each batch of symbols becomes a task, so more workers share the load."""
    report = engine.run_tick(dispatch=_enqueue)
    return {"market_open": report.market_open, "batches": len(report.batches)}


@shared_task(soft_time_limit=20, time_limit=30)
def push_position_values() -> int:
    """Beat's valuation of the open positions for the Positions pages."""
    return live_updates.push_position_values()


def _enqueue(batch: engine.Batch) -> None:
    evaluate_batch.delay(batch.timeframe, list(batch.symbols))


@shared_task(soft_time_limit=BATCH_SOFT_LIMIT_SECONDS, time_limit=BATCH_HARD_LIMIT_SECONDS)
def evaluate_batch(timeframe: str, symbols: list[str]) -> list[str]:
    outcomes = engine.evaluate_batch(engine.Batch(timeframe, tuple(symbols)))
    return [outcome.describe() for outcome in outcomes]


@shared_task(soft_time_limit=SYNC_SOFT_LIMIT_SECONDS, time_limit=SYNC_HARD_LIMIT_SECONDS)
def sync_open_orders() -> dict:
    # One sync at a time: beat fires every ORDER_SYNC_SECONDS, a slow broker can make one last
    # longer. Two would be safe (every resend carries its client_order_id), only wasteful.
    lock = redis_client().lock(SYNC_LOCK_KEY, timeout=SYNC_HARD_LIMIT_SECONDS)
    if not lock.acquire(blocking=False):
        return {"skipped": 1}
    try:
        return orders.sync_open_orders()
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - expired: nothing to release
            logger.warning("The order sync outlived its lock")


@shared_task(soft_time_limit=VERIFY_SOFT_LIMIT_SECONDS, time_limit=VERIFY_HARD_LIMIT_SECONDS)
def verify_trade(trade_id: int, attempt: int = 1) -> str:
    """Fill verification after submission, as its own task (never sleeps inside the engine's
    lock): settles the trade, and schedules itself again while the order is still open."""
    with live.coalesced():
        return orders.verify(trade_id, attempt)
